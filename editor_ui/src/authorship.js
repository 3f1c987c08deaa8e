// AI-authored text: every accepted suggestion is recorded in the shared document's "ai_spans"
// array, anchored with Yjs relative positions, so every writer can see which text the model wrote.

import { Compartment, StateEffect } from "@codemirror/state";
import { Decoration, EditorView, ViewPlugin } from "@codemirror/view";
import { fromBase64, toBase64 } from "lib0/buffer";
import { ySyncFacet } from "y-codemirror.next";
import * as Y from "yjs";
import { takeHandler } from "./ghost.js";

const SHOW_KEY = "cowrite.showAi";

/**
 * One entry of ai_spans, as stored: plain JSON, readable by every client and the server.
 * @typedef {object} SpanRecord
 * @property {string} start  base64 of `Y.encodeRelativePosition` at the first character
 * @property {string} end    the same just after the last character (assoc -1: text typed after
 *                           the span is not part of it)
 * @property {number | null} suggestion  the server's suggestion record
 * @property {string} user   who accepted it
 * @property {string} at     when, ISO 8601
 */

/**
 * A span where it is now.
 * @typedef {object} Span
 * @property {number} from
 * @property {number} to     equal to `from` once its text is deleted
 * @property {string} text
 * @property {string} user
 * @property {number | null} suggestion
 * @property {string} at
 */

/** The span list changed (a writer accepted a suggestion somewhere). */
const spansChanged = StateEffect.define();

export class Authorship {
  /**
   * @param {Y.Doc} ydoc
   * @param {Y.Text} text
   * @param {() => string} userName
   */
  constructor(ydoc, text, userName) {
    this.ydoc = ydoc;
    this.text = text;
    this.userName = userName;
    /** @type {Y.Array<SpanRecord>} */
    this.spans = ydoc.getArray("ai_spans");
    /**
     * Decoded positions per record; records are immutable, so this never goes stale.
     * @type {WeakMap<SpanRecord, {start: Y.RelativePosition, end: Y.RelativePosition} | null>}
     */
    this.decoded = new WeakMap();
    /** Spans written again after a redo are not undo steps of their own. */
    this.origin = { name: "cowrite.authorship" };
    /**
     * The writer's undo manager (SharedDocument.editorBinding): a take is one undo step of its own.
     * @type {Y.UndoManager | null}
     */
    this.undoManager = null;
    /** @type {Array<() => void>} */
    this.listeners = [];
    /** @type {EditorView | null} */
    this.view = null;
    this.highlight = new Compartment();
    this.shown = false;

    this.spans.observe(() => {
      this.notify();
      // Yjs calls observers as its transaction ends, which may be inside an editor update.
      queueMicrotask(() => this.shown && this.view && this.view.dispatch({ effects: spansChanged.of(null) }));
    });
    this.text.observe(() => this.notify());
  }

  /**
   * Record [from, to) of the text as written by the model. Call inside the Yjs transaction that
   * inserted it, or right after, while the positions still hold.
   * @param {number} from
   * @param {number} to
   * @param {number | null} suggestion
   */
  record(from, to, suggestion) {
    if (!(from < to) || to > this.text.length) return;
    this.spans.push([{ ...this.anchors(from, to), suggestion, user: this.userName(), at: new Date().toISOString() }]);
  }

  /**
   * @param {number} from
   * @param {number} to
   * @returns {{start: string, end: string}}
   */
  anchors(from, to) {
    const start = Y.createRelativePositionFromTypeIndex(this.text, from);
    const end = Y.createRelativePositionFromTypeIndex(this.text, to, -1);
    return { start: toBase64(Y.encodeRelativePosition(start)), end: toBase64(Y.encodeRelativePosition(end)) };
  }

  /**
   * Call after a redo. Yjs redoes an insert with new items; a span's positions find those only
   * in this client (and only until it reloads), so write such spans again with positions that
   * every client resolves.
   */
  reanchor() {
    /** @type {Array<{index: number, record: SpanRecord, from: number, to: number}>} */
    const moved = [];
    this.spans.forEach((record, index) => {
      const positions = this.positionsOf(record);
      if (!positions) return;
      const here = this.range(positions, true);
      const everywhere = this.range(positions, false);
      if (here && here.from < here.to && (!everywhere || everywhere.from >= everywhere.to)) {
        moved.push({ index, record, ...here });
      }
    });
    if (!moved.length) return;
    this.ydoc.transact(() => {
      for (const { index, record, from, to } of moved) {
        this.spans.delete(index, 1);
        this.spans.insert(index, [{ ...record, ...this.anchors(from, to) }]);
      }
    }, this.origin);
  }

  /**
   * @param {{start: Y.RelativePosition, end: Y.RelativePosition}} positions
   * @param {boolean} followRedone whether to follow this client's record of redone text
   * @returns {{from: number, to: number} | null}
   */
  range(positions, followRedone) {
    const start = Y.createAbsolutePositionFromRelativePosition(positions.start, this.ydoc, followRedone);
    const end = Y.createAbsolutePositionFromRelativePosition(positions.end, this.ydoc, followRedone);
    if (!start || !end || start.type !== this.text || end.type !== this.text) return null;
    return { from: start.index, to: Math.max(start.index, end.index) };
  }

