"""Counts in the status bar and Markdown formatting as you write, in a real browser: the numbers on
known text (Markdown and non-Latin scripts included), for the selection, for a co-author's typing
and a viewer's page, in a 2 MB document; the styles of headings, bold and links with their marks
dimmed in both themes; Ctrl+B, Ctrl+I and Ctrl+K putting the marks in and taking them out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, Writer, open_writer

pytestmark = pytest.mark.timeout(240)

QUIET = {"autoSuggest": False}
# A known text: Markdown marks, a link's address, a list's bullet and number, Cyrillic, an emoji
# of two code points and an "é" written as e + a combining accent, neither of which is two
# characters to a reader.
KNOWN = (
    "# Title\n"
    "\n"
    "**Bold** and _it_ [link](https://example.com/x)\n"
    "- item one\n"
    "1. Привет, мир! \U0001f44d\U0001f3fd cafe\u0301"
)
# Title (1 word, 5 characters) + "Bold and it link" (4, 16) + "item one" (2, 8)
# + "Привет, мир! 👍🏽 café" (3, 19)
KNOWN_COUNTS = "10 words · 48 characters · < 1 min read"


@pytest.fixture
def writer(browser: Any, base_url: str) -> Iterator[Writer]:
    ann = open_writer(browser, base_url, "ann", QUIET)
    created = ann.api("POST", "/api/documents", {"title": "Counted"})
    ann.page.goto(f"/d/{created['id']}")
    ann.page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    yield ann
    ann.close()


def set_text(page: Any, text: str) -> None:
    """Replace the document's text as one local edit (typing would continue lists on Enter)."""
    page.evaluate(
        "(t) => { const v = window.cowrite.view;"
        " v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: t}}); }",
        text,
    )


def text(page: Any) -> str:
    value: str = page.evaluate("window.cowrite.view.state.doc.toString()")
    return value


def select(page: Any, start: int, end: int) -> None:
    page.evaluate(f"window.cowrite.view.dispatch({{selection: {{anchor: {start}, head: {end}}}}})")
    page.evaluate("window.cowrite.view.focus()")


def test_counts_follow_typing_and_the_selection(writer: Writer) -> None:
    page = writer.page
    counts, selection = page.get_by_test_id("status-counts"), page.get_by_test_id("status-selection")
    expect(counts).to_have_text("0 words · 0 characters")
    page.locator(".cm-content").click()
    page.keyboard.type("One two")
    expect(counts).to_have_text("2 words · 7 characters · < 1 min read")
    page.keyboard.type(" three.")
    expect(counts).to_have_text("3 words · 14 characters · < 1 min read")
    expect(selection).to_be_hidden()

    page.keyboard.press("Shift+Home")
    expect(selection).to_be_visible()
    expect(selection).to_have_text("Selection: 3 words, 14 characters")
    select(page, 0, 3)
    expect(selection).to_have_text("Selection: 1 word, 3 characters")
    page.keyboard.press("End")
    expect(selection).to_be_hidden()
    expect(counts).to_have_text("3 words · 14 characters · < 1 min read")


def test_counts_are_exact_on_markdown_and_non_latin_text(writer: Writer) -> None:
    page = writer.page
    set_text(page, KNOWN)
    expect(page.get_by_test_id("status-counts")).to_have_text(KNOWN_COUNTS)
    # the Russian line without its list number: three words (the emoji is none), 19 characters
    page.evaluate(
        "(() => { const v = window.cowrite.view, d = v.state.doc.toString();"
        " v.dispatch({selection: {anchor: d.indexOf('Привет'), head: d.length}}); })()"
    )
    expect(page.get_by_test_id("status-selection")).to_have_text("Selection: 3 words, 19 characters")
    # reading time at 230 words a minute: 1,150 words are five minutes
    set_text(page, "\n".join(["one two three four five six seven eight nine ten"] * 115))
    expect(page.get_by_test_id("status-counts")).to_have_text("1,150 words · 5,520 characters · 5 min read")


def test_words_of_a_script_without_spaces_are_counted(writer: Writer) -> None:
    page = writer.page
    # "I like reading books.": ICU's dictionary splits it in words (我 / 喜欢 / 读书), where a
    # count by spaces would see one
    set_text(page, "我喜欢读书。")
    counts = page.get_by_test_id("status-counts")
    expect(counts).to_have_text(re.compile(r"^\d+ words · 6 characters · < 1 min read$"))
    words = int((counts.text_content() or "").split(" ", 1)[0])
    assert words >= 2, counts.text_content()


def test_a_viewer_sees_the_counts_follow_a_coauthors_typing(
    writer: Writer, browser: Any, base_url: str
) -> None:
    viewer = open_writer(browser, base_url, "vera", QUIET)
    try:
        doc_id = writer.page.url.rsplit("/", 1)[-1]
        writer.api("POST", f"/api/documents/{doc_id}/members", {"username": "vera", "role": "viewer"})
        viewer.page.goto(f"/d/{doc_id}")
        viewer.page.wait_for_function("window.cowrite && window.cowrite.state().synced")
        assert viewer.page.evaluate("window.cowrite.state().readOnly")
        writer.page.locator(".cm-content").click()
        writer.page.keyboard.type("Words typed by someone else")
        expect(viewer.page.get_by_test_id("status-counts")).to_have_text(
            "5 words · 27 characters · < 1 min read"
        )
    finally:
        viewer.close()


