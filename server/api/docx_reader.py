"""A .docx turned back into Markdown for import: headings, bold and italic runs, bulleted and
numbered lists, quotes, hyperlinks and code. The zip is checked before python-docx reads it, so a
zip bomb or a file that is not a Word document is refused without being unpacked.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from xml.etree.ElementTree import ParseError

from docx import Document as open_docx
from docx.document import Document as WordDocument
from docx.opc.exceptions import OpcError
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.hyperlink import Hyperlink
from docx.text.paragraph import Paragraph
from docx.text.run import Run
from lxml.etree import LxmlError

DOCX_UNPACKED_MAX = 48 << 20  # all parts of the package together, uncompressed
DOCX_PARTS_MAX = 2_000
# Markdown's inline marks, escaped in imported text so that a literal `*` stays a `*`
INLINE_MARKS = re.compile(r"([\\`*_\[\]<])")
BLOCK_START = re.compile(r"^(\s*)([#>+\-]|\d+[.)])(\s)")
MONOSPACE = ("courier", "consolas", "mono", "menlo")


# what python-docx raises on a package that is not the shape it expects: ValueError for another
# Office format, KeyError for a missing part, AttributeError/TypeError/IndexError for XML of the
# wrong shape (a `[Content_Types].xml` without its elements); untrusted files reach all of them
MALFORMED = (KeyError, ValueError, AttributeError, TypeError, IndexError)


class UnreadableDocx(ValueError):
    """The file is not a Word document that can be read (corrupt, another format, or too large
    once unpacked)."""


def check_package(data: bytes) -> None:
    """UnreadableDocx unless `data` is a zip holding `word/document.xml`, whose parts declare no
    more than DOCX_UNPACKED_MAX bytes together. Python's zip reader never inflates a part past
    its declared size, so checking the declared sizes bounds the memory a bomb can take."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            parts = package.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise UnreadableDocx("the file is not a valid .docx (it is not a zip archive)") from exc
    names = {part.filename for part in parts}
    if "word/document.xml" not in names or "[Content_Types].xml" not in names:
        raise UnreadableDocx("the file is not a Word document (it has no word/document.xml)")
    if len(parts) > DOCX_PARTS_MAX or sum(part.file_size for part in parts) > DOCX_UNPACKED_MAX:
        raise UnreadableDocx(f"the .docx unpacks to more than {DOCX_UNPACKED_MAX >> 20} MiB")


def docx_markdown(data: bytes) -> str:
    """The Word document's text as Markdown; UnreadableDocx when it cannot be read."""
    check_package(data)
    try:
        word = open_docx(io.BytesIO(data))
        return "\n\n".join(_blocks(word)).strip("\n") + "\n"
    except (OpcError, zipfile.BadZipFile, LxmlError, ParseError, *MALFORMED) as exc:
        raise UnreadableDocx(f"the .docx could not be read: {exc}") from exc


def _blocks(word: WordDocument) -> Iterator[str]:
    numbered = _numbered_lists(word)
    list_run: list[str] = []  # a list's items are joined by single newlines
    for item in word.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                yield " | ".join(_escape(cell.text) for cell in row.cells)
            continue
        line = _paragraph(item, numbered)
        if line is None:
            continue
        if line.lstrip().startswith(("- ", "1. ")) and _is_list(item, numbered):
            list_run.append(line)
            continue
        if list_run:
            yield "\n".join(list_run)
            list_run = []
        yield line
    if list_run:
        yield "\n".join(list_run)


def _paragraph(paragraph: Paragraph, numbered: dict[str, bool]) -> str | None:
    """One paragraph as a Markdown block; None when it is empty."""
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    code = style.lower().startswith(("code", "html preformatted")) or _all_monospace(paragraph)
    if code:
        text = paragraph.text
        return f"```\n{text}\n```" if text.strip() else None
    text = _inline(paragraph).strip()
    if not text:
        return None
    heading = re.fullmatch(r"Heading (\d)", style)
    if style == "Title":
        return f"# {text}"
    if heading:
        return f"{'#' * min(int(heading.group(1)), 6)} {text}"
    if _is_list(paragraph, numbered):
        level = _list_level(paragraph)
        ordered = _is_ordered(paragraph, style, numbered)
        return f"{'   ' * level}{'1.' if ordered else '-'} {text}"
    if "quote" in style.lower():
        return f"> {text}"
    return text


