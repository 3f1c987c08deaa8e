// Comments (issue 12, item 3): select text, comment on it, reply, resolve and reopen. A thread is
// anchored with two Yjs relative positions on the shared text, so it follows everyone's edits; its
// span is highlighted in the editor and the thread is listed in a margin beside the text, in text
// order. The list comes from the server over HTTP, fetched again whenever the document socket says
// the comments changed (message 103), so all a page shows of others is validated server data.

import { StateEffect, StateField } from "@codemirror/state";
import { Decoration, EditorView, keymap, showTooltip } from "@codemirror/view";
import { fromBase64, toBase64 } from "lib0/buffer";
import * as Y from "yjs";
import { ApiError, callApi } from "./api.js";
import { timeAgo } from "./time.js";

/** The server's bounds (storage/models.py): a longer quote is cut, a longer body refused. */
const QUOTE_MAX = 500;
const COMMENT_MAX = 2000;

/**
 * @typedef {{id: number, thread_id: number | null, author: string, body: string, created_at: string,
 *   edited_at: string | null}} Comment
 * @typedef {Comment & {anchor_start: string, anchor_end: string, quote: string,
 *   resolved_at: string | null, resolved_by: string | null, replies: Comment[]}} Thread
 * @typedef {{thread: Thread, from: number, to: number, removed: boolean}} Placed
 */

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

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 */
function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

/**
 * @param {string} label
 * @param {string} testid
 * @param {() => void} action
 */
function button(label, testid, action) {
  const made = /** @type {HTMLButtonElement} */ (element("button", "button quiet comment-action", label));
  made.type = "button";
  made.dataset.testid = testid;
  made.addEventListener("click", (event) => {
    event.stopPropagation();
    action();
  });
  return made;
}

export class Comments {
  /**
   * @param {{margin: HTMLElement, id: string, ydoc: Y.Doc, text: Y.Text, me: string,
   *   mayComment: () => boolean, isOwner: () => boolean, onNotice: (message: string) => void}} options
   */
  constructor({ margin, id, ydoc, text, me, mayComment, isOwner, onNotice }) {
    this.margin = margin;
    this.path = `/api/documents/${encodeURIComponent(id)}/comments`;
    this.ydoc = ydoc;
    this.text = text;
    this.me = me;
    this.mayComment = mayComment;
    this.isOwner = isOwner;
    this.onNotice = onNotice;
    /** @type {Thread[]} */
    this.threads = [];
    this.showResolved = false;
    /** @type {EditorView | null} */
    this.view = null;
    /** The span a comment is being written for, while the composer is open. */
    /** @type {{start: string, end: string, quote: string} | null} */
    this.draft = null;
    this.loading = false;
    this.again = false;
    /** The comment of this writer's being rewritten, and its words so far. */
    /** @type {{id: number, value: string} | null} */
    this.editing = null;
    this.rebuildQueued = false;
    // Anyone's edit moves the anchors' absolute positions: rebuild the highlights after it.
    this.text.observe(() => this.queueRebuild());
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
    if (range.empty || !this.mayComment() || this.draft) return null;
    return {
      pos: range.head,
      above: range.head === range.from,
      create: () => {
        const dom = element("div", "comment-tooltip");
        dom.append(button("Comment", "comment-button", () => this.startDraft()));
        return { dom };
      },
    };
  }

  /** @param {EditorView} view */
  attach(view) {
    this.view = view;
    this.render();
  }

