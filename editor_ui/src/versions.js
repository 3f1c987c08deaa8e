// The Versions panel (version history): the document's saved versions with when, who wrote in them
// and their names; one selected shows its text with what changed since marked, and a writer may
// name it, save the current text as a named version, or restore it as one undoable edit.

import { diffWordsWithSpace } from "diff";
import { ApiError, callApi, documentPath } from "./api.js";
import { timeAgo } from "./time.js";

/** How long a word diff may take before the panel settles for a coarser one (ms). */
const DIFF_TIMEOUT_MS = 400;
const NAME_MAX = 80;

/**
 * @typedef {object} Version
 * @property {number} id
 * @property {string} reason
 * @property {string} created_at
 * @property {number} chars
 * @property {string | null} name
 * @property {string[]} authors
 * @property {string} [text]
 */

/** @typedef {{from: number, to: number, insert: string}} Change */

/**
 * The edits that turn `current` into `target`, word by word, so that the text they share stays
 * where it is (with its Yjs items, hence its AI-authorship marks). Positions are in `current`.
 * @param {string} current
 * @param {string} target
 * @returns {Change[]}
 */
export function restoreChanges(current, target) {
  if (current === target) return [];
  const parts = diffWordsWithSpace(current, target, { timeout: DIFF_TIMEOUT_MS });
  if (!parts) return [coarseChange(current, target)];
  /** @type {Change[]} */
  const changes = [];
  let at = 0;
  for (const part of parts) {
    const last = changes[changes.length - 1];
    if (part.removed) {
      if (last && last.to === at) last.to = at + part.value.length;
      else changes.push({ from: at, to: at + part.value.length, insert: "" });
      at += part.value.length;
    } else if (part.added) {
      if (last && last.to === at) last.insert += part.value;
      else changes.push({ from: at, to: at, insert: part.value });
    } else {
      at += part.value.length;
    }
  }
  return changes;
}

/**
 * One replacement of the part that differs (for texts too different to diff in time).
 * @param {string} current
 * @param {string} target
 * @returns {Change}
 */
function coarseChange(current, target) {
  let start = 0;
  const limit = Math.min(current.length, target.length);
  while (start < limit && current[start] === target[start]) start++;
  let endCurrent = current.length;
  let endTarget = target.length;
  while (endCurrent > start && endTarget > start && current[endCurrent - 1] === target[endTarget - 1]) {
    endCurrent--;
    endTarget--;
  }
  return { from: start, to: endCurrent, insert: target.slice(start, endTarget) };
}

/**
 * The version's text with what changed since marked: `<del>` what it had that is gone now,
 * `<ins>` what was written since.
 * @param {string} version
 * @param {string} now
 * @returns {DocumentFragment}
 */
export function markedDiff(version, now) {
  const fragment = document.createDocumentFragment();
  const parts = version === now ? [{ value: now }] : diffWordsWithSpace(version, now, { timeout: DIFF_TIMEOUT_MS });
  if (!parts) {
    fragment.append(version);
    return fragment;
  }
  for (const part of parts) {
    if (part.added || part.removed) {
      const mark = document.createElement(part.added ? "ins" : "del");
      mark.textContent = part.value;
      mark.title = part.added ? "written since this version" : "in this version, gone now";
      fragment.append(mark);
    } else {
      fragment.append(part.value);
    }
  }
  return fragment;
}

/** @param {Version} version */
function describe(version) {
  const when = timeAgo(version.created_at);
  if (version.reason === "before-restore") return `${when} · before a restore`;
  return when;
}

/** @param {string[]} authors */
function byline(authors) {
  return authors.length ? `by ${authors.join(", ")}` : "no new writing";
}

