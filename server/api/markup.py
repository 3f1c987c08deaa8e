"""Markdown read into plain blocks of styled runs, for the exports that are not Markdown (plain
text, .docx), and rendered to safe HTML: no raw HTML, links only to http, https and mailto.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

LINK_SCHEMES = ("http:", "https:", "mailto:")


@dataclass(frozen=True)
class Run:
    """A stretch of inline text with one formatting."""

    text: str
    bold: bool = False
    italic: bool = False
    code: bool = False
    href: str | None = None


@dataclass
class Block:
    """A paragraph-like block: a heading, a paragraph (possibly in a list or a quote), code, a rule."""

    kind: str  # "heading" | "paragraph" | "code" | "rule"
    runs: list[Run] = field(default_factory=list)
    level: int = 0  # a heading's level, 1-6
    depth: int = 0  # list nesting; 0 outside lists
    ordered: bool = False  # the innermost list is numbered
    marker: str | None = None  # "•" or "3." on an item's first block; None on its continuation
    quote: int = 0  # block quote nesting
    list_start: bool = False  # the first block of a list that is not inside another

    @property
    def text(self) -> str:
        return "".join(run.text for run in self.runs)


def safe_link(url: str) -> bool:
    """Whether a link may be kept: http, https and mailto only (no `javascript:`, `data:`, …)."""
    return url.strip().lower().startswith(LINK_SCHEMES)


@cache
def parser() -> MarkdownIt:
    # CommonMark with raw HTML off: a `<script>` in the text stays text
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = safe_link  # type: ignore[method-assign]
    return md


def render_html(markdown: str) -> str:
    """The Markdown as an HTML fragment; every piece of text is escaped."""
    rendered: str = parser().render(markdown)
    return rendered


def blocks_of(markdown: str) -> list[Block]:
    """The Markdown's blocks, in order, with their list, quote and heading structure."""
    blocks: list[Block] = []
    lists: list[list[int]] = []  # per open list: [ordered (0/1), next number]
    quote = 0
    fresh_item = False  # the next block is the first of a list item
    new_list = False  # the next block is the first of a top-level list
    pending = Block("paragraph")
    for token in parser().parse(markdown):
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            ordered = kind == "ordered_list_open"
            start = token.attrGet("start") if ordered else None
            lists.append([int(ordered), int(start) if isinstance(start, (int, str)) else 1])
            new_list = len(lists) == 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            fresh_item = True
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind == "heading_open":
            pending = Block("heading", level=int(token.tag[1:]))
        elif kind == "paragraph_open":
            pending = Block("paragraph")
        elif kind in ("inline", "fence", "code_block", "hr"):
            if kind == "inline":
                block = pending
                block.runs = runs_of(token.children or [])
            elif kind == "hr":
                block = Block("rule")
            else:
                block = Block("code", runs=[Run(token.content.rstrip("\n"), code=True)])
            block.quote = quote
            if lists:
                block.depth, block.ordered = len(lists), bool(lists[-1][0])
                if fresh_item:
                    if block.ordered:
                        block.marker = f"{lists[-1][1]}."
                        lists[-1][1] += 1
                    else:
                        block.marker = "•"
                    fresh_item = False
                block.list_start, new_list = new_list, False
            blocks.append(block)
            pending = Block("paragraph")
    return blocks


def runs_of(children: list[Token]) -> list[Run]:
    """An inline token's children as runs; adjacent runs of one formatting are merged."""
    runs: list[Run] = []
    bold = italic = 0
    href: str | None = None
    for child in children:
        kind = child.type
        if kind == "strong_open":
            bold += 1
        elif kind == "strong_close":
            bold -= 1
        elif kind == "em_open":
            italic += 1
        elif kind == "em_close":
            italic -= 1
        elif kind == "link_open":
            target = child.attrGet("href")
            href = target if isinstance(target, str) else None
        elif kind == "link_close":
            href = None
        elif kind in ("text", "code_inline", "softbreak", "hardbreak", "image"):
            text = {"softbreak": " ", "hardbreak": "\n"}.get(kind, child.content)
            if not text:
                continue  # markdown-it leaves empty text tokens beside emphasis
            run = Run(text, bold > 0, italic > 0, kind == "code_inline", href)
            if runs and _same_style(runs[-1], run):
                runs[-1] = Run(runs[-1].text + run.text, run.bold, run.italic, run.code, run.href)
            else:
                runs.append(run)
    return runs


def _same_style(a: Run, b: Run) -> bool:
    return (a.bold, a.italic, a.code, a.href) == (b.bold, b.italic, b.code, b.href)


def plain_text(markdown: str) -> str:
    """The Markdown without its marks: headings, paragraphs, lists (• and 1.), quotes (indented),
    code (indented) and links ("text (address)") keep their shape."""
    lines: list[str] = []
    previous: Block | None = None
    for block in blocks_of(markdown):
        tight = (
            previous is not None
            and previous.depth > 0
            and block.depth > 0
            and block.marker is not None
            and not block.list_start
        )
        if previous is not None and not tight:
            lines.append("")
        quote = "    " * block.quote
        indent = quote + "   " * max(block.depth - 1, 0)
        if block.kind == "rule":
            lines.append(quote + "* * *")
        elif block.kind == "code":
            lines.extend((indent + "    " + line).rstrip() for line in block.text.split("\n"))
        else:
            text = "".join(_plain_run(run) for run in block.runs)
            if block.depth:
                lead = f"{block.marker} " if block.marker else "  "
                lines.extend(
                    (indent + (lead if i == 0 else "  ") + line).rstrip()
                    for i, line in enumerate(text.split("\n"))
                )
            else:
                lines.extend((indent + line).rstrip() for line in text.split("\n"))
        previous = block
    return "\n".join(lines)


def _plain_run(run: Run) -> str:
    if run.href and run.href.strip() not in (run.text.strip(), f"mailto:{run.text.strip()}"):
        return f"{run.text} ({run.href})"
    return run.text
