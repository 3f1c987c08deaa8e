"""Markdown read into blocks, plain text and safe HTML (server/api/markup.py)."""

from __future__ import annotations

import pytest

from server.api.markup import Run, blocks_of, plain_text, render_html, safe_link


def test_blocks_keep_list_quote_and_heading_structure() -> None:
    blocks = blocks_of("# Top\n\n- a\n  - b\n\n3. c\n4. d\n\n> **q**\n")
    assert [(b.kind, b.text, b.level, b.depth, b.marker, b.quote) for b in blocks] == [
        ("heading", "Top", 1, 0, None, 0),
        ("paragraph", "a", 0, 1, "•", 0),
        ("paragraph", "b", 0, 2, "•", 0),
        ("paragraph", "c", 0, 1, "3.", 0),
        ("paragraph", "d", 0, 1, "4.", 0),
        ("paragraph", "q", 0, 0, None, 1),
    ]
    assert blocks[-1].runs == [Run("q", bold=True)]


def test_runs_carry_bold_italic_code_and_links() -> None:
    [block] = blocks_of("a **b *c*** `d` [e](https://x.org)")
    assert block.runs == [
        Run("a "),
        Run("b ", bold=True),
        Run("c", bold=True, italic=True),
        Run(" "),
        Run("d", code=True),
        Run(" "),
        Run("e", href="https://x.org"),
    ]


def test_plain_text_keeps_shape_without_marks() -> None:
    text = plain_text("Intro with [a link](https://x.org).\n\n- one\n- two\n\n```\ncode\n```\n\n---\n")
    assert text == "Intro with a link (https://x.org).\n\n• one\n• two\n\n    code\n\n* * *"


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://a.b", True),
        ("HTTP://a.b", True),
        ("mailto:x@y.z", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("data:text/html,<b>", False),
        ("vbscript:x", False),
        ("/relative", False),
    ],
)
def test_only_safe_link_schemes_are_kept(url: str, kept: bool) -> None:
    assert safe_link(url) is kept
    assert ("<a href" in render_html(f"[x]({url})")) is kept


def test_raw_html_is_text() -> None:
    assert render_html('<img src=x onerror="alert(1)">') == (
        "<p>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</p>\n"
    )
