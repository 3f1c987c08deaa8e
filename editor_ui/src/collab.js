// The shared document: one Y.Doc kept in step with the server over the y-websocket protocol on
// /ws/doc/{id}, and what the page knows about it: connected, synced, and saved by the server.
// Whether the socket still answers is liveness.js's to watch.

import { EditorState, Transaction } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import * as decoding from "lib0/decoding";
import { yCollab, ySyncAnnotation, yUndoManagerKeymap } from "y-codemirror.next";
import { IndexeddbPersistence } from "y-indexeddb";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import { WebsocketProvider, messageAwareness, messageSync } from "y-websocket";
import * as Y from "yjs";
import { afterSessionEnded } from "./api.js";
import { Liveness } from "./liveness.js";
import { deleteDatabase } from "./localcopy.js";
import { safeAwarenessUpdate } from "./presence.js";
import {
  CLOSE_DOCUMENT_NOT_FOUND,
  CLOSE_DOCUMENT_TOO_LARGE,
  CLOSE_FORBIDDEN,
  CLOSE_TOO_MANY,
  CLOSE_TRY_AGAIN_LATER,
  CLOSE_UNAUTHENTICATED,
} from "./socket.js";

/**
 * The server's save acknowledgement: after it has durably stored updates from this client it
 * sends this message type with its document's state vector (`Y.encodeStateVector` format).
 */
export const MESSAGE_SAVED = 100;
/**
 * The server refused updates from this client (it may only view the document): this message
 * type followed by a var-string reason. The updates stay local; nothing of them is stored.
 */
export const MESSAGE_UPDATE_REFUSED = 101;
/** The owner changed this user's role while connected: this message type followed by the new role. */
export const MESSAGE_ROLE_CHANGED = 102;
/** Comments: "this document's comments changed" (no payload); the page fetches them again. */
export const MESSAGE_COMMENTS = 103;

/** Closes after which reconnecting cannot help, and what each means for the page. */
const FINAL_CLOSES = new Map([
  [CLOSE_DOCUMENT_NOT_FOUND, "missing"],
  [CLOSE_FORBIDDEN, "forbidden"],
  [CLOSE_TOO_MANY, "too_many"],
  [CLOSE_DOCUMENT_TOO_LARGE, "too_large"],
]);

/** @typedef {"missing" | "forbidden" | "too_many" | "too_large"} Ending */

/** After a 1013 ("try again later"), y-websocket's reconnect waits 100 ms × 2^this at least. */
const TRY_AGAIN_BACKOFF = 2;

/** Opening the local copy normally takes milliseconds; past this the page goes on without it. */
const LOCAL_LOAD_WAIT_MS = 3_000;

/** @typedef {"offline" | "syncing" | "synced"} ConnectionState */
/** @typedef {"saved" | "saving" | "retrying" | "offline" | "unsaved"} SaveState */

/**
 * This client's clock: how many items its own edits have made, in the whole document.
 * @param {Y.Doc} ydoc
 */
function localClock(ydoc) {
  return Y.decodeStateVector(Y.encodeStateVector(ydoc)).get(ydoc.clientID) ?? 0;
}

/**
 * A WebSocket that counts the messages carrying updates (sync step 2 and update) it sends, so the
 * server's count in each "saved" message can be matched; a deletion leaves the clock alone, so
 * the count is what tells that it too was stored. It also tells the liveness watch what it
 * hears and what it sent that the server answers.
 * @param {SharedDocument} shared
 */
function countingWebSocket(shared) {
  return class CountingWebSocket extends WebSocket {
    /** @param {string | URL} url @param {string | string[]} [protocols] */
    constructor(url, protocols) {
      super(url, protocols);
      shared.sentOnSocket = 0;
      shared.storedOnSocket = 0;
      shared.liveness.forget();
      this.addEventListener("open", () => shared.liveness.heard());
      this.addEventListener("message", () => shared.liveness.heard());
    }

    /** @param {any} data */
    send(data) {
      const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
      if (bytes[0] === messageSync) {
        const step = bytes[1];
        if (step === syncProtocol.messageYjsSyncStep2 || step === syncProtocol.messageYjsUpdate) {
          shared.sentOnSocket += 1;
          // A viewer's updates are not acknowledged (nor, when empty, answered at all).
          if (!shared.readOnly) shared.liveness.expectAnswer();
        } else if (step === syncProtocol.messageYjsSyncStep1) {
          shared.liveness.expectAnswer();
        }
      }
      super.send(data);
    }
  };
}

