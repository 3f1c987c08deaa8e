// The writing surface: CodeMirror set up for prose in Markdown, drawn in the page's theme colours,
// with the Markdown styled as written.

import { defaultKeymap } from "@codemirror/commands";
import { markdownKeymap, markdownLanguage, pasteURLAsLink } from "@codemirror/lang-markdown";
import { LanguageSupport } from "@codemirror/language";
import { search, searchKeymap } from "@codemirror/search";
import { Prec } from "@codemirror/state";
import { EditorView, drawSelection, keymap, placeholder } from "@codemirror/view";
import { formatting } from "./formatting.js";

// Colours come from app.css custom properties, so the editor follows the light/dark switch
// without being reconfigured.
const proseTheme = EditorView.theme({
  "&": {
    height: "100%",
    color: "var(--ink)",
    backgroundColor: "transparent",
    fontSize: "var(--prose-size)",
  },
  "&.cm-focused": { outline: "none" },
  ".cm-scroller": {
    fontFamily: "var(--serif)",
    lineHeight: "1.75",
    overflowY: "auto",
  },
  ".cm-content": {
    maxWidth: "40em",
    width: "100%",
    margin: "0 auto",
    padding: "2.5rem 1.5rem 40vh",
    boxSizing: "border-box",
    caretColor: "var(--ink)",
  },
  ".cm-line": { padding: "0" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--ink)", borderLeftWidth: "2px" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, ::selection":
    { backgroundColor: "var(--selection)" },
  ".cm-placeholder": { color: "var(--faint)", fontStyle: "italic" },
  ".cm-searchMatch": { backgroundColor: "var(--match)", outline: "none" },
  ".cm-panels": {
    backgroundColor: "var(--surface)",
    color: "var(--ink)",
    fontFamily: "var(--sans)",
    fontSize: "14px",
  },
  ".cm-panels.cm-panels-top": { borderBottom: "1px solid var(--line)" },
  ".cm-panel.cm-search input, .cm-panel.cm-search button": { fontFamily: "inherit" },
});

// Markdown (GitHub flavour) without `markdown()`'s HTML-in-Markdown support: that pulls the HTML,
// CSS and JavaScript parsers into the bundle (about 170 kB) for something prose rarely holds.
// Enter still continues lists and quotes.
const proseMarkdown = new LanguageSupport(markdownLanguage, [
  pasteURLAsLink,
  Prec.high(keymap.of(markdownKeymap)),
]);

/**
 * CodeMirror extensions for writing prose. Undo comes with the shared document (collab.js): it
 * must take back this writer's edits only, never the others'.
 */
export function writingSurface() {
  return [
    drawSelection(),
    search({ top: true }),
    keymap.of([...defaultKeymap, ...searchKeymap]),
    proseMarkdown,
    // Markdown styled as written, and Ctrl/Cmd+B, I and K (formatting.js).
    formatting(),
    EditorView.lineWrapping,
    placeholder("Start writing…"),
    EditorView.contentAttributes.of({ spellcheck: "true", "aria-label": "Document text" }),
    EditorView.editorAttributes.of({ "data-testid": "editor" }),
    proseTheme,
  ];
}
