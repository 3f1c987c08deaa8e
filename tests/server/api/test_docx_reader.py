"""A .docx read back as Markdown, and refused before unpacking when it is no Word file or a bomb
(server/api/docx_reader.py)."""

from __future__ import annotations

import copy
import io
import zipfile

import pytest
from docx import Document as new_docx
from docx.document import Document as WordDocument
from docx.oxml.ns import qn

from server.api.docx_reader import DOCX_UNPACKED_MAX, UnreadableDocx, check_package, docx_markdown
from server.api.exports import as_docx


def saved(word: WordDocument) -> bytes:
    out = io.BytesIO()
    word.save(out)
    return out.getvalue()


def test_words_own_lists_are_read_from_the_numbering_part() -> None:
    """Word marks a list item with numbering properties on a plain paragraph, not a list style."""
    word = new_docx()
    for style_name, text in (("List Bullet", "bullet"), ("List Number", "number")):
        numbering = word.styles[style_name].element.find(qn("w:pPr")).find(qn("w:numPr"))
        paragraph = word.add_paragraph(text)  # Normal style, as Word writes "List Paragraph"s
        paragraph._p.get_or_add_pPr().append(copy.deepcopy(numbering))
    assert docx_markdown(saved(word)) == "- bullet\n1. number\n"


def test_marks_in_the_words_are_escaped_and_links_kept() -> None:
    markdown = docx_markdown(as_docx("T", "A *literal* \\*star\\*, [site](mailto:a@b.c) and `x`.\n"))
    assert markdown == "# T\n\nA *literal* \\*star\\*, [site](<mailto:a@b.c>) and `x`.\n"


def test_code_blocks_and_headings_come_back() -> None:
    markdown = docx_markdown(as_docx("T", "### Small\n\n```\nline one\nline two\n```\n"))
    assert markdown == "# T\n\n### Small\n\n```\nline one\nline two\n```\n"


def zipped(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in parts.items():
            package.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "not a zip archive"),
        (b"PK\x03\x04" + b"\0" * 40, "not a zip archive"),
        (zipped({"a.txt": b"x"}), "no word/document.xml"),
        (
            zipped({"[Content_Types].xml": b"<x/>", "word/document.xml": b"\0" * (DOCX_UNPACKED_MAX + 1)}),
            "MiB",
        ),
        (zipped({"[Content_Types].xml": b"<x/>", "word/document.xml": b"<not xml"}), "could not be read"),
    ],
)
def test_what_is_not_a_word_document_is_refused(data: bytes, says: str) -> None:
    with pytest.raises(UnreadableDocx, match=says):
        docx_markdown(data)


def test_the_bomb_is_refused_from_its_directory_alone() -> None:
    bomb = zipped({"[Content_Types].xml": b"<x/>", "word/document.xml": b"\0" * (DOCX_UNPACKED_MAX + 1)})
    assert len(bomb) < DOCX_UNPACKED_MAX // 500  # tiny on the wire
    with pytest.raises(UnreadableDocx):
        check_package(bomb)