export class SharedDocument {
  /**
   * @param {string} id the document id, which is also the y-websocket room name
   * @param {() => void} onChange called whenever connection, sync or saving may have changed
   * @param {(reason: string) => void} onRefused called when the server refused this client's edits
   * @param {(role: string) => void} onRoleChanged called when the server says this user's role changed
   * @param {string | null} localName the IndexedDB database keeping this browser's copy of the
   *   document (see localcopy.js), or null to keep none (a viewer has nothing of its own to keep)
   */
  constructor(id, onChange, onRefused, onRoleChanged, localName) {
    this.onChange = onChange;
    this.ydoc = new Y.Doc();
    /** The document's text, seeded by the server; this page never inserts initial content. */
    this.text = this.ydoc.getText("content");
    /** The server's clock for this client in its last save acknowledgement. */
    this.acknowledged = 0;
    /** This client's own clock, kept current as it edits. */
    this.clock = 0;
    /**
     * Why the socket closed for good (the document is gone, access was withdrawn, too many
     * sockets), or null while reconnecting can still help.
     * @type {Ending | null}
     */
    this.ending = null;
    /** This writer may only view: nothing of it is sent for storage, so nothing is pending. */
    this._readOnly = false;
    /**
     * This browser's copy of the document in IndexedDB: every update, this writer's and the
     * others', so edits made offline survive a closed tab and go out on the next sync. Never what
     * "Saved" means: that is the server's acknowledgement alone.
     * @type {IndexeddbPersistence | null}
     */
    this.local = null;
    if (localName) {
      try {
        this.local = new IndexeddbPersistence(localName, this.ydoc);
        const local = this.local;
        // Sign-out (in this tab or another) and a lost document delete the database: let go of it.
        local._db.then(
          (db) => {
            db.onversionchange = () => {
              if (this.local === local) this.local = null;
              local.destroy();
            };
          },
          () => {
            if (this.local === local) this.local = null;
          },
        );
      } catch {
        // No IndexedDB here (a private window of some browsers): the page works without a copy.
        this.local = null;
      }
    }
    /** Update messages sent on the current socket, and how many of them the server has stored. */
    this.sentOnSocket = 0;
    this.storedOnSocket = 0;
    /** An edit was made while the socket was down; it goes out (and is counted) on reconnect. */
    this.editedOffline = false;
    /** The server could not store an update just now (1013) and the page is trying again. */
    this.retrying = false;
    /** 1013s in a row, without an acknowledgement between them: the reconnect backs off. */
    this.busyCloses = 0;

    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.provider = new WebsocketProvider(`${scheme}://${location.host}/ws/doc`, id, this.ydoc, {
      connect: false,
      // Tabs of one browser meet at the server like everyone else, so "synced" and "Saved" mean
      // the same in every tab, and a tab whose socket is down really is offline.
      disableBc: true,
      WebSocketPolyfill: countingWebSocket(this),
    });
    this.liveness = new Liveness(this.provider, this.ydoc, () => this.ending !== null);
    // The handler signature of y-websocket 3: (encoder, decoder, provider, emitSynced, type).
    this.provider.messageHandlers[MESSAGE_SAVED] = (_encoder, decoder) => {
      const vector = Y.decodeStateVector(decoding.readVarUint8Array(decoder));
      this.acknowledged = Math.max(this.acknowledged, vector.get(this.ydoc.clientID) ?? 0);
      if (decoding.hasContent(decoder)) this.storedOnSocket = decoding.readVarUint(decoder);
      if (this.storedOnSocket >= this.sentOnSocket) {
        this.editedOffline = false;
        this.retrying = false;
        this.busyCloses = 0;
      }
      this.onChange();
    };
    // The others' awareness, made safe before anything (y-codemirror's cursors, the presence
    // chips) reads it: their colours end up in style attributes.
    this.provider.messageHandlers[messageAwareness] = (_encoder, decoder, provider) => {
      const update = safeAwarenessUpdate(decoding.readVarUint8Array(decoder));
      awarenessProtocol.applyAwarenessUpdate(provider.awareness, update, provider);
    };
    this.provider.messageHandlers[MESSAGE_UPDATE_REFUSED] = (_encoder, decoder) => {
      const reason = decoding.hasContent(decoder) ? decoding.readVarString(decoder) : "";
      onRefused(reason);
    };
    this.provider.messageHandlers[MESSAGE_ROLE_CHANGED] = (_encoder, decoder) => {
      onRoleChanged(decoding.hasContent(decoder) ? decoding.readVarString(decoder) : "");
    };
    // Comments (comments.js) set this; the message itself carries nothing to trust.
    /** @type {() => void} */
    this.onCommentsChanged = () => {};
    this.provider.messageHandlers[MESSAGE_COMMENTS] = () => this.onCommentsChanged();
    this.provider.on("status", () => this.onChange());
    this.provider.on("sync", () => this.onChange());
    this.provider.on("connection-close", (event) => {
      const code = event ? event.code : 0;
      const ending = FINAL_CLOSES.get(code);
      // Sent on this socket but not acknowledged: still pending until a later socket's are.
      if (this.sentOnSocket > this.storedOnSocket && !this.readOnly) this.editedOffline = true;
      if (code === CLOSE_TRY_AGAIN_LATER) {
        // The server could not store an update (nothing of it was kept): the reconnect's sync
        // sends it again, after a wait that grows while the server keeps answering so.
        this.retrying = true;
        this.busyCloses += 1;
        this.provider.wsUnsuccessfulReconnects = TRY_AGAIN_BACKOFF + this.busyCloses;
      }
      if (ending || code === CLOSE_UNAUTHENTICATED) {
        if (ending) this.ending = /** @type {Ending} */ (ending);
        // The document is gone, or this account may no longer see it: keep nothing of it here.
        if (ending === "missing" || ending === "forbidden") this.dropLocalCopy();
        // After the provider has finished handling this close, before its reconnect timer fires.
        queueMicrotask(() => this.provider.disconnect());
        // A password changed on this page rotates this browser's session: carry on under the new one.
        if (code === CLOSE_UNAUTHENTICATED) afterSessionEnded("document", () => this.provider.connect());
      }
      // Any other close (the server restarting, an idle timeout) reconnects by itself.
      this.onChange();
    });
    this.ydoc.on("update", (_update, origin) => {
      // Updates from the server never advance this client's clock.
      if (origin === this.provider) return;
      this.clock = localClock(this.ydoc);
      if (!this.provider.wsconnected) this.editedOffline = true;
      this.onChange();
    });
  }

