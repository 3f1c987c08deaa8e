// The comments margin beside the text: the composer for a new thread, each thread with its quote,
// comments, reply field and Resolve or Reopen, in text order, and the resolved ones on request.
// What it shows comes from commentthreads.js; it holds only what is being typed.

import { button, element } from "./dom.js";
import { timeAgo } from "./time.js";

/** @typedef {import("./commentthreads.js").CommentThreads} CommentThreads */
/** @typedef {import("./commentthreads.js").Comment} Comment */
/** @typedef {import("./commentthreads.js").Placed} Placed */
/** @typedef {import("@codemirror/view").EditorView} EditorView */

/** The server's bound on a comment (storage/models.py): the field stops there. */
const COMMENT_MAX = 2000;
/** A quote shows this much of its thread's current text at most. */
const QUOTE_SHOWN = 200;

/**
 * A small button of a comment or thread. Its click stays its own: the thread around it selects
 * its text in the editor when clicked.
 * @param {string} label
 * @param {string} testid
 * @param {() => void} action
 */
export function commentAction(label, testid, action) {
  return button(
    label,
    testid,
    (event) => {
      event.stopPropagation();
      action();
    },
    "button quiet comment-action",
  );
}

export class CommentMargin {
  /**
   * @param {HTMLElement} root the margin's element
   * @param {{threads: CommentThreads, me: string, mayComment: () => boolean, isOwner: () => boolean,
   *   onNotice: (message: string) => void, redraw: () => void}} options `redraw` draws the
   *   highlights in the editor and this margin again
   */
  constructor(root, { threads, me, mayComment, isOwner, onNotice, redraw }) {
    this.root = root;
    this.threads = threads;
    this.me = me;
    this.mayComment = mayComment;
    this.isOwner = isOwner;
    this.onNotice = onNotice;
    this.redraw = redraw;
    /** Resolved threads are listed (and highlighted) too. */
    this.showResolved = false;
    /**
     * The comment of this writer's being rewritten, and its words so far.
     * @type {{id: number, value: string} | null}
     */
    this.editing = null;
    /** @type {EditorView | null} */
    this.view = null;
  }

  /** Draw the margin afresh, keeping the field being typed in focused and the replies being written. */
  render() {
    const placed = this.threads
      .placed()
      .sort((a, b) => Number(a.removed) - Number(b.removed) || a.from - b.from || a.thread.id - b.thread.id);
    const open = placed.filter((p) => !p.thread.resolved_at);
    const resolved = placed.filter((p) => p.thread.resolved_at);
    const active = /** @type {HTMLElement | null} */ (document.activeElement);
    const focused =
      active && active.tagName === "TEXTAREA" && this.root.contains(active)
        ? active.dataset.replyTo || active.dataset.testid
        : null;
    const drafts = this.replyDrafts();
    this.root.replaceChildren();
    this.root.hidden = placed.length === 0 && !this.threads.draft;
    document.body.classList.toggle("has-comments", !this.root.hidden);
    this.root.append(element("h2", "comments-heading", "Comments"));
    if (this.threads.draft) this.root.append(this.composer(this.threads.draft.quote));
    const list = element("ol", "comment-list");
    list.dataset.testid = "comment-list";
    for (const p of this.showResolved ? [...open, ...resolved] : open) list.append(this.threadItem(p, drafts));
    this.root.append(list);
    if (resolved.length) {
      const label = this.showResolved ? `Hide resolved (${resolved.length})` : `Show resolved (${resolved.length})`;
      const toggle = commentAction(label, "show-resolved", () => {
        this.showResolved = !this.showResolved;
        this.redraw();
      });
      this.root.append(toggle);
    }
    if (focused) {
      // the same field as before the list was redrawn (a reply being written, or the composer)
      const again = this.root.querySelector(`[data-reply-to="${focused}"], [data-testid="${focused}"]`);
      /** @type {HTMLElement | null} */ (again)?.focus();
    }
  }

  /** Put the cursor in the composer, once it is drawn. */
  focusComposer() {
    const field = /** @type {HTMLTextAreaElement | null} */ (this.root.querySelector("[data-testid=comment-input]"));
    field?.focus();
  }

