// The suggestion controller: decides when to ask, speaks the suggestion protocol (docs/protocol.md)
// and reports each suggestion's fate. The ghost-text field owns what is on screen.

import { Prec, Transaction } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import { suggestionContext } from "./context.js";
import { REFUSAL_NOTICES, refusalAt } from "./suggestionpolicy.js";
import {
  appendGhost,
  currentGhost,
  dismissGhost,
  endedGhosts,
  finishGhost,
  fullyTaken,
  startGhost,
  visibleText,
} from "./ghost.js";

const PROTOCOL_VERSION = 1;
/** sessionStorage's key for this tab's id, and the ids the server accepts. */
const TAB_KEY = "cowrite.tab";
const TAB_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** @type {Record<string, string>} */
const DONE_NOTICES = {
  busy: "The model is busy — try again in a moment.",
  error: "The suggestion failed on the server.",
  time: "The suggestion ran out of time.",
};
/** `done` reasons of a suggestion that ended as it should, whether or not it had anything to say. */
const NORMAL_ENDINGS = new Set(["finished", "length", "stop", "unsure", "sentence"]);
const NOTHING_HERE = "No suggestion here.";

/**
 * One `suggest` this page sent, until both its `done` came and its fate was reported.
 * @typedef {object} Request
 * @property {number} epoch   the socket connection it went out on: feedback only makes sense there
 * @property {boolean} manual the writer asked (Ctrl+Space)
 * @property {boolean} shown  its text reached the screen (known once its ghost ended)
 * @property {boolean} done   its `done` came
 */

/**
 * The document's suggestion socket, for this tab.
 * @param {string} id the document's id
 */
export function suggestionSocketUrl(id) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const tab = encodeURIComponent(tabId());
  return `${scheme}://${location.host}/ws/suggest/${encodeURIComponent(id)}?tab=${tab}`;
}

/**
 * This tab's id: the server keeps one suggestion session (and its cached context) per writer,
 * document and tab, so two tabs of one writer don't cancel each other's suggestions. Kept in
 * sessionStorage, so a reload or a reconnect keeps it and other tabs get their own.
 */
function tabId() {
  let id = sessionStorage.getItem(TAB_KEY);
  if (!id || !TAB_ID.test(id)) {
    id = Math.random().toString(36).slice(2, 12);
    sessionStorage.setItem(TAB_KEY, id);
  }
  return id;
}

export class Suggester {
  /**
   * @param {object} options
   * @param {import("./socket.js").ReconnectingSocket} options.socket
   * @param {import("./settings.js").SettingsStore} options.settings
   * @param {import("./statusbar.js").StatusBar} options.status
   * @param {() => void} options.onFeedback called after a suggestion's fate was reported
   */
  constructor({ socket, settings, status, onFeedback }) {
    this.socket = socket;
    this.settings = settings;
    this.status = status;
    this.onFeedback = onFeedback;
    /** @type {EditorView | null} */
    this.view = null;
    /** The request the server is still generating for, if any. */
    /** @type {string | null} */
    this.inFlight = null;
    /** @type {Map<string, Request>} */
    this.requests = new Map();
    this.sequence = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.pauseTimer = undefined;
    /** An ask that waits for the socket to come back from idleness: "manual", "auto" or null. */
    /** @type {"manual" | "auto" | null} */
    this.askWhenConnected = null;
    /** The server said to slow down: no automatic asks before this time (ms since the epoch). */
    this.quietUntil = 0;
    /** Why the last ask was not made at the cursor's spot (suggestionpolicy.js); null once one goes out. */
    /** @type {import("./suggestionpolicy.js").Refusal | null} */
    this.declined = null;

    settings.subscribe((value) => {
      if (!value.autoSuggest) clearTimeout(this.pauseTimer);
    });
  }

  /** The editor extension: watches edits and binds Ctrl+Space. */
  extension() {
    return [
      EditorView.updateListener.of((update) => this.handleUpdate(update)),
      Prec.highest(keymap.of([{ key: "Ctrl-Space", run: () => this.requestNow(true) }])),
    ];
  }

  /** @param {EditorView} view */
  attach(view) {
    this.view = view;
  }

  /** @param {import("@codemirror/view").ViewUpdate} update */
  handleUpdate(update) {
    for (const ghost of endedGhosts(update)) this.reportFate(ghost);
    const ghost = currentGhost(update.state);
    if (ghost) {
      clearTimeout(this.pauseTimer);
    } else if (update.docChanged && update.transactions.some(isUserEdit)) {
      // A socket the server closed for idleness reopens while the writer types, before the pause.
      this.socket.wake();
      this.schedule();
    }
    this.showAlternative(ghost);
  }

  schedule() {
    clearTimeout(this.pauseTimer);
    if (!this.settings.value.autoSuggest) return;
    this.pauseTimer = setTimeout(() => this.requestNow(false), this.settings.value.pauseMs);
  }