def test_a_2mb_document_is_counted_without_holding_up_typing(writer: Writer) -> None:
    page = writer.page
    counts = page.get_by_test_id("status-counts")
    # 18,000 paragraphs of two lines, 8 words and 56 characters each
    line = "lorem ipsum dolor sit amet, consectetur adipiscing elit."
    page.evaluate(
        "([l, n]) => { const v = window.cowrite.view;"
        " v.dispatch({changes: {from: 0, insert: Array(n).fill(l + '\\n' + l).join('\\n\\n')}}); }",
        [line, 18_000],
    )
    assert page.evaluate("window.cowrite.view.state.doc.length") > 2_000_000
    full = "288,000 words · 2,016,000 characters · 20 h 52 min read"
    expect(counts).to_have_text(full, timeout=30_000)
    page.wait_for_function("window.cowrite.state().saved", timeout=60_000)

    # typing in the middle of it: a keystroke's whole update, the counting included, stays quick
    page.evaluate("window.cowrite.view.dispatch({selection: {anchor: 1_000_000}})")
    page.evaluate("window.cowrite.view.focus()")
    page.keyboard.type(" extra words here")
    times = page.evaluate(
        """() => {
            const v = window.cowrite.view;
            const times = [];
            for (let i = 0; i < 20; i++) {
                const t = performance.now();
                v.dispatch({changes: {from: v.state.selection.main.head, insert: "x"},
                            selection: {anchor: v.state.selection.main.head + 1}, userEvent: "input.type"});
                times.push(performance.now() - t);
            }
            return times.sort((a, b) => a - b);
        }"""
    )
    assert times[len(times) // 2] < 30, f"keystrokes in a 2 MB document took {times} ms"
    # " extra words here" and the x's went in before "sit", which joins "herexx…x": two words more
    expect(counts).to_have_text(re.compile(r"^288,002 words · 2,016,037 characters"))
    # selecting everything counts it too
    page.keyboard.press("Control+a")
    expect(page.get_by_test_id("status-selection")).to_have_text(
        "Selection: 288,002 words, 2,016,037 characters"
    )

    # opening it: counted in slices after the page is up
    page.wait_for_function("window.cowrite.state().saved", timeout=60_000)
    page.reload()
    page.wait_for_function("window.cowrite && window.cowrite.state().synced", timeout=60_000)
    expect(counts).to_have_text(re.compile(r"^288,002 words · 2,016,037 characters"), timeout=30_000)


def test_ctrl_b_i_k_toggle_the_marks(writer: Writer) -> None:
    page = writer.page
    page.locator(".cm-content").click()
    page.keyboard.type("Hello world")

    # the word at the cursor, on and off
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Control+b")
    assert text(page) == "Hello **world**"
    page.keyboard.press("Control+b")
    assert text(page) == "Hello world"

    # a selection, on and off; the selection stays on the words
    select(page, 0, 5)
    page.keyboard.press("Control+i")
    assert text(page) == "_Hello_ world"
    assert (
        page.evaluate(
            "window.cowrite.view.state.sliceDoc(window.cowrite.view.state.selection.main.from,"
            " window.cowrite.view.state.selection.main.to)"
        )
        == "Hello"
    )
    page.keyboard.press("Control+i")
    assert text(page) == "Hello world"
    # inside a word, italic is written with * (Markdown ignores _ there)
    select(page, 6, 9)
    page.keyboard.press("Control+i")
    assert text(page) == "Hello *wor*ld"
    page.keyboard.press("Control+i")
    assert text(page) == "Hello world"

    # a link: the placeholder address is selected, to be typed over; then taken out again
    page.keyboard.press("End")
    page.keyboard.press("Control+k")
    assert text(page) == "Hello [world](url)"
    page.keyboard.type("https://example.com")
    assert text(page) == "Hello [world](https://example.com)"
    page.keyboard.press("Control+k")
    assert text(page) == "Hello world"

    # at a cursor outside any word: the marks, with the cursor between them; pressed again, gone
    page.keyboard.press("End")
    page.keyboard.type(" ")
    page.keyboard.press("Control+b")
    assert text(page) == "Hello world ****"
    page.keyboard.type("new")
    assert text(page) == "Hello world **new**"
    page.keyboard.press("Control+b")
    assert text(page) == "Hello world new"
    page.keyboard.press("End")
    page.keyboard.type(" ")
    page.keyboard.press("Control+b")
    assert text(page) == "Hello world new ****"
    page.keyboard.press("Control+b")
    assert text(page) == "Hello world new "


def test_markdown_is_styled_as_written_with_its_marks_dimmed_in_both_themes(writer: Writer) -> None:
    page = writer.page
    set_text(
        page,
        "# A heading\n\nSome **bold** and _soft_ words with a [link](https://example.com).\n\n"
        "> quoted\n\n- item\n\nA `code` span",
    )
    heading = page.locator(".cm-md-h1:not(.cm-md-mark)").first
    expect(heading).to_have_text("A heading")
    body_size = float(page.locator(".cm-content").evaluate("e => getComputedStyle(e).fontSize")[:-2])
    style = "(e, p) => getComputedStyle(e)[p]"
    assert float(heading.evaluate(style, "fontSize")[:-2]) >= 1.5 * body_size
    assert heading.evaluate(style, "fontWeight") == "700"
    bold = page.locator(".cm-md-strong:not(.cm-md-mark)").first
    expect(bold).to_have_text("bold")
    assert bold.evaluate(style, "fontWeight") == "700"
    italic = page.locator(".cm-md-em:not(.cm-md-mark)").first
    expect(italic).to_have_text("soft")
    assert italic.evaluate(style, "fontStyle") == "italic"
    expect(page.locator(".cm-md-code:not(.cm-md-mark)").first).to_have_text("code")
    expect(page.locator(".cm-md-quote").first).to_be_visible()

    for theme in ("light", "dark"):
        if page.evaluate("document.documentElement.dataset.theme || 'light'") != theme:
            page.get_by_test_id("theme-toggle").click()
            expect(page.locator("html")).to_have_attribute("data-theme", theme)
        faint = page.evaluate(
            "(() => { const s = document.createElement('span'); s.style.color = 'var(--faint)';"
            " document.body.append(s); const c = getComputedStyle(s).color; s.remove(); return c; })()"
        )
        ink = page.locator(".cm-content").evaluate(style, "color")
        accent = page.evaluate(
            "(() => { const s = document.createElement('span'); s.style.color = 'var(--accent)';"
            " document.body.append(s); const c = getComputedStyle(s).color; s.remove(); return c; })()"
        )
        marks = page.locator(".cm-md-mark")
        mark_texts = marks.all_text_contents()
        for mark in ("#", "**", "_", "[", "]", "(", ")", ">", "-", "`"):
            assert mark in mark_texts, f"{mark} is not drawn as a mark: {mark_texts}"
        for index in range(marks.count()):
            assert marks.nth(index).evaluate(style, "color") == faint != ink
        # the link's text in the accent colour, its address dimmed like a mark
        link = page.locator(".cm-md-link:not(.cm-md-mark):not(.cm-md-url)").first
        expect(link).to_have_text("link")
        assert link.evaluate(style, "color") == accent
        url = page.locator(".cm-md-url").first
        expect(url).to_have_text("https://example.com")
        assert url.evaluate(style, "color") == faint
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"formatting-{theme}.png"))


