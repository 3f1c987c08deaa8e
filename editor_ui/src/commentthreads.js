// A document's comment threads as data: fetched from the server over HTTP (so all a page shows of
// others is validated server data), changed through the same API, and anchored to the shared text
// with two Yjs relative positions each, so a thread follows everyone's edits.

import { fromBase64, toBase64 } from "lib0/buffer";
import * as Y from "yjs";
import { ApiError, callApi, documentPath } from "./api.js";

/** The server's bound on a quote (storage/models.py): a longer selection is quoted in part. */
const QUOTE_MAX = 500;

/**
 * @typedef {{id: number, thread_id: number | null, author: string, body: string, created_at: string,
 *   edited_at: string | null}} Comment
 * @typedef {Comment & {anchor_start: string, anchor_end: string, quote: string,
 *   resolved_at: string | null, resolved_by: string | null, replies: Comment[]}} Thread
 * @typedef {{thread: Thread, from: number, to: number, removed: boolean}} Placed
 * @typedef {{start: string, end: string, quote: string}} Draft
 */

export class CommentThreads {
  /**
   * @param {{id: string, ydoc: Y.Doc, text: Y.Text, onLoaded: () => void,
   *   onNotice: (message: string) => void}} options `onLoaded` runs after each fetch
   */
  constructor({ id, ydoc, text, onLoaded, onNotice }) {
    this.path = `${documentPath(id)}/comments`;
    this.ydoc = ydoc;
    this.text = text;
    this.onLoaded = onLoaded;
    this.onNotice = onNotice;
    /** @type {Thread[]} */
    this.threads = [];
    /**
     * The span a comment is being written for, while the composer is open.
     * @type {Draft | null}
     */
    this.draft = null;
    /** A fetch is under way; `again` asks it to fetch once more, for a change it may have missed. */
    this.loading = false;
    this.again = false;
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
      this.onLoaded();
    } catch (exc) {
      this.onNotice(`Could not load the comments: ${exc instanceof Error ? exc.message : exc}`);
    } finally {
      this.loading = false;
    }
  }

  /**
   * Start a comment on the text from `from` to `to`, quoting (the start of) `quote`.
   * @param {number} from
   * @param {number} to
   * @param {string} quote the text in that span
   */
  beginDraft(from, to, quote) {
    const anchor = (/** @type {number} */ index, /** @type {number} */ assoc) =>
      toBase64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(this.text, index, assoc)));
    this.draft = {
      // the start sticks to the first commented character, the end to the last one
      start: anchor(from, 0),
      end: anchor(to, -1),
      quote: quote.slice(0, QUOTE_MAX),
    };
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

  /**
   * Post the draft as a new thread; on success the draft is done with.
   * @param {string} body
   * @returns {Promise<boolean>} whether the server took it
   */
  async addThread(body) {
    const draft = this.draft;
    if (!draft) return false;
    const sent = await this.send("POST", this.path, {
      body,
      anchor_start: draft.start,
      anchor_end: draft.end,
      quote: draft.quote,
    });
    if (sent) this.draft = null;
    return sent;
  }

  /**
   * @param {number} threadId
   * @param {string} body
   * @returns {Promise<boolean>} whether the server took it
   */
  addReply(threadId, body) {
    return this.send("POST", this.path, { body, thread_id: threadId });
  }

  /**
   * Rewrite one of this writer's comments.
   * @param {number} id
   * @param {string} body
   * @returns {Promise<boolean>} whether the server took it
   */
  rewrite(id, body) {
    return this.send("PATCH", `${this.path}/${id}`, { body });
  }

  /**
   * Resolve or reopen a thread, then fetch the threads again.
   * @param {number} id
   * @param {boolean} resolved
   */
  async setResolved(id, resolved) {
    if (await this.send("PATCH", `${this.path}/${id}`, { resolved })) await this.refresh();
  }

  /**
   * Delete a comment (a thread's first one takes its replies with it), then fetch them again.
   * @param {number} id
   */
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
