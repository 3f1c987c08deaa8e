// Autosave: the document's text goes to the server shortly after the writer pauses, at least every
// few seconds while they keep typing, and once more as the page is hidden or left.
// A failed save is retried with backoff; the text in the editor is never thrown away.

const PAUSE_MS = 600;
const MAX_WAIT_MS = 5_000;
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;
// Browsers refuse keepalive requests whose bodies add up to more than 64 KiB.
const KEEPALIVE_LIMIT_BYTES = 60_000;

/** @typedef {"saved" | "saving" | "unsaved" | "failed"} SaveState */

export class Autosaver {
  /**
   * @param {object} options
   * @param {() => string} options.readText the document's current text
   * @param {(text: string, keepalive: boolean) => Promise<unknown>} options.save
   * @param {(state: SaveState) => void} options.onState
   */
  constructor({ readText, save, onState }) {
    this.readText = readText;
    this.save = save;
    this.onState = onState;
    /** Bumped on every edit; a save is current when it carried the latest version. */
    this.version = 0;
    this.savedVersion = 0;
    this.saving = false;
    this.failures = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.pauseTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.maxWaitTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;

    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") this.flushOnExit();
    });
    window.addEventListener("pagehide", () => this.flushOnExit());
  }

  get saved() {
    return this.savedVersion === this.version && !this.saving;
  }

  /** Call after every change to the text. */
  noteEdit() {
    this.version += 1;
    if (!this.saving && !this.retryTimer) this.onState("unsaved");
    clearTimeout(this.pauseTimer);
    this.pauseTimer = setTimeout(() => this.flush(), PAUSE_MS);
    if (this.maxWaitTimer === undefined) {
      this.maxWaitTimer = setTimeout(() => this.flush(), MAX_WAIT_MS);
    }
  }

  clearTimers() {
    clearTimeout(this.pauseTimer);
    clearTimeout(this.maxWaitTimer);
    clearTimeout(this.retryTimer);
    this.pauseTimer = this.maxWaitTimer = this.retryTimer = undefined;
  }

  async flush() {
    if (this.saving) return; // the save in flight flushes again when it sees newer edits
    this.clearTimers();
    if (this.savedVersion === this.version) return;
    const version = this.version;
    this.saving = true;
    this.onState("saving");
    try {
      await this.save(this.readText(), false);
      this.failures = 0;
      this.savedVersion = Math.max(this.savedVersion, version);
    } catch (exc) {
      console.warn("Cowrite: saving failed", exc);
      this.failures += 1;
    } finally {
      this.saving = false;
    }
    if (this.failures > 0) {
      this.onState("failed");
      const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (this.failures - 1));
      this.retryTimer = setTimeout(() => this.flush(), delay);
    } else if (this.savedVersion !== this.version) {
      this.flush();
    } else {
      this.onState("saved");
    }
  }

  /** The page may be gone before an ordinary request finishes; keepalive outlives it. */
  flushOnExit() {
    if (this.savedVersion === this.version) return;
    this.clearTimers();
    const version = this.version;
    const text = this.readText();
    const fitsKeepalive = new Blob([text]).size < KEEPALIVE_LIMIT_BYTES;
    this.save(text, fitsKeepalive).then(
      () => {
        this.savedVersion = Math.max(this.savedVersion, version);
        if (this.saved) this.onState("saved");
      },
      () => {
        // Still here (the tab was only hidden): the ordinary path retries.
        this.failures += 1;
        this.onState("failed");
        this.retryTimer = setTimeout(() => this.flush(), FIRST_RETRY_MS);
      },
    );
  }
}
