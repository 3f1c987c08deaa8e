// What keeps the assistant steady for everyone: the document's "notes for suggestions" (a brief the
// model reads before the text, shared by everyone who edits it) and the polite announcement of a
// finished suggestion.

import { EditorView } from "@codemirror/view";
import { ApiError, callApi, documentPath } from "./api.js";
import { currentGhost, visibleText } from "./ghost.js";

// Typing in the notes saves this long after the last key, not on each one.
const NOTES_SAVE_DELAY_MS = 600;
export const NOTES_MAX = 2000; // storage/models.py NOTES_MAX

/** @typedef {"idle" | "saving" | "saved" | "failed"} NotesState */

/**
 * The notes textarea: loaded with the document, saved with a debounce, reloaded when focused
 * (a co-editor may have changed them) unless this writer has unsaved changes.
 */
export class NotesField {
  /**
   * @param {HTMLTextAreaElement} textarea
   * @param {HTMLElement} state where "Saving…", "Saved" or the failure is said
   * @param {string} docId
   * @param {string} notes the notes the document opened with
   * @param {boolean} readOnly viewers and commenters read the notes, never change them
   */
  constructor(textarea, state, docId, notes, readOnly) {
    this.textarea = textarea;
    this.state = state;
    this.docId = docId;
    /** What the server holds, as far as this page knows. */
    this.saved = notes;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    /** A save is under way; a change made meanwhile is saved after it. */
    this.saving = false;
    textarea.maxLength = NOTES_MAX;
    textarea.value = notes;
    this.setReadOnly(readOnly);
    textarea.addEventListener("input", () => this.schedule());
    textarea.addEventListener("focus", () => this.reload());
  }

  /** @param {boolean} readOnly */
  setReadOnly(readOnly) {
    this.textarea.readOnly = readOnly;
    if (readOnly) clearTimeout(this.timer);
  }

  get dirty() {
    return this.textarea.value !== this.saved;
  }

  schedule() {
    clearTimeout(this.timer);
    this.show("idle", "Not saved yet");
    this.timer = setTimeout(() => this.save(), NOTES_SAVE_DELAY_MS);
  }

  async save() {
    if (this.saving || this.textarea.readOnly) return;
    const notes = this.textarea.value;
    if (notes === this.saved) {
      this.show("saved", "Saved");
      return;
    }
    this.saving = true;
    this.show("saving", "Saving…");
    try {
      const answer = await callApi("PATCH", documentPath(this.docId), { notes });
      this.saved = typeof answer.notes === "string" ? answer.notes : notes;
      // The server trims the ends; show what it keeps unless the writer typed on meanwhile.
      if (this.textarea.value === notes) this.textarea.value = this.saved;
      this.show("saved", "Saved");
    } catch (exc) {
      const reason = exc instanceof ApiError ? exc.message : "the connection failed";
      this.show("failed", `Not saved: ${reason}`);
      return;
    } finally {
      this.saving = false;
    }
    if (this.dirty) this.schedule();
  }

  async reload() {
    if (this.dirty || this.saving) return;
    try {
      const doc = await callApi("GET", documentPath(this.docId));
      if (!this.dirty && !this.saving && typeof doc.notes === "string") {
        this.saved = doc.notes;
        this.textarea.value = doc.notes;
      }
    } catch {
      // What is shown stays; the next focus tries again.
    }
  }

  /**
   * @param {NotesState} state
   * @param {string} text
   */
  show(state, text) {
    this.state.dataset.state = state;
    this.state.textContent = text;
  }
}

/**
 * A visually hidden polite live region that says a suggestion once, when it is complete, so a
 * screen reader is not interrupted on every token.
 * @param {HTMLElement} region an element with aria-live="polite"
 */
export function ghostAnnouncer(region) {
  /** @type {string | null} */
  let announced = null;
  return EditorView.updateListener.of((update) => {
    const ghost = currentGhost(update.state);
    if (!ghost) {
      if (announced !== null) region.textContent = "";
      announced = null;
      return;
    }
    const text = visibleText(ghost);
    if (ghost.generating || !text || announced === ghost.id) return;
    announced = ghost.id;
    const choice = ghost.n > 1 ? ` (alternative ${ghost.index + 1} of ${ghost.n})` : "";
    region.textContent = `Suggestion${choice}: ${text.trim()}. Tab to accept, Escape to dismiss.`;
  });
}
