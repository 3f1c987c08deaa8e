// The thin bar under the writing column: the document's connection and saving, its counts (and
// the selection's), and the model, latency, load and alternatives of the suggestions.

import { WORDS_PER_MINUTE, readingTime } from "./counts.js";
import { byId } from "./dom.js";

const NOTICE_MS = 5_000;

/** @type {Record<import("./collab.js").SaveState, string>} */
const SAVE_LABELS = {
  saved: "Saved",
  saving: "Saving…",
  retrying: "Not saved yet — retrying…",
  offline: "Offline — edits kept",
  unsaved: "Not saved",
};

/** @type {Record<import("./collab.js").SaveState, string>} */
const SAVE_TITLES = {
  saved: "The server has stored every edit",
  saving: "Sent; waiting for the server to store it",
  retrying: "The server could not store the last edit just now; it is sent again shortly",
  offline: "Kept in this browser; sent when the connection is back",
  unsaved: "The last change was too large to save; see the message above the text",
};

/** @type {Record<import("./collab.js").ConnectionState, string>} */
const CONNECTION_LABELS = {
  offline: "offline",
  syncing: "syncing…",
  synced: "synced",
};

/** @type {Record<import("./socket.js").SocketState, string>} */
const SUGGESTION_CONNECTION_TITLES = {
  connecting: "Suggestions are connecting…",
  connected: "The model that writes the suggestions, and where it runs",
  offline: "Suggestions are offline; they come back with the connection",
  idle: "Suggestions reconnect as soon as you type",
  gone: "No suggestions: the document was not found",
  refused: "No suggestions here",
};

const NUMBER = new Intl.NumberFormat("en-US");

/**
 * "1 word", "1,204 words".
 * @param {number} count
 * @param {string} noun
 */
function plural(count, noun) {
  return `${NUMBER.format(count)} ${noun}${count === 1 ? "" : "s"}`;
}

export class StatusBar {
  constructor() {
    this.model = byId("status-model");
    this.ttft = byId("status-ttft");
    this.generating = byId("status-generating");
    this.counter = byId("alt-counter");
    this.notice = byId("status-notice");
    this.save = byId("status-save");
    this.connection = byId("status-connection");
    this.counts = byId("status-counts");
    this.selection = byId("status-selection");
    this.shortened = byId("status-shortened"); // "busy: shorter suggestions", empty while not
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.noticeTimer = undefined;
  }

  /** @param {import("./collab.js").SaveState} state */
  showSave(state) {
    if (this.save.dataset.state === state) return;
    this.save.textContent = SAVE_LABELS[state];
    this.save.title = SAVE_TITLES[state];
    this.save.dataset.state = state;
  }

  /**
   * The document socket's state; the page is offline when it is down.
   * @param {import("./collab.js").ConnectionState} state
   */
  showConnection(state) {
    if (this.connection.dataset.state === state) return;
    this.connection.textContent = CONNECTION_LABELS[state];
    this.connection.dataset.state = state;
  }

  /**
   * The suggestion socket's state, shown on the model's name.
   * @param {import("./socket.js").SocketState} state
   */
  showSuggestionConnection(state) {
    this.model.dataset.connection = state;
    this.model.title = SUGGESTION_CONNECTION_TITLES[state];
  }

  /**
   * @param {string} model
   * @param {string} device
   */
  showModel(model, device) {
    this.model.textContent = device ? `${model} · ${device}` : model;
  }

  /** @param {number} ms */
  showTtft(ms) {
    this.ttft.textContent = `last suggestion: ${Math.round(ms)} ms`;
    this.ttft.title = "Time from asking to the first word of the last suggestion";
  }

  /**
   * Whether the server, under load, is shortening suggestions (or dropping alternatives) rather
   * than refusing them; the latest `done` says.
   * @param {boolean} shortened
   */
  showShortened(shortened) {
    const text = shortened ? "busy: shorter suggestions" : "";
    if (this.shortened.textContent !== text) this.shortened.textContent = text;
  }

  /** @param {boolean} generating */
  showGenerating(generating) {
    this.generating.hidden = !generating;
  }

  /**
   * @param {number} index
   * @param {number} count 0 when no suggestion is on screen
   */
  showAlternative(index, count) {
    const text = count > 1 ? `${index + 1}/${count}` : "";
    if (this.counter.textContent === text) return;
    this.counter.textContent = text;
    this.counter.hidden = !text;
    this.counter.title = text ? "Alternative shown; Alt+] and Alt+[ switch" : "";
  }

  /**
   * The document's words, characters and reading time, and the selection's words and characters.
   * @param {import("./counts.js").Counts} counts
   */
  showCounts(counts) {
    let text = "Counting words…";
    if (counts.document) {
      const { words, characters } = counts.document;
      const parts = [plural(words, "word"), plural(characters, "character"), readingTime(words)];
      text = parts.filter(Boolean).join(" · ");
    }
    if (this.counts.textContent !== text) this.counts.textContent = text;
    this.counts.dataset.pending = String(counts.pending);
    this.counts.title = counts.pending
      ? "Counting…"
      : `Reading time at ${WORDS_PER_MINUTE} words a minute; Markdown marks and line breaks are not counted`;
    const selected = counts.selection;
    const selectionText = selected
      ? `Selection: ${plural(selected.words, "word")}, ${plural(selected.characters, "character")}`
      : "";
    if (this.selection.textContent !== selectionText) this.selection.textContent = selectionText;
    this.selection.hidden = !selected;
  }

  /** A short message that fades by itself; nothing to click away. @param {string} text */
  showNotice(text) {
    this.notice.textContent = text;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => {
      this.notice.textContent = "";
    }, NOTICE_MS);
  }
}
