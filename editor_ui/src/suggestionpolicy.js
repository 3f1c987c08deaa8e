// Where the editor does not ask for suggestions: in an address (a link's target, an autolink, a
// web address being typed) or in code, where the model's prose is only in the way.

import { ensureSyntaxTree, syntaxTree } from "@codemirror/language";

/**
 * Why no suggestion is asked for at a spot.
 * @typedef {"link" | "address" | "code"} Refusal
 */
/** @typedef {import("@lezer/common").SyntaxNode} SyntaxNode */

/**
 * What the status bar says when the writer asks (Ctrl+Space) at such a spot.
 * @type {Record<Refusal, string>}
 */
export const REFUSAL_NOTICES = {
  link: "No suggestions in a link's address.",
  address: "No suggestions in a web address.",
  code: "No suggestions in code.",
};

// How long the decision may wait for the parser to reach the cursor (a long document is parsed
// lazily); past it, the tree parsed so far and the text before the cursor decide.
const PARSE_WAIT_MS = 20;
// The parser knows an address only once it is complete: an unclosed `<https://…` or
// `[text](https://…` is still plain text to it, so the text before the cursor is read as well.
const ADDRESS_BEFORE = /(?:https?:\/\/|\bwww\.|\bmailto:)\S*$/i;
const LINK_TARGET_BEFORE = /\]\([^\s()]*$/;
// Constructs whose closing mark ends where the cursor is: the cursor is after them, not in them.
const CLOSED_BY_MARK = new Set(["Link", "Autolink", "InlineCode"]);

/**
 * Why the editor should not ask for a suggestion with the cursor at `pos`, or null where it may.
 * @param {import("@codemirror/state").EditorState} state
 * @param {number} pos
 * @returns {Refusal | null}
 */
export function refusalAt(state, pos) {
  const tree = ensureSyntaxTree(state, pos, PARSE_WAIT_MS) || syntaxTree(state);
  const before = tree.resolveInner(pos, -1);
  if (justClosed(before, pos)) return null;
  for (let node = /** @type {SyntaxNode | null} */ (before); node; node = node.parent) {
    const refusal = refusalIn(state, node, pos);
    if (refusal) return refusal;
  }
  const line = state.doc.lineAt(pos);
  const typed = state.sliceDoc(line.from, pos);
  if (LINK_TARGET_BEFORE.test(typed)) return "link";
  if (ADDRESS_BEFORE.test(typed)) return "address";
  return null;
}

/**
 * The cursor sits right after the `)` of a link, the `>` of an autolink or the closing backtick
 * of inline code: what comes next is prose again.
 * @param {SyntaxNode} node the innermost node ending at or around `pos`
 * @param {number} pos
 */
function justClosed(node, pos) {
  const parent = node.parent;
  return (
    (node.name === "LinkMark" || node.name === "CodeMark") &&
    node.to === pos &&
    parent !== null &&
    parent.to === pos &&
    CLOSED_BY_MARK.has(parent.name)
  );
}

/**
 * @param {import("@codemirror/state").EditorState} state
 * @param {SyntaxNode} node a node around the cursor
 * @param {number} pos
 * @returns {Refusal | null}
 */
function refusalIn(state, node, pos) {
  switch (node.name) {
    case "InlineCode":
      return node.from < pos && pos < node.to ? "code" : null;
    case "FencedCode":
    case "CodeBlock":
      // an unclosed fence runs to the end of the document, the cursor there included
      return node.from < pos && pos <= node.to ? "code" : null;
    case "URL":
      return node.from < pos && pos <= node.to ? (node.parent?.name === "Link" ? "link" : "address") : null;
    case "Autolink":
      return node.from < pos && pos < node.to ? "address" : null;
    case "Link":
      return inLinkTarget(state, node, pos) ? "link" : null;
    default:
      return null;
  }
}

/**
 * Between a link's `(` and its `)` (or the line's end, while the `)` is not typed yet), where
 * its address and title go.
 * @param {import("@codemirror/state").EditorState} state
 * @param {SyntaxNode} link
 * @param {number} pos
 */
function inLinkTarget(state, link, pos) {
  const marks = link.getChildren("LinkMark");
  const open = marks.find((mark) => state.sliceDoc(mark.from, mark.to) === "(");
  if (!open || pos < open.to) return false;
  const close = marks.find((mark) => mark.from >= open.to && state.sliceDoc(mark.from, mark.to) === ")");
  return !close || pos <= close.from;
}