def _is_list(paragraph: Paragraph, numbered: dict[str, bool]) -> bool:
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    return style.startswith(("List Bullet", "List Number")) or _num_id(paragraph) in numbered


def _is_ordered(paragraph: Paragraph, style: str, numbered: dict[str, bool]) -> bool:
    if style.startswith("List Number"):
        return True
    if style.startswith("List Bullet"):
        return False
    return numbered.get(_num_id(paragraph) or "", False)


def _list_level(paragraph: Paragraph) -> int:
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    by_style = re.search(r" (\d)$", style)
    if by_style:
        return int(by_style.group(1)) - 1
    level = _numbering_value(paragraph, "w:ilvl")
    return int(level) if level is not None and level.isdigit() else 0


def _num_id(paragraph: Paragraph) -> str | None:
    return _numbering_value(paragraph, "w:numId")


def _numbering_value(paragraph: Paragraph, tag: str) -> str | None:
    """A value of the paragraph's own list numbering (`w:pPr/w:numPr/<tag>`), if it has one."""
    properties = paragraph._p.find(qn("w:pPr"))
    numbering = None if properties is None else properties.find(qn("w:numPr"))
    element = None if numbering is None else numbering.find(qn(tag))
    return None if element is None else element.get(qn("w:val"))


def _numbered_lists(word: WordDocument) -> dict[str, bool]:
    """Each list numbering id in the document: True when numbered, False for bullets (Word keeps a
    list's kind in the numbering part, not in the paragraph)."""
    try:
        numbering = word.part.numbering_part.element
    except (KeyError, NotImplementedError):
        return {}
    formats: dict[str, bool] = {}
    for abstract in numbering.findall(qn("w:abstractNum")):
        level = abstract.find(qn("w:lvl"))
        fmt = None if level is None else level.find(qn("w:numFmt"))
        value = None if fmt is None else fmt.get(qn("w:val"))
        formats[abstract.get(qn("w:abstractNumId")) or ""] = value not in (None, "bullet", "none")
    found: dict[str, bool] = {}
    for num in numbering.findall(qn("w:num")):
        abstract_id = num.find(qn("w:abstractNumId"))
        key = "" if abstract_id is None else abstract_id.get(qn("w:val")) or ""
        found[num.get(qn("w:numId")) or ""] = formats.get(key, False)
    found.pop("0", None)  # numId 0 means "not in a list"
    return found


def _inline(paragraph: Paragraph) -> str:
    """The paragraph's runs and hyperlinks as Markdown inline text."""
    parts: list[str] = []
    for item in paragraph.iter_inner_content():
        if isinstance(item, Hyperlink):
            label = "".join(_styled(run) for run in item.runs).strip() or _escape(item.url)
            url = item.url
            parts.append(f"[{label}](<{url}>)" if url and url.startswith(("http", "mailto:")) else label)
        else:
            parts.append(_styled(item))
    return _tidy("".join(parts))


def _styled(run: Run) -> str:
    text = run.text.replace("\t", " ")
    if not text.strip():
        return text
    escaped = _escape(text)
    lead = escaped[: len(escaped) - len(escaped.lstrip())]
    trail = escaped[len(escaped.rstrip()) :]
    core = escaped.strip()
    if _monospace(run):
        core = f"`{text.strip().replace('`', '')}`"
    elif run.bold and run.italic:
        core = f"***{core}***"
    elif run.bold:
        core = f"**{core}**"
    elif run.italic:
        core = f"*{core}*"
    return lead + core + trail


def _tidy(text: str) -> str:
    # neighbouring runs of one formatting ("**a** **b**" from Word's split runs) read better joined
    text = re.sub(r"\*\*\*\*(?=\w)", "", text)
    return text.replace("\n", "  \n")


def _escape(text: str) -> str:
    escaped = INLINE_MARKS.sub(r"\\\1", text)
    return BLOCK_START.sub(r"\1\\\2\3", escaped)


def _monospace(run: Run) -> bool:
    name = (run.font.name or "").lower()
    return any(word in name for word in MONOSPACE)


def _all_monospace(paragraph: Paragraph) -> bool:
    runs = [run for run in paragraph.runs if run.text.strip()]
    return bool(runs) and all(_monospace(run) for run in runs) and len(paragraph.text) > 0
