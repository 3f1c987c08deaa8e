// The history panel: this document's past suggestions, newest first, with what became of each,
// and the text in it that writers took from the model.

import { ApiError, callApi, documentPath } from "./api.js";
import { timeAgo } from "./time.js";

const PREVIEW_CHARS = 140;

/**
 * @typedef {object} SuggestionRecord
 * @property {string | number} id
 * @property {string} requested_at
 * @property {string | null} outcome
 * @property {number | null} accepted_chars
 * @property {string[]} alternatives
 * @property {number | null} ttft_ms
 * @property {number | null} total_ms
 * @property {number | null} tokens
 * @property {string | null} model
 */

/** @param {SuggestionRecord} record */
function outcomeLabel(record) {
  switch (record.outcome) {
    case "partial":
      return `partly accepted (${record.accepted_chars ?? 0} chars)`;
    case "typed":
      // the writer typed the suggestion's start themselves: their text, not an acceptance
      return "typed by you";
    case null:
    case undefined:
    case "":
      return "pending";
    default:
      return record.outcome;
  }
}

/** @param {string} text */
function preview(text) {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > PREVIEW_CHARS ? `${flat.slice(0, PREVIEW_CHARS - 1)}…` : flat;
}

/**
 * The record's first alternative with something in it, or "".
 * @param {SuggestionRecord} record
 */
function firstText(record) {
  const texts = Array.isArray(record.alternatives) ? record.alternatives : [];
  return texts.find((text) => typeof text === "string" && text.trim() !== "") || "";
}

export class HistoryPanel {
  /**
   * @param {HTMLElement} list the element the items go into
   * @param {string} docId
   */
  constructor(list, docId) {
    this.list = list;
    this.docId = docId;
    /** Answers can arrive out of order; only the newest request may draw. */
    this.generation = 0;
  }

  async refresh() {
    const generation = ++this.generation;
    this.list.setAttribute("aria-busy", "true");
    try {
      const answer = await callApi("GET", `${documentPath(this.docId)}/suggestions`);
      if (generation === this.generation) this.render(answer.suggestions);
    } catch (exc) {
      if (generation !== this.generation) return;
      const message = document.createElement("p");
      message.className = "error";
      message.textContent = exc instanceof ApiError ? exc.message : String(exc);
      this.list.replaceChildren(message);
    } finally {
      if (generation === this.generation) this.list.removeAttribute("aria-busy");
    }
  }

  /**
   * Only suggestions that said something are listed: one whose alternatives are all empty (it
   * was cancelled before any text, or had nothing to say) is not worth a row.
   * @param {SuggestionRecord[]} records
   */
  render(records) {
    const worthListing = records.filter((record) => firstText(record) !== "");
    if (!worthListing.length) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "No suggestions yet. Pause while writing, or press Ctrl+Space.";
      this.list.replaceChildren(empty);
      return;
    }
    const sorted = worthListing.sort((a, b) => Date.parse(b.requested_at) - Date.parse(a.requested_at));
    this.list.replaceChildren(...sorted.map((record) => this.renderItem(record)));
  }

  /** @param {SuggestionRecord} record */
  renderItem(record) {
    const item = document.createElement("li");
    item.className = "history-item";
    item.dataset.testid = "history-item";
    item.dataset.outcome = record.outcome || "pending";

    const text = document.createElement("p");
    text.className = "history-text";
    const first = firstText(record);
    text.textContent = preview(first);
    text.title = first;

    const meta = document.createElement("div");
    meta.className = "history-meta";
    const badge = document.createElement("span");
    badge.className = `badge badge-${record.outcome || "pending"}`;
    badge.textContent = outcomeLabel(record);
    meta.append(badge);
    const details = [];
    if (typeof record.ttft_ms === "number") details.push(`${Math.round(record.ttft_ms)} ms`);
    if (record.alternatives && record.alternatives.length > 1) {
      details.push(`${record.alternatives.length} alternatives`);
    }
    details.push(timeAgo(record.requested_at));
    const detail = document.createElement("span");
    detail.className = "muted";
    detail.textContent = details.filter(Boolean).join(" · ");
    meta.append(detail);

    item.append(text, meta);
    return item;
  }
}

/**
 * The panel's second section: each AI-authored span as it reads now, newest first.
 */
export class AuthorshipList {
  /**
   * @param {HTMLElement} list the element the items go into
   * @param {import("./authorship.js").Authorship} authorship
   */
  constructor(list, authorship) {
    this.list = list;
    this.authorship = authorship;
  }

  render() {
    const spans = this.authorship.list().map((span, order) => ({ span, order }));
    if (!spans.length) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "Nothing yet. Text taken from a suggestion (Tab, Ctrl+→) is listed here.";
      this.list.replaceChildren(empty);
      return;
    }
    // Newest first; spans of one moment (or with unreadable times) keep the order they were added.
    spans.sort((a, b) => (Date.parse(b.span.at) || 0) - (Date.parse(a.span.at) || 0) || b.order - a.order);
    this.list.replaceChildren(...spans.map(({ span }) => renderSpan(span)));
  }
}

/** @param {import("./authorship.js").Span} span */
function renderSpan(span) {
  const item = document.createElement("li");
  item.className = "history-item";
  item.dataset.testid = "ai-item";
  item.dataset.deleted = String(!span.text);

  const text = document.createElement("p");
  text.className = "history-text";
  text.textContent = preview(span.text) || "(deleted)";
  if (!span.text.trim()) text.classList.add("muted");
  text.title = span.text;

  const meta = document.createElement("div");
  meta.className = "history-meta muted";
  const details = [span.user ? `accepted by ${span.user}` : "accepted", timeAgo(span.at)];
  if (span.suggestion !== null) details.push(`suggestion #${span.suggestion}`);
  meta.textContent = details.filter(Boolean).join(" · ");

  item.append(text, meta);
  return item;
}
