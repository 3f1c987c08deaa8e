// Markdown formatting as you write: the text stays Markdown, drawn in the styles it stands for
// (classes styled in app.css, so both themes apply), and the keys that put the marks in or take
// them out: Ctrl/Cmd+B bold, Ctrl/Cmd+I italic, Ctrl/Cmd+K link.

import { HighlightStyle, ensureSyntaxTree, syntaxHighlighting, syntaxTree } from "@codemirror/language";
import { EditorSelection, Prec } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { tags } from "@lezer/highlight";

// One class per meaning; lezer gives a node the classes of the nodes it sits in, so the `**` of a
// bold word carries both `cm-md-strong` and `cm-md-mark`, and app.css lets the mark's look win.
const markdownClasses = HighlightStyle.define([
  { tag: tags.heading1, class: "cm-md-h1" },
  { tag: tags.heading2, class: "cm-md-h2" },
  { tag: tags.heading3, class: "cm-md-h3" },
  { tag: [tags.heading4, tags.heading5, tags.heading6], class: "cm-md-h4" },
  { tag: tags.strong, class: "cm-md-strong" },
  { tag: tags.emphasis, class: "cm-md-em" },
  { tag: tags.strikethrough, class: "cm-md-strike" },
  { tag: tags.monospace, class: "cm-md-code" },
  { tag: tags.quote, class: "cm-md-quote" },
  { tag: tags.list, class: "cm-md-list" },
  { tag: tags.link, class: "cm-md-link" },
  { tag: tags.url, class: "cm-md-url" },
  // The marks themselves (#, **, _, `, >, -, [, ](url)) and horizontal rules: dimmed, still there.
  { tag: [tags.processingInstruction, tags.contentSeparator, tags.labelName, tags.meta], class: "cm-md-mark" },
]);

/** @typedef {import("@codemirror/view").EditorView} EditorView */
/** @typedef {import("@codemirror/state").EditorState} EditorState */
/** @typedef {import("@codemirror/state").SelectionRange} SelectionRange */
/** @typedef {import("@lezer/common").SyntaxNode} SyntaxNode */

// How far a command may wait for the parser to reach the selection (a long document is parsed
// lazily); past it, the tree parsed so far decides.
const PARSE_WAIT_MS = 50;

/** @param {EditorState} state */
function treeFor(state) {
  return ensureSyntaxTree(state, state.selection.main.to, PARSE_WAIT_MS) || syntaxTree(state);
}

/**
 * The innermost node named `name` that holds the whole range, if any.
 * @param {import("@lezer/common").Tree} tree
 * @param {SelectionRange} range
 * @param {string} name
 * @returns {SyntaxNode | null}
 */
function enclosing(tree, range, name) {
  for (const side of /** @type {const} */ ([1, -1])) {
    /** @type {SyntaxNode | null} */
    let node = tree.resolveInner(range.empty ? range.head : side === 1 ? range.from : range.to, side);
    for (; node; node = node.parent) {
      if (node.name === name && node.from <= range.from && node.to >= range.to) return node;
    }
  }
  return null;
}

/**
 * The text a command acts on: the selection without the spaces at its ends (Markdown marks must
 * touch the text), or the word at an empty cursor.
 * @param {EditorState} state
 * @param {SelectionRange} range
 * @returns {{from: number, to: number} | null} null for an empty cursor outside any word
 */
function target(state, range) {
  if (range.empty) {
    const word = state.wordAt(range.head);
    return word ? { from: word.from, to: word.to } : null;
  }
  const text = state.sliceDoc(range.from, range.to);
  const from = range.from + (text.length - text.trimStart().length);
  const to = range.to - (text.length - text.trimEnd().length);
  return from < to ? { from, to } : { from: range.from, to: range.from };
}

/**
 * @param {EditorView} view
 * @param {(state: EditorState, range: SelectionRange, tree: import("@lezer/common").Tree) => {changes: import("@codemirror/state").ChangeSpec, range: SelectionRange}} perRange
 */
function run(view, perRange) {
  const { state } = view;
  // Those who may only read (viewers, commenters) get no formatting keys: the key goes on to
  // the browser, as it would on any page.
  if (state.readOnly) return false;
  const tree = treeFor(state);
  const spec = state.changeByRange((range) => perRange(state, range, tree));
  view.dispatch(state.update(spec, { userEvent: "input.format", scrollIntoView: true }));
  return true;
}

/**
 * A command that toggles an emphasis: inside one of the kind, its marks are taken out; otherwise
 * the selection (or the word at the cursor) is wrapped in `mark`.
 * @param {"StrongEmphasis" | "Emphasis"} kind
 * @param {(state: EditorState, from: number, to: number) => string} markFor
 * @returns {(view: EditorView) => boolean}
 */
