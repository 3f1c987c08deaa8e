// The shared document: one Y.Doc kept in step with the server over the y-websocket protocol on
// /ws/doc/{id}, and what the page knows about it: connected (and answering), synced, and saved
// by the server.

import { EditorState, Transaction } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { yCollab, ySyncAnnotation, yUndoManagerKeymap } from "y-codemirror.next";
import { IndexeddbPersistence } from "y-indexeddb";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import { WebsocketProvider, messageAwareness, messageSync } from "y-websocket";
import * as Y from "yjs";
import { afterSessionEnded } from "./api.js";
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

// A socket can die without closing (a stalled network, a sleeping laptop, a proxy that stopped
// forwarding): the page then hears nothing, and would say "synced" until y-websocket's own 30 s
// check. So whenever the socket has been quiet for PROBE_AFTER_MS, the page sends a sync step 1
// with its state vector, which the server always answers (with a sync step 2); an update expects
// its "saved" acknowledgement the same way. When nothing at all comes back within
// ANSWER_WITHIN_MS, the socket is taken for dead: the page says "offline" and connects afresh,
// and the sync on the new socket sends whatever the server lacks. Probes are never what keeps a
// socket open (the server's idle timeout counts edits only).
const PROBE_AFTER_MS = 3_000;
const ANSWER_WITHIN_MS = 4_000;
const CHECK_EVERY_MS = 1_000;
/** How a socket given up for want of an answer is reported to "connection-close" listeners. */
const UNANSWERED = { code: 1006, reason: "no answer from the server" };
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
 * the count is what tells that it too was stored.
 * @param {SharedDocument} shared
 */
function countingWebSocket(shared) {
  return class CountingWebSocket extends WebSocket {
    /** @param {string | URL} url @param {string | string[]} [protocols] */
    constructor(url, protocols) {
      super(url, protocols);
      shared.sentOnSocket = 0;
      shared.storedOnSocket = 0;
      shared.awaitingSince = null;
      this.addEventListener("open", () => shared.heard());
      this.addEventListener("message", () => shared.heard());
    }

    /** @param {any} data */
    send(data) {
      const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
      if (bytes[0] === messageSync) {
        const step = bytes[1];
        if (step === syncProtocol.messageYjsSyncStep2 || step === syncProtocol.messageYjsUpdate) {
          shared.sentOnSocket += 1;
          // A viewer's updates are not acknowledged (nor, when empty, answered at all).
          if (!shared.readOnly) shared.expectAnswer();
        } else if (step === syncProtocol.messageYjsSyncStep1) {
          shared.expectAnswer();
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
    /** When the socket last brought anything (ms since the epoch). */
    this.lastHeard = 0;
    /** Since when a probe or an update has been waiting for the server's answer, or null. */
    /** @type {number | null} */
    this.awaitingSince = null;
    /** When the liveness check last ran: a much later next run means the page was asleep. */
    this.lastCheck = Date.now();
    /** The server could not store an update just now (1013) and the page is trying again. */
    this.retrying = false;
    /** 1013s in a row, without an acknowledgement between them: the reconnect backs off. */
    this.busyCloses = 0;
    /** @type {Array<() => void>} */
    this.unansweredListeners = [];

    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.provider = new WebsocketProvider(`${scheme}://${location.host}/ws/doc`, id, this.ydoc, {
      connect: false,
      // Tabs of one browser meet at the server like everyone else, so "synced" and "Saved" mean
      // the same in every tab, and a tab whose socket is down really is offline.
      disableBc: true,
      WebSocketPolyfill: countingWebSocket(this),
    });
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
      this.awaitingSince = null;
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
    // The browser knows it lost the network: say so now, not after a probe. A socket that was
    // open is dropped (a reconnect that still reaches the server, such as one on this machine,
    // says "synced" again at once); the browser's return to the network retries without waiting.
    window.addEventListener("offline", () => this.dropSocket());
    window.addEventListener("online", () => this.reconnectNow());
    this.checkTimer = setInterval(() => this.checkLiveness(), CHECK_EVERY_MS);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState !== "visible") return;
      this.lastHeard = 0; // shown again: ask now rather than trust the quiet while hidden
      this.checkLiveness();
    });
    this.ydoc.on("update", (_update, origin) => {
      // Updates from the server never advance this client's clock.
      if (origin === this.provider) return;
      this.clock = localClock(this.ydoc);
      if (!this.provider.wsconnected) this.editedOffline = true;
      this.onChange();
    });
  }

  /** The socket brought something: it is alive. */
  heard() {
    this.lastHeard = Date.now();
    this.awaitingSince = null;
  }

  /** Something went out that the server answers (a sync step 1, or an update to acknowledge). */
  expectAnswer() {
    if (this.awaitingSince === null) this.awaitingSince = Date.now();
  }

  /**
   * @param {() => void} listener called when the socket is given up for want of an answer
   *   (a stalled network): the page's other sockets go the same way to the same server
   */
  onUnanswered(listener) {
    this.unansweredListeners.push(listener);
  }

  /** Probe a quiet socket; give up one that left a probe or an update unanswered. */
  checkLiveness() {
    const now = Date.now();
    // Timers stop while a laptop sleeps and slow down in a busy or hidden page: after such a gap
    // nothing can be concluded from the silence, so ask afresh.
    const slept = now - this.lastCheck > 3 * CHECK_EVERY_MS;
    this.lastCheck = now;
    const ws = this.provider.ws;
    if (!this.provider.wsconnected || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (slept) this.awaitingSince = null;
    if (this.awaitingSince !== null) {
      if (now - this.awaitingSince > ANSWER_WITHIN_MS) {
        this.dropSocket();
        for (const listener of this.unansweredListeners) listener();
      }
      return;
    }
    // A hidden page shows no status to keep true, and each answer costs the server an encoding:
    // it asks again when shown (its own edits still expect their acknowledgements meanwhile).
    if (document.visibilityState !== "visible") return;
    if (slept || now - this.lastHeard >= PROBE_AFTER_MS) {
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, messageSync);
      syncProtocol.writeSyncStep1(encoder, this.ydoc);
      ws.send(encoding.toUint8Array(encoder));
    }
  }

  /**
   * Give up the current socket as dead without waiting for its close (which a stalled network
   * never delivers): the provider treats it as closed, says so, and connects afresh.
   */
  dropSocket() {
    const ws = this.provider.ws;
    if (!ws || !ws.onclose) return;
    ws.onclose(new CloseEvent("close", UNANSWERED));
  }

  /** Back on the network: a socket waiting out its backoff connects now. */
  reconnectNow() {
    if (this.provider.shouldConnect && this.provider.ws === null && !this.ending) this.provider.connect();
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
    // A steadier assistant: a taken suggestion closes the current undo step (authorship.js).
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
