// A WebSocket that comes back: reconnects with growing, jittered delays and reports its state.

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15_000;
/** The server closes with this code when the document does not exist; retrying cannot help. */
export const CLOSE_DOCUMENT_NOT_FOUND = 4404;

/** @typedef {"connecting" | "connected" | "offline" | "gone"} SocketState */

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
    // Coming back online or to the tab is a good moment to try again without waiting.
    window.addEventListener("online", () => this.reconnectNow());
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
    if (this.state !== "gone") this.setState("offline");
  }

  get connected() {
    return this.state === "connected";
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
      if (event.code === CLOSE_DOCUMENT_NOT_FOUND) {
        this.stopped = true;
        this.setState("gone");
        return;
      }
      this.setState("offline");
      this.scheduleRetry();
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