function toggleEmphasis(kind, markFor) {
  return (view) =>
    run(view, (state, range, tree) => {
      const node = enclosing(tree, range, kind);
      const open = node && node.firstChild;
      const close = node && node.lastChild;
      if (node && open && close && open.name === "EmphasisMark" && close.name === "EmphasisMark" && open !== close) {
        const changes = state.changes([
          { from: open.from, to: open.to },
          { from: close.from, to: close.to },
        ]);
        return { changes, range: EditorSelection.range(changes.mapPos(range.anchor, -1), changes.mapPos(range.head, -1)) };
      }
      const where = target(state, range);
      if (!where || where.from === where.to) {
        const at = range.empty ? range.head : range.from;
        const mark = markFor(state, at, at);
        // A second press right after the first (no text typed between the marks) takes them out.
        if (state.sliceDoc(at - mark.length, at + mark.length) === mark + mark) {
          return {
            changes: { from: at - mark.length, to: at + mark.length },
            range: EditorSelection.cursor(at - mark.length),
          };
        }
        return { changes: { from: at, insert: mark + mark }, range: EditorSelection.cursor(at + mark.length) };
      }
      const mark = markFor(state, where.from, where.to);
      const changes = [
        { from: where.from, insert: mark },
        { from: where.to, insert: mark },
      ];
      const moved = range.empty
        ? EditorSelection.cursor(range.head + mark.length)
        : EditorSelection.range(where.from + mark.length, where.to + mark.length);
      return { changes, range: moved };
    });
}

const WORD_CHAR = /[\p{L}\p{N}]/u;

/**
 * Italic is written `_text_`, except inside a word, where Markdown only honours `*`.
 * @param {EditorState} state
 * @param {number} from
 * @param {number} to
 */
function italicMark(state, from, to) {
  const before = state.sliceDoc(from - 1, from);
  const after = state.sliceDoc(to, to + 1);
  return WORD_CHAR.test(before) || WORD_CHAR.test(after) ? "*" : "_";
}

export const toggleBold = toggleEmphasis("StrongEmphasis", () => "**");
export const toggleItalic = toggleEmphasis("Emphasis", italicMark);

const LOOKS_LIKE_URL = /^(?:https?:\/\/|mailto:|www\.)\S+$/i;
const URL_PLACEHOLDER = "url";
const TEXT_PLACEHOLDER = "link text";

/**
 * Ctrl/Cmd+K: inside a link, the link gives way to its text; otherwise the selection (or the word
 * at the cursor) becomes `[text](url)` with the placeholder `url` selected to be typed over. A
 * selected address becomes the link's address, with its text to be typed.
 * @param {EditorView} view
 */
export function toggleLink(view) {
  return run(view, (state, range, tree) => {
    const link = enclosing(tree, range, "Link");
    if (link) {
      const marks = link.getChildren("LinkMark");
      if (marks.length >= 2 && state.sliceDoc(marks[0].from, marks[0].to) === "[") {
        const text = state.sliceDoc(marks[0].to, marks[1].from);
        return {
          changes: { from: link.from, to: link.to, insert: text },
          range: EditorSelection.range(link.from, link.from + text.length),
        };
      }
    }
    const where = target(state, range) || { from: range.head, to: range.head };
    const text = state.sliceDoc(where.from, where.to);
    if (LOOKS_LIKE_URL.test(text)) {
      const insert = `[${TEXT_PLACEHOLDER}](${text})`;
      return {
        changes: { from: where.from, to: where.to, insert },
        range: EditorSelection.range(where.from + 1, where.from + 1 + TEXT_PLACEHOLDER.length),
      };
    }
    const shown = text || TEXT_PLACEHOLDER;
    const insert = `[${shown}](${URL_PLACEHOLDER})`;
    const urlAt = where.from + shown.length + 3;
    return {
      changes: { from: where.from, to: where.to, insert },
      range: EditorSelection.range(urlAt, urlAt + URL_PLACEHOLDER.length),
    };
  });
}

/** The Markdown styles and the formatting keys. */
export function formatting() {
  return [
    syntaxHighlighting(markdownClasses),
    // Above the default keymap, whose Mod-i selects the enclosing syntax node.
    Prec.high(
      keymap.of([
        { key: "Mod-b", run: toggleBold },
        { key: "Mod-i", run: toggleItalic },
        { key: "Mod-k", run: toggleLink },
      ]),
    ),
  ];
}