export class VersionsPanel {
  /**
   * @param {HTMLElement} panel the panel's element (editor.html's #versions-panel)
   * @param {string} docId
   * @param {{
   *   view: import("@codemirror/view").EditorView,
   *   undoManager: import("yjs").UndoManager | null,
   *   readOnly: () => boolean,
   *   onRestored: (message: string) => void,
   * }} options
   */
  constructor(panel, docId, options) {
    this.panel = panel;
    this.docId = docId;
    this.options = options;
    this.list = /** @type {HTMLElement} */ (panel.querySelector("[data-testid=versions-list]"));
    this.preview = /** @type {HTMLElement} */ (panel.querySelector("[data-testid=versions-preview]"));
    this.error = /** @type {HTMLElement} */ (panel.querySelector("[data-testid=versions-error]"));
    this.namedOnly = /** @type {HTMLInputElement} */ (panel.querySelector("[data-testid=versions-named-only]"));
    /** @type {Version[]} */
    this.versions = [];
    /** @type {Version | null} */
    this.selected = null;
    /** Answers can arrive out of order; only the newest request may draw. */
    this.generation = 0;
    this.namedOnly.addEventListener("change", () => this.renderList());
    const saveForm = /** @type {HTMLFormElement} */ (panel.querySelector("[data-testid=versions-save-form]"));
    const saveName = /** @type {HTMLInputElement} */ (saveForm.querySelector("input"));
    saveForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.act(async () => {
        const name = saveName.value.trim();
        if (!name) throw new Error("Give the version a name first.");
        const saved = await callApi("POST", this.path(), { name });
        saveName.value = "";
        await this.refresh(saved.id);
      });
    });
  }

  /** @param {number | string} [suffix] */
  path(suffix = "") {
    return `${documentPath(this.docId)}/revisions${suffix === "" ? "" : `/${suffix}`}`;
  }

  /**
   * Run an action of the writer's, showing its failure in the panel.
   * @param {() => Promise<void>} action
   */
  async act(action) {
    this.showError("");
    try {
      await action();
    } catch (exc) {
      this.showError(exc instanceof ApiError || exc instanceof Error ? exc.message : String(exc));
    }
  }

  /** @param {string} message */
  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  /** @param {number} [select] a version to select once the list is in */
  async refresh(select) {
    const generation = ++this.generation;
    this.list.setAttribute("aria-busy", "true");
    try {
      const answer = await callApi("GET", this.path());
      if (generation !== this.generation) return;
      this.versions = answer.revisions;
      this.renderList();
      const wanted = select ?? this.selected?.id;
      if (wanted !== undefined && this.versions.some((v) => v.id === wanted)) await this.select(wanted);
    } catch (exc) {
      if (generation === this.generation) this.showError(exc instanceof Error ? exc.message : String(exc));
    } finally {
      if (generation === this.generation) this.list.removeAttribute("aria-busy");
    }
  }

  renderList() {
    const shown = this.namedOnly.checked ? this.versions.filter((v) => v.name) : this.versions;
    if (!shown.length) {
      const empty = document.createElement("li");
      empty.className = "muted versions-empty";
      empty.textContent = this.namedOnly.checked
        ? "No named versions yet."
        : "No versions yet: they are saved as you write.";
      this.list.replaceChildren(empty);
      return;
    }
    this.list.replaceChildren(
      ...shown.map((version) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "versions-item";
        button.dataset.testid = "version-item";
        button.dataset.versionId = String(version.id);
        if (version.name) button.dataset.named = "true";
        button.setAttribute("aria-pressed", String(this.selected?.id === version.id));
        const title = document.createElement("span");
        title.className = "versions-name";
        title.textContent = version.name ?? describe(version);
        const meta = document.createElement("span");
        meta.className = "versions-meta";
        meta.textContent = `${version.name ? `${describe(version)} · ` : ""}${byline(version.authors)}`;
        button.append(title, meta);
        button.addEventListener("click", () => this.act(() => this.select(version.id)));
        item.append(button);
        return item;
      }),
    );
  }

  /** @param {number} versionId */
  async select(versionId) {
    /** @type {Version} */
    const version = await callApi("GET", this.path(versionId));
    this.selected = version;
    for (const button of this.list.querySelectorAll("[data-version-id]")) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-version-id") === String(versionId)));
    }
    this.renderPreview();
  }

  renderPreview() {
    const version = this.selected;
    if (!version) return;
    const now = this.options.view.state.doc.toString();
    const heading = document.createElement("p");
    heading.className = "versions-heading";
    heading.textContent = `${version.name ? `“${version.name}” · ` : ""}${describe(version)} · ${byline(version.authors)}`;
    const legend = document.createElement("p");
    legend.className = "hint versions-legend";
    if (version.text === now) {
      legend.textContent = "Same as the text now.";
    } else {
      const ins = document.createElement("ins");
      ins.textContent = "underlined";
      const del = document.createElement("del");
      del.textContent = "struck through";
      legend.append("Since this version: ", ins, " written, ", del, " removed.");
    }
    const diff = document.createElement("div");
    diff.className = "versions-diff";
    diff.dataset.testid = "versions-diff";
    diff.append(markedDiff(version.text ?? "", now));
    const parts = [heading, legend];
    if (!this.options.readOnly()) parts.push(this.actions(version));
    this.preview.replaceChildren(...parts, diff);
  }

  /** @param {Version} version */
  actions(version) {
    const box = document.createElement("div");
    box.className = "versions-actions writer-only";
    const form = document.createElement("form");
    form.className = "versions-name-form";
    const input = document.createElement("input");
    input.maxLength = NAME_MAX;
    input.value = version.name ?? "";
    input.placeholder = "Name this version";
    input.setAttribute("aria-label", "Name of this version");
    input.dataset.testid = "version-name";
    const name = document.createElement("button");
    name.type = "submit";
    name.className = "button quiet";
    name.textContent = version.name ? "Rename" : "Name";
    name.dataset.testid = "version-name-save";
    form.append(input, name);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.act(async () => {
        const typed = input.value.trim();
        await callApi("PATCH", this.path(version.id), { name: typed || null });
        await this.refresh(version.id);
      });
    });
    const restore = document.createElement("button");
    restore.type = "button";
    restore.className = "button primary";
    restore.textContent = "Restore";
    restore.dataset.testid = "version-restore";
    restore.disabled = version.text === this.options.view.state.doc.toString();
    restore.addEventListener("click", () => this.act(() => this.restore(version)));
    box.append(form, restore);
    return box;
  }

  /**
   * Make the version's text the document's, as one edit that Ctrl+Z takes back whole. The text it
   * replaces is kept as a version first, so nothing is lost.
   * @param {Version} version
   */
  async restore(version) {
    if (this.options.readOnly()) throw new Error("You can only view this document.");
    await callApi("POST", this.path(), { reason: "before-restore" });
    const view = this.options.view;
    const changes = restoreChanges(view.state.doc.toString(), version.text ?? "");
    const undo = this.options.undoManager;
    // its own undo step: nothing typed just before or after joins it
    undo?.stopCapturing();
    view.dispatch({ changes, userEvent: "input.restore", scrollIntoView: true });
    undo?.stopCapturing();
    this.options.onRestored(
      `Restored the version ${version.name ? `“${version.name}”` : `from ${timeAgo(version.created_at)}`}. Ctrl+Z undoes it.`,
    );
    this.selected = version;
    this.renderPreview();
    await this.refresh(version.id);
  }
}