def test_those_who_only_read_get_no_formatting_keys(writer: Writer, browser: Any, base_url: str) -> None:
    viewer = open_writer(browser, base_url, "vera", QUIET)
    try:
        doc_id = writer.page.url.rsplit("/", 1)[-1]
        writer.api("POST", f"/api/documents/{doc_id}/members", {"username": "vera", "role": "viewer"})
        set_text(writer.page, "Read only words")
        writer.page.wait_for_function("window.cowrite.state().saved")
        page = viewer.page
        page.goto(f"/d/{doc_id}")
        page.wait_for_function("window.cowrite && window.cowrite.ytext() === 'Read only words'")
        # whether the editor took each key: a writer's page takes it, a viewer's leaves it alone
        record = (
            "() => { window.taken = []; window.addEventListener('keydown',"
            " (e) => { if (e.key.length === 1) window.taken.push([e.key, e.defaultPrevented]); }); }"
        )
        for page_of in (page, writer.page):
            page_of.evaluate(record)
            page_of.locator(".cm-content").click()
            for key in ("Control+b", "Control+i", "Control+k"):
                page_of.keyboard.press(key)
        assert page.evaluate("window.taken") == [["b", False], ["i", False], ["k", False]]
        assert writer.page.evaluate("window.taken") == [["b", True], ["i", True], ["k", True]]
        # the writer's keys formatted the word clicked; the viewer's changed nothing of it
        assert writer.page.evaluate("window.cowrite.ytext()") != "Read only words"
        page.wait_for_function("window.cowrite.ytext() !== 'Read only words'")
        assert page.evaluate("window.cowrite.ytext()") == writer.page.evaluate("window.cowrite.ytext()")
    finally:
        viewer.close()


def test_the_help_panel_lists_the_formatting_keys(writer: Writer) -> None:
    page = writer.page
    page.get_by_test_id("help-button").click()
    help_panel = page.get_by_test_id("help-panel")
    expect(help_panel).to_be_visible()
    for words in ("Bold", "Italic", "Link"):
        expect(help_panel).to_contain_text(words)