  /** @returns {Span[]} every readable span, in the order they were recorded */
  list() {
    /** @type {Span[]} */
    const spans = [];
    const text = this.text.toString();
    this.spans.forEach((record) => {
      const span = this.resolve(record, text);
      if (span) spans.push(span);
    });
    return spans;
  }

  /**
   * @param {SpanRecord} record
   * @param {string} text the document's text now
   * @returns {Span | null}
   */
  resolve(record, text) {
    const positions = this.positionsOf(record);
    if (!positions) return null;
    const range = this.range(positions, true);
    if (!range) return null;
    const { from, to } = range;
    return {
      from,
      to,
      text: text.slice(from, to),
      user: typeof record.user === "string" ? record.user : "",
      suggestion: typeof record.suggestion === "number" ? record.suggestion : null,
      at: typeof record.at === "string" ? record.at : "",
    };
  }

  /**
   * @param {SpanRecord} record
   * @returns {{start: Y.RelativePosition, end: Y.RelativePosition} | null} null when unreadable
   */
  positionsOf(record) {
    if (typeof record !== "object" || record === null) return null;
    let positions = this.decoded.get(record);
    if (positions === undefined) {
      positions = decodePositions(record);
      this.decoded.set(record, positions);
    }
    return positions;
  }

  /** @param {() => void} listener called when spans or the text change */
  subscribe(listener) {
    this.listeners.push(listener);
  }

  notify() {
    for (const listener of this.listeners) listener();
  }

  /**
   * The editor side: takes enter the document together with their span, each as one undo step,
   * and the highlight (when shown) follows the text. Text the writer typed through (the same
   * characters as the ghost) is theirs: it is never recorded as the model's.
   * @param {boolean} show whether to highlight AI-authored text from the start
   * @param {Y.UndoManager | null} [undoManager] the writer's undo manager
   */
  extension(show, undoManager = null) {
    this.undoManager = undoManager;
    return [
      takeHandler.of((view, spec, taking) => {
        // Yjs merges changes made close together into one undo step; closing the step before
        // and after a take makes Ctrl+Z take back exactly it (Tab: the whole suggestion; each
        // Ctrl+→: one word), never the typing around it.
        if (this.undoManager) this.undoManager.stopCapturing();
        // The sync plugin writes the insert to the Y.Text inside this transaction; giving it the
        // plugin's own origin keeps it from echoing the insert back and makes it one undo step.
        this.ydoc.transact(() => {
          view.dispatch(spec);
          this.record(taking.from, taking.to, taking.suggestion);
        }, view.state.facet(ySyncFacet));
        if (this.undoManager) this.undoManager.stopCapturing();
      }),
      this.highlight.of(this.highlighting(show)),
    ];
  }

  /** @param {boolean} show */
  highlighting(show) {
    this.shown = show;
    return show ? highlighter(this) : [];
  }

  /** @param {EditorView} view */
  attach(view) {
    this.view = view;
  }

  /** @param {boolean} show */
  setHighlight(show) {
    if (this.view) this.view.dispatch({ effects: this.highlight.reconfigure(this.highlighting(show)) });
  }
}

/**
 * @param {SpanRecord} record
 * @returns {{start: Y.RelativePosition, end: Y.RelativePosition} | null}
 */
function decodePositions(record) {
  if (typeof record.start !== "string" || typeof record.end !== "string") return null;
  try {
    return {
      start: Y.decodeRelativePosition(fromBase64(record.start)),
      end: Y.decodeRelativePosition(fromBase64(record.end)),
    };
  } catch (exc) {
    // Another client wrote something unreadable; it must not break this writer's page.
    console.warn("Cowrite: ignoring an unreadable AI span", record, exc);
    return null;
  }
}

const aiMark = Decoration.mark({ class: "cm-ai", attributes: { title: "Written by the model" } });

/** @param {Authorship} authorship */
function decorations(authorship) {
  const ranges = authorship
    .list()
    .filter((span) => span.from < span.to)
    .map((span) => aiMark.range(span.from, span.to));
  return Decoration.set(ranges, true);
}

/** @param {Authorship} authorship */
function highlighter(authorship) {
  return ViewPlugin.define(
    () => ({
      decorations: decorations(authorship),
      /** @param {import("@codemirror/view").ViewUpdate} update */
      update(update) {
        const spans = update.transactions.some((tr) => tr.effects.some((effect) => effect.is(spansChanged)));
        if (update.docChanged || spans) this.decorations = decorations(authorship);
      },
    }),
    { decorations: (plugin) => plugin.decorations },
  );
}

/**
 * The toolbar switch for the highlight, remembered across visits.
 * @param {HTMLInputElement} input
 * @param {Authorship} authorship
 */
export function bindHighlightToggle(input, authorship) {
  input.checked = storedHighlight();
  input.addEventListener("change", () => {
    try {
      localStorage.setItem(SHOW_KEY, input.checked ? "1" : "0");
    } catch {
      // Still applies to this page.
    }
    authorship.setHighlight(input.checked);
  });
}

/** Whether the writer last chose to see AI-authored text highlighted. */
export function storedHighlight() {
  try {
    return localStorage.getItem(SHOW_KEY) === "1";
  } catch {
    return false;
  }
}
