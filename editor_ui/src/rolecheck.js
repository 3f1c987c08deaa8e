// The writer's role, read again when the server hints that it changed. The owner may change it,
// or take the access away, while the page is open; the server then refuses this writer's edits
// or the suggestion socket, and only the API says what changed.

import { ApiError, callApi, documentPath } from "./api.js";
import { showAccessNotice, showEnding } from "./notices.js";
import { CLOSE_FORBIDDEN } from "./socket.js";

/**
 * The server closes the suggestion socket on any change of role, and the page reopens it for a
 * writer; should the server keep refusing it for another reason, it stops after this many tries.
 */
const MAX_REOPENS = 3;

export class RoleCheck {
  /**
   * @param {string} id the document's id
   * @param {import("./access.js").Access} access told the role the API answers
   * @param {(message: string) => void} onNotice says that the check itself failed
   */
  constructor(id, access, onNotice) {
    this.id = id;
    this.access = access;
    this.onNotice = onNotice;
    /** A check is under way; another asked meanwhile would learn nothing more. */
    this.checking = false;
    /** Times the suggestion socket was reopened after a refusal since it was last connected. */
    this.reopened = 0;
    /** The server refused edits of this writer (its role had changed): they exist only here. */
    this.editsRefused = false;
    /**
     * The suggestion socket, once the page has one.
     * @type {import("./socket.js").ReconnectingSocket | null}
     */
    this.socket = null;
  }

  /** The server refused this writer's edits: the role changed, or is known to have. */
  refused() {
    this.editsRefused = true;
    if (this.access.readOnly) this.showReadOnlyNotice();
    else this.check();
  }

  /** The suggestion socket connected: later refusals may reopen it again. */
  suggestionsConnected() {
    this.reopened = 0;
  }

  /** Ask the API for this writer's role now, and follow it. */
  async check() {
    if (this.checking) return;
    this.checking = true;
    try {
      const fresh = await callApi("GET", documentPath(this.id));
      this.access.set(fresh.role);
      const socket = this.socket;
      if (
        socket &&
        !this.access.readOnly &&
        socket.state === "refused" &&
        socket.closeCode === CLOSE_FORBIDDEN &&
        this.reopened < MAX_REOPENS
      ) {
        this.reopened += 1;
        socket.start();
      }
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) showEnding("missing");
      else this.onNotice(`Could not check your access: ${exc instanceof Error ? exc.message : exc}`);
    } finally {
      this.checking = false;
    }
  }

  /** Say above the text that this writer may only view now, and whether edits were lost. */
  showReadOnlyNotice() {
    showAccessNotice(
      this.editsRefused
        ? "Your access changed: you can only view this document now. Your latest edits were not saved; reload to see the saved text."
        : "Your access changed: you can only view this document now.",
    );
  }
}
