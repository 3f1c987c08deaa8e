// A WebSocket that comes back: reconnects with growing, jittered delays and reports its state,
// and knows the server's close codes after which retrying cannot help.

import { afterSessionEnded } from "./api.js";

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15_000;

/** The session ended: sign in again. */
export const CLOSE_UNAUTHENTICATED = 4401;
/** This account may not use this socket (a viewer's suggestion socket, or access was removed). */
export const CLOSE_FORBIDDEN = 4403;
/** The document does not exist (or was deleted, or is not shared with this account). */
export const CLOSE_DOCUMENT_NOT_FOUND = 4404;
/** The server closed a socket that had been idle; opening it again when needed is fine. */
export const CLOSE_IDLE = 4408;
/** This account has too many sockets open (tabs); a retry would be refused as well. */
export const CLOSE_TOO_MANY = 4429;
/** The document socket refused an update that would make the document too large: not stored. */
export const CLOSE_DOCUMENT_TOO_LARGE = 4413;
/** The server could not store an update just now (a database outage): reconnect later, resend. */
export const CLOSE_TRY_AGAIN_LATER = 1013;

/**
 * "idle": closed by the server for idleness, reopened by the next `wake()`; "gone": the document
 * was not found; "refused": forbidden or too many connections (see `closeCode`).
 * @typedef {"connecting" | "connected" | "offline" | "idle" | "gone" | "refused"} SocketState
 */

export class ReconnectingSocket {
  /**
   * @param {string} url
   * @param {{onMessage: (frame: any) => void, onState: (state: SocketState) => void}} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    /** @type {WebSocket | null} */
    this.socket = null;
    /** Counts connections, so answers can be tied to the connection their request went out on. */
    this.epoch = 0;
    this.failures = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** @type {SocketState} */
    this.state = "offline";
    this.stopped = false;
    /** The code of the close that ended the socket for good ("gone" or "refused"). */
    this.closeCode = 0;
    // Coming back online or to the tab is a good moment to try again without waiting; losing
    // the network means this socket is gone, whatever its state says.
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.drop());
  }

  start() {
    this.stopped = false;
    if (this.state === "connected" || this.state === "connecting") return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  /** Close and stay closed until `start()`. */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const socket = this.socket;
    // Forget it first: its close event then finds it replaced and schedules no retry.
    this.socket = null;
    if (socket) socket.close();
    if (this.state !== "gone" && this.state !== "refused") this.setState("offline");
  }

  /**
   * Give up a socket that cannot be reaching the server (the network is gone, or the document
   * socket to the same server stopped answering) without waiting for its close, which a stalled
   * network never delivers; then reconnect as after any lost connection.
   */
  drop() {
    const socket = this.socket;
    if (this.stopped || !socket) return;
    this.socket = null;
    socket.close();
    this.setState("offline");
    this.scheduleRetry();
  }

  get connected() {
    return this.state === "connected";
  }

  /** Reopen a socket the server closed for idleness; the writer is active again. */
  wake() {
    if (this.state === "idle") this.reconnectNow();
  }

  /**
   * @param {object} frame
   * @returns {boolean} whether the frame went out
   */
  send(frame) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  reconnectNow() {
    if (this.stopped || this.state === "connected" || this.state === "connecting") return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  open() {
    this.setState("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.failures = 0;
      this.closeCode = 0;
      this.epoch += 1;
      this.setState("connected");
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        console.warn("Cowrite: ignoring a frame that is not JSON", event.data);
        return;
      }
      this.handlers.onMessage(frame);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      switch (event.code) {
        case CLOSE_UNAUTHENTICATED:
          this.stopped = true;
          this.setState("offline");
          afterSessionEnded("suggestions", () => {
            this.stopped = false;
            this.open();
          });
          return;
        case CLOSE_DOCUMENT_NOT_FOUND:
        case CLOSE_FORBIDDEN:
        case CLOSE_TOO_MANY:
          this.stopped = true;
          this.closeCode = event.code;
          this.setState(event.code === CLOSE_DOCUMENT_NOT_FOUND ? "gone" : "refused");
          return;
        case CLOSE_IDLE:
          this.failures = 0;
          this.setState("idle");
          return;
        default:
          this.setState("offline");
          this.scheduleRetry();
      }
    });
  }

  scheduleRetry() {
    if (this.stopped) return;
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.failures);
    this.failures += 1;
    // Jitter spreads out the reconnects of many tabs after a server restart.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  /** @param {SocketState} state */
  setState(state) {
    this.state = state;
    this.handlers.onState(state);
  }
}
