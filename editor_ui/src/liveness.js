// Whether the document socket is alive. A socket can die without closing (a stalled network, a
// sleeping laptop, a proxy that stopped forwarding): the page then hears nothing, and would say
// "synced" until y-websocket's own 30 s check. This watch asks the server and gives up a socket
// that stopped answering, so the provider connects afresh.

import * as encoding from "lib0/encoding";
import * as syncProtocol from "y-protocols/sync";
import { messageSync } from "y-websocket";

// Whenever the socket has been quiet for PROBE_AFTER_MS, the page sends a sync step 1 with its
// state vector, which the server always answers (with a sync step 2); an update expects its
// "saved" acknowledgement the same way. When nothing at all comes back within ANSWER_WITHIN_MS,
// the socket is taken for dead: the page says "offline" and connects afresh, and the sync on the
// new socket sends whatever the server lacks. Probes are never what keeps a socket open (the
// server's idle timeout counts edits only).
const PROBE_AFTER_MS = 3_000;
const ANSWER_WITHIN_MS = 4_000;
const CHECK_EVERY_MS = 1_000;
/** A check this much later than due means timers stopped meanwhile (a sleeping laptop). */
const SLEPT_AFTER_MS = 3 * CHECK_EVERY_MS;
/** How a socket given up for want of an answer is reported to "connection-close" listeners. */
const UNANSWERED = { code: 1006, reason: "no answer from the server" };

export class Liveness {
  /**
   * Start watching; it watches for the page's lifetime.
   * @param {import("y-websocket").WebsocketProvider} provider the document's provider
   * @param {import("yjs").Doc} ydoc its document, whose state vector a probe carries
   * @param {() => boolean} ended whether the socket ended for good (reconnecting cannot help)
   */
  constructor(provider, ydoc, ended) {
    this.provider = provider;
    this.ydoc = ydoc;
    this.ended = ended;
    /** When the socket last brought anything (ms since the epoch). */
    this.lastHeard = 0;
    /**
     * Since when a probe or an update has been waiting for the server's answer, or null.
     * @type {number | null}
     */
    this.awaitingSince = null;
    /** When the check last ran: a much later next run means the page was asleep. */
    this.lastCheck = Date.now();
    /** @type {Array<() => void>} */
    this.unansweredListeners = [];

    // A closed socket owes nothing; the next one starts afresh.
    provider.on("connection-close", () => this.forget());
    // The browser knows it lost the network: say so now, not after a probe. A socket that was
    // open is dropped (a reconnect that still reaches the server, such as one on this machine,
    // says "synced" again at once); the browser's return to the network retries without waiting.
    window.addEventListener("offline", () => this.dropSocket());
    window.addEventListener("online", () => this.reconnectNow());
    this.checkTimer = setInterval(() => this.check(), CHECK_EVERY_MS);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState !== "visible") return;
      this.lastHeard = 0; // shown again: ask now rather than trust the quiet while hidden
      this.check();
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

  /** A new socket, or a closed one: nothing sent on it is awaited any more. */
  forget() {
    this.awaitingSince = null;
  }

  /**
   * @param {() => void} listener called when the socket is given up for want of an answer
   *   (a stalled network): the page's other sockets go the same way to the same server
   */
  onUnanswered(listener) {
    this.unansweredListeners.push(listener);
  }

  /** Probe a quiet socket; give up one that left a probe or an update unanswered. */
  check() {
    const now = Date.now();
    // Timers stop while a laptop sleeps and slow down in a busy or hidden page: after such a gap
    // nothing can be concluded from the silence, so ask afresh.
    const slept = now - this.lastCheck > SLEPT_AFTER_MS;
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
    if (this.provider.shouldConnect && this.provider.ws === null && !this.ended()) this.provider.connect();
  }
}