  /**
   * @param {() => void} listener called when the socket is given up for want of an answer
   *   (a stalled network): the page's other sockets go the same way to the same server
   */
  onUnanswered(listener) {
    this.liveness.onUnanswered(listener);
  }

  /** This writer may only view. A viewer keeps no local copy: one kept so far is deleted. */
  get readOnly() {
    return this._readOnly;
  }

  set readOnly(value) {
    this._readOnly = value;
    if (value) this.dropLocalCopy();
  }

  /**
   * Resolves once the local copy (if any) has been read into the document, or after
   * LOCAL_LOAD_WAIT_MS; with whether it held anything. Connect after this, so the first sync
   * sends the server whatever the copy holds that the server lacks.
   * @returns {Promise<boolean>}
   */
  async loadLocalCopy() {
    const local = this.local;
    if (local) {
      /** @type {Promise<unknown>} */
      const failed = local._db.then(
        () => new Promise(() => {}),
        () => undefined,
      );
      await Promise.race([local.whenSynced, failed, new Promise((resolve) => setTimeout(resolve, LOCAL_LOAD_WAIT_MS))]);
    }
    return this.ydoc.store.clients.size > 0;
  }

  /**
   * Resolves once every update so far is written to the local copy: true, or false without one.
   * (IndexedDB runs transactions on one store in order, so a later one ending means the earlier
   * writes have.)
   * @returns {Promise<boolean>}
   */
  storedLocally() {
    const db = this.local && this.local.db;
    if (!db) return Promise.resolve(false);
    return new Promise((resolve) => {
      try {
        const transaction = db.transaction(["updates"], "readonly");
        transaction.oncomplete = () => resolve(true);
        transaction.onerror = transaction.onabort = () => resolve(false);
      } catch {
        resolve(false);
      }
    });
  }