  /** The server says the comments changed, or the page (re)connected: fetch them again. */
  async refresh() {
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    try {
      do {
        this.again = false;
        const body = await callApi("GET", this.path);
        this.threads = Array.isArray(body.threads) ? body.threads : [];
      } while (this.again);
      this.render();
    } catch (exc) {
      this.onNotice(`Could not load the comments: ${exc instanceof Error ? exc.message : exc}`);
    } finally {
      this.loading = false;
    }
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
    const anchor = (/** @type {number} */ index, /** @type {number} */ assoc) =>
      toBase64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(this.text, index, assoc)));
    this.draft = {
      // the start sticks to the first commented character, the end to the last one
      start: anchor(range.from, 0),
      end: anchor(range.to, -1),
      quote: view.state.sliceDoc(range.from, Math.min(range.to, range.from + QUOTE_MAX)),
    };
    view.dispatch({ effects: setSpans.of(this.decorations()) }); // hides the button meanwhile
    this.render();
    const field = /** @type {HTMLTextAreaElement | null} */ (this.margin.querySelector("[data-testid=comment-input]"));
    field?.focus();
    return true;
  }

  /**
   * Where each thread's text is now; `removed` when its text is gone.
   * @returns {Placed[]}
   */
  placed() {
    const length = this.text.length;
    return this.threads.map((thread) => {
      const from = this.resolve(thread.anchor_start);
      const to = this.resolve(thread.anchor_end);
      const removed = from === null || to === null || to <= from;
      return {
        thread,
        from: removed ? 0 : Math.min(from, length),
        to: removed ? 0 : Math.min(to, length),
        removed,
      };
    });
  }

  /**
   * @param {string} anchor
   * @returns {number | null}
   */
  resolve(anchor) {
    try {
      const position = Y.decodeRelativePosition(fromBase64(anchor));
      const absolute = Y.createAbsolutePositionFromRelativePosition(position, this.ydoc);
      return absolute && absolute.type === this.text ? absolute.index : null;
    } catch {
      return null; // not a position of this document
    }
  }

  decorations() {
    const view = this.view;
    if (!view) return Decoration.none;
    const length = view.state.doc.length;
    const marks = this.placed()
      .filter((p) => !p.removed && p.to <= length && (this.showResolved || !p.thread.resolved_at))
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
      this.order();
    });
  }

  /** Keep the margin in text order, and its quotes as the text now reads, as edits go on. */
  order() {
    const list = this.margin.querySelector(".comment-list");
    if (!list) return;
    const at = new Map(this.placed().map((p) => [p.thread.id, p]));
    const items = /** @type {HTMLElement[]} */ ([...list.children]);
    for (const item of items) {
      const p = at.get(Number(item.dataset.threadId));
      const quote = item.querySelector("[data-testid=comment-quote]");
      if (p && quote) this.showQuote(/** @type {HTMLElement} */ (quote), p);
    }
    const key = (/** @type {HTMLElement} */ item) => {
      const p = at.get(Number(item.dataset.threadId));
      return p && !p.removed ? p.from : Number.MAX_SAFE_INTEGER;
    };
    const sorted = [...items].sort((a, b) => key(a) - key(b));
    if (sorted.some((item, i) => item !== items[i])) list.append(...sorted);
  }

  render() {
    const view = this.view;
    if (view) view.dispatch({ effects: setSpans.of(this.decorations()) });
    const placed = this.placed().sort(
      (a, b) => Number(a.removed) - Number(b.removed) || a.from - b.from || a.thread.id - b.thread.id,
    );
    const open = placed.filter((p) => !p.thread.resolved_at);
    const resolved = placed.filter((p) => p.thread.resolved_at);
    const active = /** @type {HTMLElement | null} */ (document.activeElement);
    const focused = active && active.tagName === "TEXTAREA" && this.margin.contains(active) ? active.dataset.replyTo || active.dataset.testid : null;
    const drafts = this.replyDrafts();
    this.margin.replaceChildren();
    this.margin.hidden = placed.length === 0 && !this.draft;
    document.body.classList.toggle("has-comments", !this.margin.hidden);
    const heading = element("h2", "comments-heading", "Comments");
    this.margin.append(heading);
    if (this.draft) this.margin.append(this.composer());
    const list = element("ol", "comment-list");
    list.dataset.testid = "comment-list";
    for (const p of this.showResolved ? [...open, ...resolved] : open) list.append(this.threadItem(p, drafts));
    this.margin.append(list);
    if (resolved.length) {
      const toggle = button(
        this.showResolved ? `Hide resolved (${resolved.length})` : `Show resolved (${resolved.length})`,
        "show-resolved",
        () => {
          this.showResolved = !this.showResolved;
          this.render();
        },
      );
      this.margin.append(toggle);
    }
    if (focused) {
      // the same field as before the list was redrawn (a reply being written, or the composer)
      const again = this.margin.querySelector(`[data-reply-to="${focused}"], [data-testid="${focused}"]`);
      /** @type {HTMLElement | null} */ (again)?.focus();
    }
  }

  /** Replies being written survive a re-render (someone else's comment arrives meanwhile). */
  replyDrafts() {
    /** @type {Map<string, string>} */
    const drafts = new Map();
    for (const field of this.margin.querySelectorAll("textarea[data-reply-to]")) {
      const area = /** @type {HTMLTextAreaElement} */ (field);
      if (area.value) drafts.set(area.dataset.replyTo || "", area.value);
    }
    return drafts;
  }

  composer() {
    const form = element("form", "comment-composer");
    form.dataset.testid = "comment-composer";
    const quote = element("blockquote", "comment-quote", this.draft?.quote || "");
    const field = /** @type {HTMLTextAreaElement} */ (element("textarea"));
    field.dataset.testid = "comment-input";
    field.rows = 3;
    field.maxLength = COMMENT_MAX;
    field.placeholder = "Add a comment";
    field.setAttribute("aria-label", "Your comment");
    const row = element("div", "comment-buttons");
    const submit = /** @type {HTMLButtonElement} */ (element("button", "button primary", "Comment"));
    submit.type = "submit";
    submit.dataset.testid = "comment-submit";
    row.append(submit, button("Cancel", "comment-cancel", () => this.cancelDraft()));
    form.append(quote, field, row);
    field.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.cancelDraft();
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const draft = this.draft;
      if (!draft || !field.value.trim()) {
        this.onNotice("Write something first.");
        return;
      }
      submit.disabled = true;
      const body = { body: field.value, anchor_start: draft.start, anchor_end: draft.end, quote: draft.quote };
      if (await this.send("POST", this.path, body)) {
        this.draft = null;
        await this.refresh();
        this.view?.focus();
      } else {
        submit.disabled = false;
      }
    });
    return form;
  }

  cancelDraft() {
    this.draft = null;
    this.render();
    this.view?.focus();
  }

  /**
   * @param {Placed} placed
   * @param {Map<string, string>} drafts
   */
  threadItem({ thread, from, to, removed }, drafts) {
    const item = element("li", "comment-thread");
    item.dataset.testid = "comment-thread";
    item.dataset.threadId = String(thread.id);
    if (thread.resolved_at) item.dataset.resolved = "true";
    const quote = element("blockquote", "comment-quote");
    quote.dataset.testid = "comment-quote";
    this.showQuote(quote, { thread, from, to, removed });
    item.append(quote);
    item.append(this.commentBlock(thread));
    for (const reply of thread.replies || []) item.append(this.commentBlock(reply));
    if (thread.resolved_at) {
      item.append(element("p", "comment-resolved-note", `Resolved by ${thread.resolved_by || "someone"}`));
    }
    if (this.mayComment()) {
      const actions = element("div", "comment-buttons");
      const reply = /** @type {HTMLTextAreaElement} */ (element("textarea", "comment-reply"));
      reply.dataset.testid = "reply-input";
      reply.dataset.replyTo = String(thread.id);
      reply.rows = 1;
      reply.maxLength = COMMENT_MAX;
      reply.placeholder = "Reply";
      reply.setAttribute("aria-label", "Your reply");
      reply.value = drafts.get(String(thread.id)) || "";
      const sendReply = async () => {
        if (!reply.value.trim()) {
          this.onNotice("Write a reply first.");
          return;
        }
        if (await this.send("POST", this.path, { body: reply.value, thread_id: thread.id })) {
          reply.value = "";
          await this.refresh();
        }
      };
      reply.addEventListener("click", (event) => event.stopPropagation());
      reply.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey) {
          event.preventDefault();
          sendReply();
        }
      });
      actions.append(button("Reply", "reply-submit", sendReply));
      actions.append(
        thread.resolved_at
          ? button("Reopen", "reopen", () => this.change(thread.id, { resolved: false }))
          : button("Resolve", "resolve", () => this.change(thread.id, { resolved: true })),
      );
      item.append(reply, actions);
    }
    item.addEventListener("click", () => {
      // where the text is now: it may have moved since the list was drawn
      const now = this.placed().find((p) => p.thread.id === thread.id);
      const view = this.view;
      if (!now || now.removed || !view || now.to > view.state.doc.length) return;
      view.dispatch({ selection: { anchor: now.from, head: now.to }, scrollIntoView: true });
      view.focus();
    });
    return item;
  }

  /**
   * The thread's text as it reads now, or its saved quote marked as removed.
   * @param {HTMLElement} quote
   * @param {Placed} placed
   */
  showQuote(quote, { thread, from, to, removed }) {
    quote.classList.toggle("removed", removed);
    if (removed) {
      quote.replaceChildren(element("span", "comment-removed", "text removed: "), thread.quote);
      return;
    }
    const now = this.view ? this.view.state.sliceDoc(from, Math.min(to, from + 200)) : thread.quote;
    if (quote.textContent !== now) quote.textContent = now;
  }

  /** @param {Comment} comment */
  commentBlock(comment) {
    const block = element("div", "comment");
    block.dataset.testid = comment.thread_id === null ? "comment-first" : "comment-reply";
    block.dataset.commentId = String(comment.id);
    const meta = element("div", "comment-meta");
    meta.append(element("strong", "comment-author", comment.author));
    const when = element("time", "comment-time", timeAgo(comment.created_at));
    when.setAttribute("datetime", comment.created_at);
    when.title = new Date(comment.created_at).toLocaleString();
    meta.append(" ", when);
    if (comment.edited_at) meta.append(element("span", "comment-time", " (edited)"));
    const tools = element("span", "comment-tools");
    if (this.mayComment() && comment.author === this.me) {
      tools.append(
        button("Edit", "comment-edit", () => {
          this.editing = { id: comment.id, value: comment.body };
          this.render();
        }),
      );
    }
    if (this.mayComment() && (comment.author === this.me || this.isOwner())) {
      tools.append(
        button("Delete", "comment-delete", () => {
          if (comment.thread_id === null && !confirm("Delete this thread and its replies?")) return;
          this.remove(comment.id);
        }),
      );
    }
    meta.append(tools);
    if (this.editing && this.editing.id === comment.id && this.mayComment()) {
      block.append(meta, this.bodyEditor(this.editing));
      return block;
    }
    const body = element("p", "comment-body", comment.body);
    body.dataset.testid = "comment-body";
    block.append(meta, body);
    return block;
  }

  /**
   * Rewriting one's own comment; the words being written survive a redraw of the list.
   * @param {{id: number, value: string}} editing
   */
  bodyEditor(editing) {
    const form = element("form", "comment-edit-form");
    const field = /** @type {HTMLTextAreaElement} */ (element("textarea", "comment-reply"));
    field.dataset.testid = "edit-input";
    field.maxLength = COMMENT_MAX;
    field.rows = 2;
    field.value = editing.value;
    field.setAttribute("aria-label", "Your comment");
    field.addEventListener("input", () => (editing.value = field.value));
    field.addEventListener("click", (event) => event.stopPropagation());
    const row = element("div", "comment-buttons");
    const save = /** @type {HTMLButtonElement} */ (element("button", "button primary comment-action", "Save"));
    save.type = "submit";
    save.dataset.testid = "edit-save";
    const stop = () => {
      this.editing = null;
      this.render();
    };
    row.append(save, button("Cancel", "edit-cancel", stop));
    form.append(field, row);
    form.addEventListener("click", (event) => event.stopPropagation());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!field.value.trim()) {
        this.onNotice("Write something first.");
        return;
      }
      if (await this.send("PATCH", `${this.path}/${editing.id}`, { body: field.value })) {
        this.editing = null;
        await this.refresh();
      }
    });
    queueMicrotask(() => field.isConnected && document.activeElement === document.body && field.focus());
    return form;
  }

  /**
   * @param {number} id
   * @param {{resolved?: boolean, body?: string}} change
   */
  async change(id, change) {
    if (await this.send("PATCH", `${this.path}/${id}`, change)) await this.refresh();
  }

  /** @param {number} id */
  async remove(id) {
    if (await this.send("DELETE", `${this.path}/${id}`)) await this.refresh();
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
  async send(method, path, body) {
    try {
      await callApi(method, path, body);
      return true;
    } catch (exc) {
      const message = exc instanceof ApiError || exc instanceof Error ? exc.message : String(exc);
      this.onNotice(`The comment was not saved: ${message}`);
      return false;
    }
  }
}
