// The thin bar under the writing column: model, latency, alternatives, saving and connection.

const NOTICE_MS = 5_000;

/** @type {Record<string, string>} */
const SAVE_LABELS = {
  saved: "Saved",
  saving: "Saving…",
  unsaved: "Edited",
  failed: "Save failed — retrying",
};

/** @type {Record<string, string>} */
const CONNECTION_LABELS = {
  connecting: "connecting…",
  connected: "connected",
  offline: "offline",
  gone: "no suggestions (document not found)",
};

/** @param {string} id */
function element(id) {
  const found = document.getElementById(id);
  if (!found) throw new Error(`editor.html lacks #${id}`);
  return found;
}

export class StatusBar {
  constructor() {
    this.model = element("status-model");
    this.ttft = element("status-ttft");
    this.generating = element("status-generating");
    this.counter = element("alt-counter");
    this.notice = element("status-notice");
    this.save = element("status-save");
    this.connection = element("status-connection");
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.noticeTimer = undefined;
  }

  /** @param {import("./autosave.js").SaveState} state */
  showSave(state) {
    this.save.textContent = SAVE_LABELS[state];
    this.save.dataset.state = state;
  }

  /** @param {import("./socket.js").SocketState} state */
  showConnection(state) {
    this.connection.textContent = CONNECTION_LABELS[state];
    this.connection.dataset.state = state;
  }

  /**
   * @param {string} model
   * @param {string} device
   */
  showModel(model, device) {
    this.model.textContent = device ? `${model} · ${device}` : model;
    this.model.title = "The model that writes the suggestions, and where it runs";
  }

  /** @param {number} ms */
  showTtft(ms) {
    this.ttft.textContent = `last suggestion: ${Math.round(ms)} ms`;
    this.ttft.title = "Time from asking to the first word of the last suggestion";
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

  /** A short message that fades by itself; nothing to click away. @param {string} text */
  showNotice(text) {
    this.notice.textContent = text;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => {
      this.notice.textContent = "";
    }, NOTICE_MS);
  }
}
