"""Export: a document's title and Markdown text as Markdown, plain text, a standalone HTML page, or
Word (.docx), each downloaded under a file name made from the title (docs/export.md).
"""

from __future__ import annotations

import html
import io
import re
import unicodedata
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import anyio
from docx import Document as WordDocument
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor
from docx.text.paragraph import Paragraph
from docx.text.run import Run as WordRun
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.api.markup import Block, Run, blocks_of, plain_text, render_html
from server.auth.access import authorize
from server.services import services
from storage import documents
from storage.models import Role

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CODE_FONT = "Courier New"
LINK_COLOUR = RGBColor(0x05, 0x63, 0xC1)
LIST_STYLE_DEPTH = 3  # Word's built-in list styles go "List Bullet", "List Bullet 2", "List Bullet 3"
# characters XML 1.0 cannot hold (a .docx is XML); dropped rather than failing the export
NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
FILENAME_UNSAFE = re.compile(r"[^\w]+")

PAGE_STYLE = """
body { margin: 0; background: #fff; color: #1b1b1b; }
article { max-width: 40em; margin: 2.5em auto; padding: 0 1.25em;
  font: 12pt/1.6 Georgia, "Times New Roman", serif; }
h1, h2, h3, h4, h5, h6 { font-family: system-ui, sans-serif; line-height: 1.25; margin: 1.4em 0 .5em; }
h1.title { font-size: 2em; margin-top: 0; }
blockquote { margin: 1em 0; padding-left: 1em; border-left: 3px solid #bbb; color: #444; }
code, pre { font-family: ui-monospace, "Courier New", monospace; font-size: .9em; }
pre { padding: .75em 1em; background: #f4f4f4; white-space: pre-wrap; }
a { color: #0563c1; }
@media print { article { margin: 0; max-width: none; } a { color: inherit; } }
"""


def file_names(title: str, extension: str) -> str:
    """A `Content-Disposition` value: an ASCII slug of the title, and the Unicode one in `filename*`
    when the title is not plain ASCII (RFC 6266)."""
    unicode_slug = FILENAME_UNSAFE.sub("-", title.lower()).strip("-_")[:100].strip("-_")
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    ascii_slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:100].strip("-") or "document"
    value = f'attachment; filename="{ascii_slug}.{extension}"'
    if unicode_slug and unicode_slug != ascii_slug:
        value += f"; filename*=UTF-8''{quote(f'{unicode_slug}.{extension}', safe='')}"
    return value


def as_markdown(title: str, text: str) -> str:
    body = f"# {title}\n\n{text}"
    return body if body.endswith("\n") else body + "\n"


def as_text(title: str, text: str) -> str:
    return f"{title}\n{'=' * min(len(title), 80)}\n\n{plain_text(text)}\n"


def as_html(title: str, text: str) -> str:
    """A standalone page: the rendered Markdown (raw HTML off, safe link schemes only) in a small
    print-friendly style."""
    name = html.escape(title)
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{name}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n<article>\n"
        f'<h1 class="title">{name}</h1>\n{render_html(NOT_XML.sub("", text))}</article>\n</body>\n</html>\n'
    )


def as_docx(title: str, text: str) -> bytes:
    """A Word document: the title as its Title, then headings, paragraphs, lists, quotes, code and
    links (real hyperlinks) in Word's built-in styles."""
    word = WordDocument()
    word.core_properties.title = NOT_XML.sub("", title)
    word.add_heading(NOT_XML.sub("", title), 0)
    for block in blocks_of(NOT_XML.sub("", text)):
        if block.kind == "rule":
            word.add_paragraph("* * *").alignment = WD_ALIGN_PARAGRAPH.CENTER  # Word has no plain rule
            continue
        if block.kind == "heading":
            paragraph = word.add_heading("", min(block.level, 9))
        else:
            paragraph = word.add_paragraph(style=_paragraph_style(block))
        for run in block.runs:
            if run.href is not None:
                _add_link(paragraph, run)
            else:
                _format(paragraph.add_run(run.text), run)
    out = io.BytesIO()
    word.save(out)
    return out.getvalue()


def _paragraph_style(block: Block) -> str | None:
    if block.depth:
        depth = min(block.depth, LIST_STYLE_DEPTH)
        kind = "List Continue" if block.marker is None else "List Number" if block.ordered else "List Bullet"
        return kind if depth == 1 else f"{kind} {depth}"
    if block.quote:
        return "Quote"
    if block.kind == "code":
        return "No Spacing"
    return None


def _format(added: WordRun, run: Run) -> None:
    added.bold = run.bold or None
    added.italic = run.italic or None
    if run.code:
        added.font.name = CODE_FONT
        added.font.size = Pt(10)


def _add_link(paragraph: Paragraph, run: Run) -> None:
    """A real hyperlink: python-docx reads them but has no call to write one, so the run is made as
    usual and moved inside a `w:hyperlink` that names an external relationship."""
    assert run.href is not None
    relationship = paragraph.part.relate_to(run.href, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), relationship)
    added = paragraph.add_run(run.text)
    _format(added, run)
    added.font.underline = True
    added.font.color.rgb = LINK_COLOUR
    link.append(added._r)  # moved out of the paragraph, into the link
    paragraph._p.append(link)


FORMATS: dict[str, tuple[str, Callable[[str, str], str | bytes]]] = {
    "md": ("text/markdown; charset=utf-8", as_markdown),
    "txt": ("text/plain; charset=utf-8", as_text),
    "html": ("text/html; charset=utf-8", as_html),
    "docx": (DOCX_TYPE, as_docx),
}


def exporter(extension: str) -> Callable[[Request], Awaitable[Response]]:
    media_type, render = FORMATS[extension]

    async def export(request: Request) -> Response:
        document_id = request.path_params["doc_id"]
        account, _ = await authorize(request, document_id, Role.VIEWER)
        found = services(request)
        await found.rooms.flush_text(document_id)  # the live document's text, to the last edit
        document = await found.store.run(documents.get_document, document_id, account.username)
        # a long document takes a while to render (.docx most): off the event loop
        body = await anyio.to_thread.run_sync(render, document.title, document.text)
        return Response(
            body,
            media_type=media_type,
            headers={"content-disposition": file_names(document.title, extension)},
        )

    export.__name__ = f"export_{extension}"
    export.__doc__ = f"The document as .{extension}, for its viewers and up."
    return export


routes = [
    Route(f"/api/documents/{{doc_id}}/export.{extension}", exporter(extension), methods=["GET"])
    for extension in FORMATS
]
