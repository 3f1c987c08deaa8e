"""Version history in a real browser: versions listed with their writers, one shown with what
changed since marked, named, and restored as one undoable edit that keeps AI-authorship marks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import open_writer
from tests.e2e.test_editor import OPENING, editor_text, new_document, state, type_and_wait_for_ghost

pytestmark = pytest.mark.timeout(300)
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "history.png"


def ai_texts(page: Any) -> list[str]:
    spans: list[dict[str, Any]] = page.evaluate("window.cowrite.aiSpans()")
    return [span["text"] for span in spans]


def wait_saved(page: Any) -> None:
    page.wait_for_function("window.cowrite.state().saved")


def open_versions(page: Any) -> Any:
    page.get_by_test_id("versions-button").click()
    panel = page.get_by_test_id("versions-panel")
    panel.get_by_test_id("version-item").first.wait_for()
    return panel


def test_name_see_differences_restore_and_undo_a_version(browser: Any, base_url: str) -> None:
    writer = open_writer(browser, base_url, "writer")
    page = writer.page
    url = new_document(page, "Versions")
    # an accepted suggestion: AI-authored text that the restore must keep
    type_and_wait_for_ghost(page, OPENING)
    page.keyboard.press("Tab")
    taken = ai_texts(page)
    assert taken and state(page)["ghost"] is None
    wait_saved(page)
    drafted = editor_text(page)

    # save the text as it is now as a named version, from the panel
    panel = open_versions(page)
    panel.get_by_test_id("versions-save-name").fill("  first draft ")
    panel.get_by_test_id("versions-save").click()
    named = panel.locator("[data-testid=version-item][data-named=true]")
    named.first.wait_for()
    assert named.count() == 1 and "first draft" in named.first.inner_text()
    assert "by writer" in named.first.inner_text()
    page.keyboard.press("Escape")

    # change a word and add a sentence after the version
    page.evaluate(
        """() => {
          const view = window.cowrite.view;
          const at = view.state.doc.toString().indexOf("truth");
          view.dispatch({ changes: { from: at, to: at + 5, insert: "fact" } });
        }"""
    )
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(" Added later.", delay=10)
    wait_saved(page)
    changed = editor_text(page)
    assert changed != drafted and "Added later." in changed

    # the version shown against the text now: what was removed and what was written since
    panel = open_versions(page)
    panel.get_by_test_id("versions-named-only").check()
    assert panel.get_by_test_id("version-item").count() == 1
    panel.get_by_test_id("versions-named-only").uncheck()  # the whole list, for the README's picture
    assert panel.get_by_test_id("version-item").count() > 1
    panel.locator("[data-testid=version-item][data-named=true]").click()
    diff = panel.get_by_test_id("versions-diff")
    diff.locator("del").first.wait_for()
    assert "truth" in " ".join(diff.locator("del").all_inner_texts())
    inserted = " ".join(diff.locator("ins").all_inner_texts())
    assert "fact" in inserted and "Added later." in inserted
    assert diff.inner_text() == drafted.replace("truth", "truthfact", 1) + " Added later."
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    # rename it, from the panel
    panel.get_by_test_id("version-name").fill("sent to editor")
    panel.get_by_test_id("version-name-save").click()
    panel.locator("[data-testid=version-item][data-named=true]", has_text="sent to editor").wait_for()

    # restore: the text is the version's, the AI text on it is still marked
    panel.get_by_test_id("version-restore").click()
    page.wait_for_function(f"window.cowrite.view.state.doc.toString() === {drafted!r}")
    assert ai_texts(page) == taken
    assert page.evaluate("window.cowrite.ytext()") == drafted
    wait_saved(page)
    doc_id = url.rsplit("/", 1)[1]
    listed = writer.api("GET", f"/api/documents/{doc_id}/revisions")["revisions"]
    kept = [v for v in listed if v["reason"] == "before-restore"]
    assert kept, "the text the restore replaced is kept as a version"
    assert writer.api("GET", f"/api/documents/{doc_id}/revisions/{kept[0]['id']}")["text"] == changed

    # one Ctrl+Z takes the whole restore back
    page.keyboard.press("Escape")
    page.locator(".cm-content").click()
    page.keyboard.press("Control+z")
    page.wait_for_function(f"window.cowrite.view.state.doc.toString() === {changed!r}")
    writer.close()


def test_a_viewer_sees_versions_but_cannot_restore_or_name_them(browser: Any, base_url: str) -> None:
    owner = open_writer(browser, base_url, "olga")
    doc = owner.api("POST", "/api/documents", {"title": "Read only"})
    owner.api("PATCH", f"/api/documents/{doc['id']}", {"text": "Seen, not changed."})
    owner.api("POST", f"/api/documents/{doc['id']}/revisions", {"name": "seen"})
    viewer = open_writer(browser, base_url, "vic")
    owner.api("POST", f"/api/documents/{doc['id']}/members", {"username": "vic", "role": "viewer"})
    page = viewer.page
    page.goto(f"/d/{doc['id']}")
    page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    panel = open_versions(page)
    panel.get_by_test_id("version-item").first.click()
    panel.get_by_test_id("versions-diff").wait_for()
    assert panel.get_by_test_id("versions-diff").inner_text() == "Seen, not changed."
    assert panel.get_by_test_id("version-restore").count() == 0
    assert not panel.get_by_test_id("versions-save-form").is_visible()
    viewer.close()
    owner.close()


# The contrast of a mark's text against the first opaque background behind it (WCAG 2.1).
CONTRAST_JS = """(selector) => {
  const parse = (value) => (value.match(/[\\d.]+/g) || []).map(Number);
  const mark = document.querySelector(selector);
  const fg = parse(getComputedStyle(mark).color);
  let node = mark, bg = null;
  while (node && node.nodeType === 1) {
    const colour = parse(getComputedStyle(node).backgroundColor);
    if (colour.length >= 3 && (colour.length === 3 || colour[3] > 0)) { bg = colour; break; }
    node = node.parentElement;
  }
  bg = bg || [255, 255, 255];
  const lum = ([r, g, b]) => {
    const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const [a, b] = [lum(fg), lum(bg)];
  return {
    ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), fg, bg,
    line: getComputedStyle(mark).textDecorationLine,
  };
}"""


def test_the_marks_are_legible_in_both_themes_and_not_colour_alone(browser: Any, base_url: str) -> None:
    writer = open_writer(browser, base_url, "writer")
    doc = writer.api("POST", "/api/documents", {"title": "Marks"})
    writer.api("PATCH", f"/api/documents/{doc['id']}", {"text": "The old word stays."})
    writer.api("POST", f"/api/documents/{doc['id']}/revisions", {"name": "old"})
    writer.api("PATCH", f"/api/documents/{doc['id']}", {"text": "The new word stays."})
    page = writer.page
    page.goto(f"/d/{doc['id']}")
    page.wait_for_function("window.cowrite && window.cowrite.state().synced")
    panel = open_versions(page)
    panel.locator("[data-testid=version-item][data-named=true]").click()
    panel.get_by_test_id("versions-diff").locator("ins").wait_for()
    for theme in ("light", "dark"):
        page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
        for selector, line in (
            ("[data-testid=versions-diff] ins", "underline"),
            ("[data-testid=versions-diff] del", "line-through"),
        ):
            measured = page.evaluate(CONTRAST_JS, selector)
            assert measured["ratio"] >= 4.5, (theme, selector, measured)
            assert measured["line"] == line, measured
            assert (sum(measured["bg"][:3]) < 200) == (theme == "dark"), measured
    writer.close()