  /**
   * Ask for a suggestion at the cursor.
   * @param {boolean} manual the writer asked (Ctrl+Space) rather than paused
   * @returns {boolean} true: the key press is handled either way
   */
  requestNow(manual) {
    clearTimeout(this.pauseTimer);
    const view = this.view;
    if (!view) return true;
    const { state } = view;
    const selection = state.selection;
    if (selection.ranges.length > 1 || !selection.main.empty || state.doc.length === 0) {
      if (manual) this.status.showNotice(state.doc.length ? "Suggestions need a cursor, not a selection." : "Write something first.");
      return true;
    }
    if (!manual && (!this.settings.value.autoSuggest || !view.hasFocus || Date.now() < this.quietUntil)) return true;
    const head = selection.main.head;
    const refusal = refusalAt(state, head);
    if (refusal) {
      this.declined = refusal;
      if (manual) this.status.showNotice(REFUSAL_NOTICES[refusal]);
      return true;
    }
    if (!this.socket.connected) {
      if (this.socket.state === "idle" || (this.socket.state === "connecting" && this.askWhenConnected)) {
        this.socket.wake();
        this.askWhenConnected = manual || this.askWhenConnected === "manual" ? "manual" : "auto";
      } else if (manual) {
        this.status.showNotice(
          this.socket.state === "refused"
            ? "Suggestions are not available here."
            : "Offline — suggestions come back when the connection does.",
        );
      }
      return true;
    }

    const { before, after } = suggestionContext(state.doc.toString(), head);
    const id = `s-${Date.now().toString(36)}-${++this.sequence}`;
    const { maxTokens, temperature, n } = this.settings.value;
    // Start the ghost first: it ends (and reports) the previous one before the new request goes.
    view.dispatch({ effects: startGhost.of({ id, pos: head, n }) });
    this.socket.send({
      v: PROTOCOL_VERSION,
      type: "suggest",
      id,
      before,
      after,
      settings: { max_tokens: maxTokens, temperature, n },
    });
    // Requests of an earlier connection get no `done` any more.
    for (const [old, request] of this.requests) if (request.epoch !== this.socket.epoch) this.requests.delete(old);
    this.requests.set(id, { epoch: this.socket.epoch, manual, shown: false, done: false });
    this.declined = null;
    this.inFlight = id;
    this.status.showGenerating(true);
    return true;
  }

  /**
   * Cancel what is still generating and tell the server what the writer did with what it saw.
   * @param {import("./ghost.js").Ghost} ghost
   */
  reportFate(ghost) {
    const request = this.requests.get(ghost.id);
    if (request) request.shown = ghost.shown;
    if (request && request.done) this.requests.delete(ghost.id);
    const sameConnection = request !== undefined && request.epoch === this.socket.epoch;
    if (ghost.id === this.inFlight && sameConnection) {
      this.socket.send({ v: PROTOCOL_VERSION, type: "cancel", id: ghost.id });
    }
    if (!ghost.shown || !sameConnection) return;
    this.socket.send({
      v: PROTOCOL_VERSION,
      type: "feedback",
      id: ghost.id,
      outcome: outcomeOf(ghost),
      accepted_chars: ghost.keyed,
      alternative: ghost.index,
    });
    this.onFeedback();
  }

  /** @param {any} frame a parsed server frame */
  handleFrame(frame) {
    if (!frame || frame.v !== PROTOCOL_VERSION) {
      console.warn("Cowrite: ignoring a frame of another protocol version", frame);
      return;
    }
    switch (frame.type) {
      case "hello":
        this.status.showModel(String(frame.model || "model"), String(frame.device || ""));
        break;
      case "delta":
        this.dispatchIfCurrent(frame.id, appendGhost.of({ id: frame.id, index: frame.index, text: frame.text }));
        break;
      case "done":
        this.handleDone(frame);
        break;
      case "error":
        this.handleError(frame);
        break;
      default:
        console.warn("Cowrite: ignoring a frame of unknown type", frame);
    }
  }

