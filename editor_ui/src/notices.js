// What the editor page says when the document cannot open (a box in place of the editor) or is lost
// while open (a lasting notice above the text), and the way back to the saved version after a
// change too large to save.

import { ApiError } from "./api.js";
import { button, byId } from "./dom.js";

/** @typedef {import("./collab.js").Ending} Ending */
/** @typedef {import("./collab.js").SharedDocument} SharedDocument */

/**
 * Why the document socket ended for good, said above the text while the page stays open.
 * @type {Record<Ending, string>}
 */
const ENDING_NOTICES = {
  missing: "This document was deleted or is no longer shared with you; edits from now on are not saved.",
  forbidden: "You no longer have access to this document; edits from now on are not saved.",
  too_many: "Too many Cowrite tabs are open for your account. Close some, then reload this one.",
  too_large:
    "Your last change was too large to save, so the server did not keep it, nor anything typed since. " +
    "Copy out what you need, then reload the saved version (this browser's copy of your unsaved changes is discarded).",
};

/**
 * The same endings when they keep the document from opening at all: a heading and a message
 * ("missing" reads as the page's own "not found").
 * @type {Record<Exclude<Ending, "missing">, [string, string]>}
 */
const LOAD_FAILURES = {
  forbidden: ["You do not have access to this document", "Ask its owner to share it with you."],
  too_many: ["Too many Cowrite tabs are open", "Your account has too many documents open; close some tabs and try again."],
  too_large: [
    "A change was too large to save",
    "This browser holds a change to the document that is too large for the server to save. " +
      "Reload the saved version to discard this browser's copy of it.",
  ],
};

/**
 * Show why the document could not be opened in place of the editor: "not found" for a 404 (a
 * document not shared with this account is missing too), the error's message otherwise.
 * @param {unknown} exc
 * @param {string} [heading]
 */
export function showLoadFailure(exc, heading) {
  byId("loading").hidden = true;
  const missing = exc instanceof ApiError && exc.status === 404;
  document.body.dataset.state = missing ? "missing" : "error";
  if (missing) {
    byId("not-found").hidden = false;
    document.title = "Document not found — Cowrite";
    return;
  }
  const box = byId("load-error");
  if (heading) byId("load-error-heading").textContent = heading;
  byId("load-error-message").textContent = exc instanceof Error ? exc.message : String(exc);
  box.hidden = false;
}

/**
 * The document socket ended for good before the document opened: say why, in place of the editor.
 * @param {Ending} ending
 * @param {SharedDocument} shared
 */
export function showOpeningFailure(ending, shared) {
  if (ending === "missing") {
    showLoadFailure(new ApiError(404, "not_found", "Document not found."));
    return;
  }
  const [heading, message] = LOAD_FAILURES[ending];
  showLoadFailure(new Error(message), heading);
  if (ending === "too_large") byId("load-error-message").append(" ", reloadSavedButton(shared));
}

/**
 * A lasting message above the text: this page lost the document or its access.
 * @param {string} text
 * @param {HTMLElement} [action] a button to offer after the text
 */
export function showAccessNotice(text, action) {
  const notice = byId("access-notice");
  notice.textContent = text;
  if (action) notice.append(action);
  notice.hidden = false;
}

/**
 * Say above the text why the document socket ended for good while the page was open.
 * @param {Ending} ending
 * @param {SharedDocument} [shared] for "too_large", whose notice offers the saved version
 */
export function showEnding(ending, shared) {
  const action = ending === "too_large" && shared ? reloadSavedButton(shared) : undefined;
  showAccessNotice(ENDING_NOTICES[ending], action);
}

/** The suggestion socket was refused for too many sockets: writing goes on without suggestions. */
export function showSuggestionsOff() {
  showAccessNotice("Suggestions are off: your account has too many Cowrite tabs open. Close some, then reload.");
}

/**
 * A button that discards this browser's copy of the document, then reloads the page, which
 * then holds the server's version only: the way out after a change too large to save, which the
 * local copy would otherwise send again on every opening.
 * @param {SharedDocument} shared
 */
function reloadSavedButton(shared) {
  const reload = button(
    "Reload the saved version",
    "reload-saved",
    async () => {
      reload.disabled = true;
      shared.disconnect();
      await shared.dropLocalCopy();
      location.reload();
    },
    "button",
  );
  return reload;
}

/** Says why the document socket ended, once, from when the page shows the document. */
export class EndingNotice {
  constructor() {
    /** The page shows the document: before, an ending is the opening's failure instead. */
    this.ready = false;
    this.shown = false;
  }

  /**
   * Call whenever the document's state may have changed.
   * @param {SharedDocument} shared
   */
  update(shared) {
    if (!this.ready || !shared.ending || this.shown) return;
    this.shown = true;
    showEnding(shared.ending, shared);
  }
}