  /** Keep the margin in text order, and its quotes as the text now reads, as edits go on. */
  order() {
    const list = this.root.querySelector(".comment-list");
    if (!list) return;
    const at = new Map(this.threads.placed().map((p) => [p.thread.id, p]));
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

  /** Replies being written survive a re-render (someone else's comment arrives meanwhile). */
  replyDrafts() {
    /** @type {Map<string, string>} */
    const drafts = new Map();
    for (const field of this.root.querySelectorAll("textarea[data-reply-to]")) {
      const area = /** @type {HTMLTextAreaElement} */ (field);
      if (area.value) drafts.set(area.dataset.replyTo || "", area.value);
    }
    return drafts;
  }

  /**
   * The form for a new thread on the draft's text.
   * @param {string} quoted
   */
  composer(quoted) {
    const form = /** @type {HTMLFormElement} */ (element("form", "comment-composer"));
    form.dataset.testid = "comment-composer";
    const quote = element("blockquote", "comment-quote", quoted);
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
    row.append(submit, commentAction("Cancel", "comment-cancel", () => this.cancelDraft()));
    form.append(quote, field, row);
    field.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.cancelDraft();
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!this.threads.draft || !field.value.trim()) {
        this.onNotice("Write something first.");
        return;
      }
      submit.disabled = true;
      if (await this.threads.addThread(field.value)) {
        await this.threads.refresh();
        this.view?.focus();
      } else {
        submit.disabled = false;
      }
    });
    return form;
  }

  cancelDraft() {
    this.threads.draft = null;
    this.redraw();
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
    if (this.mayComment()) item.append(...this.replyControls(thread.id, Boolean(thread.resolved_at), drafts));
    item.addEventListener("click", () => {
      // where the text is now: it may have moved since the list was drawn
      const now = this.threads.placed().find((p) => p.thread.id === thread.id);
      const view = this.view;
      if (!now || now.removed || !view || now.to > view.state.doc.length) return;
      view.dispatch({ selection: { anchor: now.from, head: now.to }, scrollIntoView: true });
      view.focus();
    });
    return item;
  }

  /**
   * A thread's reply field, then its Reply and Resolve (or Reopen) buttons.
   * @param {number} threadId
   * @param {boolean} resolved
   * @param {Map<string, string>} drafts
   */
  replyControls(threadId, resolved, drafts) {
    const reply = /** @type {HTMLTextAreaElement} */ (element("textarea", "comment-reply"));
    reply.dataset.testid = "reply-input";
    reply.dataset.replyTo = String(threadId);
    reply.rows = 1;
    reply.maxLength = COMMENT_MAX;
    reply.placeholder = "Reply";
    reply.setAttribute("aria-label", "Your reply");
    reply.value = drafts.get(String(threadId)) || "";
    const sendReply = async () => {
      if (!reply.value.trim()) {
        this.onNotice("Write a reply first.");
        return;
      }
      if (await this.threads.addReply(threadId, reply.value)) {
        reply.value = ""; // before the redraw, which would keep it as a reply being written
        await this.threads.refresh();
      }
    };
    reply.addEventListener("click", (event) => event.stopPropagation());
    reply.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        sendReply();
      }
    });
    const actions = element("div", "comment-buttons");
    actions.append(
      commentAction("Reply", "reply-submit", sendReply),
      resolved
        ? commentAction("Reopen", "reopen", () => this.threads.setResolved(threadId, false))
        : commentAction("Resolve", "resolve", () => this.threads.setResolved(threadId, true)),
    );
    return [reply, actions];
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
    const now = this.view ? this.view.state.sliceDoc(from, Math.min(to, from + QUOTE_SHOWN)) : thread.quote;
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
        commentAction("Edit", "comment-edit", () => {
          this.editing = { id: comment.id, value: comment.body };
          this.redraw();
        }),
      );
    }
    if (this.mayComment() && (comment.author === this.me || this.isOwner())) {
      tools.append(
        commentAction("Delete", "comment-delete", () => {
          if (comment.thread_id === null && !confirm("Delete this thread and its replies?")) return;
          this.threads.remove(comment.id);
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
      this.redraw();
    };
    row.append(save, commentAction("Cancel", "edit-cancel", stop));
    form.append(field, row);
    form.addEventListener("click", (event) => event.stopPropagation());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!field.value.trim()) {
        this.onNotice("Write something first.");
        return;
      }
      if (await this.threads.rewrite(editing.id, field.value)) {
        this.editing = null;
        await this.threads.refresh();
      }
    });
    queueMicrotask(() => field.isConnected && document.activeElement === document.body && field.focus());
    return form;
  }
}
