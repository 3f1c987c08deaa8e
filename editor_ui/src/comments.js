// Comments in the editor: select text, comment on it, reply, resolve and reopen. Each thread's span
// is highlighted in the text and the thread is listed in the margin beside it (commentmargin.js);
// the threads themselves, fetched again whenever the document socket says the comments changed
// (message 103), and their anchors in the shared text are commentthreads.js.

import { StateEffect, StateField } from "@codemirror/state";
import { Decoration, EditorView, keymap, showTooltip } from "@codemirror/view";
import { CommentMargin, commentAction } from "./commentmargin.js";
import { CommentThreads } from "./commentthreads.js";
import { element } from "./dom.js";

/** @type {import("@codemirror/state").StateEffectType<import("@codemirror/view").DecorationSet>} */
const setSpans = StateEffect.define();

/** The commented spans, kept in step with edits between two rebuilds from the Yjs anchors. */
const spans = StateField.define({
  create: () => Decoration.none,
  update(value, tr) {
    for (const effect of tr.effects) if (effect.is(setSpans)) return effect.value;
    return tr.docChanged ? value.map(tr.changes) : value;
  },
  provide: (field) => EditorView.decorations.from(field),
});

export class Comments {
  /**
   * @param {{margin: HTMLElement, id: string, ydoc: import("yjs").Doc, text: import("yjs").Text, me: string,
   *   mayComment: () => boolean, isOwner: () => boolean, onNotice: (message: string) => void}} options
   */
  constructor({ margin, id, ydoc, text, me, mayComment, isOwner, onNotice }) {
    this.mayComment = mayComment;
    this.onNotice = onNotice;
    this.threads = new CommentThreads({ id, ydoc, text, onLoaded: () => this.render(), onNotice });
    this.margin = new CommentMargin(margin, {
      threads: this.threads,
      me,
      mayComment,
      isOwner,
      onNotice,
      redraw: () => this.render(),
    });
    /** @type {EditorView | null} */
    this.view = null;
    this.rebuildQueued = false;
    // Anyone's edit moves the anchors' absolute positions: rebuild the highlights after it.
    text.observe(() => this.queueRebuild());
  }

  /** The editor extension: the highlights, the "Comment" button on a selection, Ctrl+Alt+M. */
  extension() {
    const tooltip = StateField.define({
      create: (state) => this.tooltip(state),
      update: (value, tr) => (tr.docChanged || tr.selection || tr.effects.length ? this.tooltip(tr.state) : value),
      provide: (field) => showTooltip.from(field),
    });
    return [spans, tooltip, keymap.of([{ key: "Mod-Alt-m", run: () => this.startDraft() }])];
  }

  /**
   * A "Comment" button above a non-empty selection, for those who may comment.
   * @param {import("@codemirror/state").EditorState} state
   * @returns {import("@codemirror/view").Tooltip | null}
   */
  tooltip(state) {
    const range = state.selection.main;
    if (range.empty || !this.mayComment() || this.threads.draft) return null;
    return {
      pos: range.head,
      above: range.head === range.from,
      create: () => {
        const dom = element("div", "comment-tooltip");
        dom.append(commentAction("Comment", "comment-button", () => this.startDraft()));
        return { dom };
      },
    };
  }

  /** @param {EditorView} view */
  attach(view) {
    this.view = view;
    this.margin.view = view;
    this.render();
  }

  /** The server says the comments changed, or the page (re)connected: fetch them again. */
  refresh() {
    return this.threads.refresh();
  }

  /** Open the composer for the selected text; false (the key goes on) when there is nothing to do. */
  startDraft() {
    const view = this.view;
    if (!view || !this.mayComment()) return false;
    const range = view.state.selection.main;
    if (range.empty) {
      this.onNotice("Select the text to comment on first.");
      return true;
    }
    this.threads.beginDraft(range.from, range.to, view.state.sliceDoc(range.from, range.to));
    this.render(); // the composer opens, and the "Comment" button goes meanwhile
    this.margin.focusComposer();
    return true;
  }

  /** The highlights of the threads whose text is still there (the resolved ones when shown). */
  decorations() {
    const view = this.view;
    if (!view) return Decoration.none;
    const length = view.state.doc.length;
    const marks = this.threads
      .placed()
      .filter((p) => !p.removed && p.to <= length && (this.margin.showResolved || !p.thread.resolved_at))
      .sort((a, b) => a.from - b.from)
      .map((p) =>
        Decoration.mark({
          class: p.thread.resolved_at ? "cm-comment cm-comment-resolved" : "cm-comment",
          attributes: { "data-thread": String(p.thread.id) },
        }).range(p.from, p.to),
      );
    return Decoration.set(marks, true);
  }

  queueRebuild() {
    if (this.rebuildQueued) return;
    this.rebuildQueued = true;
    queueMicrotask(() => {
      this.rebuildQueued = false;
      this.view?.dispatch({ effects: setSpans.of(this.decorations()) });
      this.margin.order();
    });
  }

  /** Draw the highlights and the margin afresh. */
  render() {
    this.view?.dispatch({ effects: setSpans.of(this.decorations()) });
    this.margin.render();
  }
}