  /**
   * The server's text is the suggestion: it may be shorter than what streamed (a half word
   * dropped) or empty, and the ghost becomes exactly that. Only a suggestion that put text on
   * screen counts as one in the status bar.
   * @param {any} frame
   */
  handleDone(frame) {
    if (frame.id === this.inFlight) {
      this.inFlight = null;
      this.status.showGenerating(false);
    }
    const notice = DONE_NOTICES[frame.reason];
    if (notice) this.status.showNotice(notice);
    // The engine was under load and shortened this suggestion (or dropped alternatives).
    this.status.showShortened(frame.shortened === true);
    /** @type {string[]} */
    const finals = [];
    for (const alternative of Array.isArray(frame.alternatives) ? frame.alternatives : []) {
      const { index, text } = alternative || {};
      if (Number.isInteger(index) && index >= 0 && typeof text === "string") finals[index] = text;
    }
    const request = this.requests.get(frame.id);
    if (request) request.done = true;
    const suggestion = typeof frame.suggestion === "number" ? frame.suggestion : undefined;
    this.dispatchIfCurrent(frame.id, finishGhost.of({ id: frame.id, alternatives: finals, suggestion }));

    const ghost = this.view && currentGhost(this.view.state);
    const onScreen = ghost !== null && ghost.id === frame.id && visibleText(ghost) !== "";
    if (!onScreen) this.requests.delete(frame.id); // its fate is reported already, or it had none
    const hasText = finals.some((text) => text);
    if (hasText && (onScreen || (request && request.shown)) && typeof frame.ttft_ms === "number") {
      this.status.showTtft(frame.ttft_ms);
    } else if (!hasText && request && request.manual && NORMAL_ENDINGS.has(frame.reason)) {
      this.status.showNotice(NOTHING_HERE);
    }
  }

  /** @param {any} frame */
  handleError(frame) {
    if (frame.code === "unknown_suggestion") {
      // Feedback or a cancel for a request the server has forgotten (it restarted): nothing to do.
      console.debug("Cowrite:", frame.message);
      return;
    }
    if (frame.code === "rate_limited") {
      // One quiet notice per wait, and no automatic asks until it is over.
      const waitMs = typeof frame.retry_after_ms === "number" ? Math.max(0, frame.retry_after_ms) : 1_000;
      if (Date.now() >= this.quietUntil) {
        this.status.showNotice(`Suggestions are paused for ${Math.max(1, Math.ceil(waitMs / 1000))} s — too many requests.`);
      }
      this.quietUntil = Math.max(this.quietUntil, Date.now() + waitMs);
    } else {
      this.status.showNotice(`Suggestion error: ${frame.message || frame.code}`);
    }
    if (frame.id && frame.id === this.inFlight) {
      // A rejected request gets no `done`; stop waiting for it.
      this.requests.delete(frame.id);
      this.inFlight = null;
      this.status.showGenerating(false);
      this.dispatchIfCurrent(frame.id, dismissGhost.of(null));
    }
  }

  /** @param {import("./socket.js").SocketState} state */
  handleSocketState(state) {
    if (state === "connected") {
      this.prime();
      const waiting = this.askWhenConnected;
      this.askWhenConnected = null;
      if (waiting) this.requestNow(waiting === "manual");
      return;
    }
    if (state !== "connecting") this.askWhenConnected = null;
    if (!this.inFlight) return;
    // The request died with its connection; keep what is on screen, stop waiting for more.
    const id = this.inFlight;
    this.inFlight = null;
    this.status.showGenerating(false);
    this.dispatchIfCurrent(id, finishGhost.of({ id }));
  }

  /** Let the server read the context now, so the first suggestion after opening is quick. */
  prime() {
    const view = this.view;
    if (!view) return;
    const { state } = view;
    const head = state.selection.main.head;
    if (refusalAt(state, head)) return; // nothing would be asked there either
    const { before } = suggestionContext(state.doc.toString(), head);
    if (before) this.socket.send({ v: PROTOCOL_VERSION, type: "prime", before });
  }

  /**
   * @param {string} id
   * @param {import("@codemirror/state").StateEffect<any>} effect
   */
  dispatchIfCurrent(id, effect) {
    const view = this.view;
    const ghost = view && currentGhost(view.state);
    if (view && ghost && ghost.id === id) view.dispatch({ effects: effect });
  }

  /** @param {import("./ghost.js").Ghost | null} ghost */
  showAlternative(ghost) {
    if (ghost && visibleText(ghost)) this.status.showAlternative(ghost.index, ghost.n);
    else this.status.showAlternative(0, 0);
  }

  /** What end-to-end tests wait on. */
  snapshot() {
    const ghost = this.view && currentGhost(this.view.state);
    const text = visibleText(ghost);
    return {
      ghost: text ? text : null,
      generating: this.inFlight !== null,
      alternative: ghost && text ? ghost.index : 0,
      alternatives: ghost && text ? ghost.n : 0,
      declined: this.declined,
    };
  }
}

/**
 * What the writer did with a suggestion they saw: only text taken with Tab or Ctrl+→ counts as
 * accepted; typing the same characters as the ghost is their own writing ("typed").
 * @param {import("./ghost.js").Ghost} ghost
 * @returns {"accepted" | "partial" | "typed" | "rejected"}
 */
export function outcomeOf(ghost) {
  if (ghost.keyed > 0) return fullyTaken(ghost) ? "accepted" : "partial";
  return ghost.taken ? "typed" : "rejected";
}

/** @param {Transaction} tr */
function isUserEdit(tr) {
  return tr.docChanged && tr.annotation(Transaction.userEvent) !== undefined;
}