  /**
   * Stop keeping a local copy and delete the one kept so far.
   * @returns {Promise<void>} resolves once it is deleted (or deleting it was given up)
   */
  dropLocalCopy() {
    const local = this.local;
    if (!local) return Promise.resolve();
    this.local = null;
    return local.destroy().then(
      () => deleteDatabase(local.name),
      () => deleteDatabase(local.name),
    );
  }

  get awareness() {
    return this.provider.awareness;
  }

  /** The document was deleted (or unshared) while open. */
  get gone() {
    return this.ending === "missing";
  }

  /**
   * The editor's binding to the shared text: edits both ways, the others' cursors, and an undo
   * that takes back this writer's own edits only. Create the editor with `text.toString()`.
   * @param {Array<Y.AbstractType<any>>} alsoUndo other shared types whose local changes are
   *   part of this writer's undo steps
   * @param {() => void} onRedo called after each redo
   */
  editorBinding(alsoUndo, onRedo) {
    const undoManager = new Y.UndoManager([this.text, ...alsoUndo]);
    // A taken suggestion closes the current undo step (authorship.js), so each take undoes alone.
    /** @type {Y.UndoManager | null} */
    this.undoManager = undoManager;
    undoManager.on("stack-item-popped", ({ type }) => {
      if (type === "redo") onRedo();
    });
    // Undo writes to the Y.Text directly, past CodeMirror's read-only state; a viewer has nothing
    // of its own to take back, and a writer who became one must not try.
    const undoKeys = yUndoManagerKeymap.map((binding) => ({
      ...binding,
      run: /** @param {EditorView} view */ (view) => this.readOnly || (binding.run ? binding.run(view) : false),
    }));
    return [
      yCollab(this.text, this.awareness, { undoManager }),
      keymap.of(undoKeys),
      // Y.Text counts "\r\n" as two characters; CodeMirror must too, or positions drift apart.
      EditorState.lineSeparator.of("\n"),
      EditorView.clipboardInputFilter.of((text) => text.replace(/\r\n?/g, "\n")),
      // Changes that arrive from the others (or from undo) are marked the way CodeMirror's own
      // extensions expect, so typing-derived logic can tell them from this writer's keys.
      EditorState.transactionExtender.of((tr) =>
        tr.annotation(ySyncAnnotation) ? { annotations: Transaction.remote.of(true) } : null,
      ),
    ];
  }

  /** The document socket is open. */
  get online() {
    return this.provider.wsconnected;
  }

  /** Open and caught up with the server's copy. */
  get synced() {
    return this.provider.wsconnected && this.provider.synced;
  }

  /** Some edit of this client has not been acknowledged as stored. */
  get pending() {
    if (this.readOnly) return false;
    return this.clock > this.acknowledged || this.sentOnSocket > this.storedOnSocket || this.editedOffline;
  }

  /** Connected, synced, and every local edit acknowledged as stored. */
  get saved() {
    return this.synced && !this.pending;
  }

  /** @returns {ConnectionState} */
  get connectionState() {
    if (!this.online) return "offline";
    return this.synced ? "synced" : "syncing";
  }

  /** @returns {SaveState} */
  get saveState() {
    // With nothing pending, nothing is at risk: "Saved" also while the socket is down.
    if (!this.pending) return "saved";
    if (this.ending === "too_large") return "unsaved";
    if (this.retrying && !this.ending) return "retrying";
    return this.online ? "saving" : "offline";
  }

  connect() {
    if (!this.ending) this.provider.connect();
  }

  disconnect() {
    this.provider.disconnect();
  }

  /**
   * Resolves once the server's copy has arrived (the first `sync`): null, or why the server
   * ended the socket instead (the document does not exist, access is refused, too many sockets).
   * @returns {Promise<Ending | null>}
   */
  whenSynced() {
    return new Promise((resolve) => {
      if (this.provider.synced) {
        resolve(null);
        return;
      }
      /** @param {Ending | null} value */
      const settle = (value) => {
        this.provider.off("sync", onSync);
        this.provider.off("connection-close", onClose);
        resolve(value);
      };
      /** @param {boolean} synced */
      const onSync = (synced) => {
        if (synced) settle(null);
      };
      const onClose = () => {
        if (this.ending) settle(this.ending);
      };
      this.provider.on("sync", onSync);
      this.provider.on("connection-close", onClose);
    });
  }
}
