// Finding and organising on the document list: search with highlighted snippets, sort, tags (chips
// on rows, a filter, a dialog to edit them), and the trash (Delete moves a document there for 30
// days with Undo; the Trash view restores it or deletes it for ever). list.js calls in here.

import { ApiError, callApi, documentPath } from "./api.js";
import { button, byId, element } from "./dom.js";
import { displayTitle, documentHref, documentRow } from "./documentrow.js";
import { timeAgo } from "./time.js";

/**
 * @typedef {{id: string, title: string, owner: string, role?: string, updated_at: string,
 *            tags?: string[], deleted_at?: string | null}} LibraryDocument
 * @typedef {{id: string, title: string, owner: string, role: string, updated_at: string,
 *            snippet: string}} SearchHit
 */

// The server marks a snippet's highlights with these (Unicode private use) characters, never HTML.
const MARK_START = "\ue000";
const MARK_END = "\ue001";
const SEARCH_DEBOUNCE_MS = 250;
const UNDO_MS = 10_000;
const DAY_MS = 24 * 60 * 60 * 1000;
const SORT_KEY = "cowrite.sort";

const main = byId("library-main");
const errorBox = byId("list-error");
const searchInput = /** @type {HTMLInputElement} */ (byId("search-input"));
const searchForm = /** @type {HTMLFormElement} */ (byId("search-form"));
const searchStatus = byId("search-status");
const searchResults = /** @type {HTMLUListElement} */ (byId("search-results"));
const sortSelect = /** @type {HTMLSelectElement} */ (byId("sort-select"));
const tagFilter = byId("tag-filter");
const trashToggle = /** @type {HTMLButtonElement} */ (byId("trash-toggle"));
const trashList = /** @type {HTMLUListElement} */ (byId("trash-list"));
const trashEmpty = byId("trash-empty");
const undoToast = byId("undo-toast");
const undoMessage = byId("undo-message");
const undoButton = /** @type {HTMLButtonElement} */ (byId("undo"));
const foreverDialog = /** @type {HTMLDialogElement} */ (byId("forever-dialog"));
const foreverName = byId("forever-name");
const tagsDialog = /** @type {HTMLDialogElement} */ (byId("tags-dialog"));
const tagsName = byId("tags-name");
const tagsInput = /** @type {HTMLInputElement} */ (byId("tags-input"));
const tagsError = byId("tags-error");
const emptyState = byId("empty");
const emptyText = emptyState.textContent;

/** What the list shows: the sort order and the tag it is filtered by ("" for none). */
const state = { sort: localStorage.getItem(SORT_KEY) === "title" ? "title" : "updated", tag: "" };
/** Reloads the document list (list.js). */
let reloadList = async () => {};
let searchTimer = 0;
let searchSeq = 0;
let undoTimer = 0;

/** @param {unknown} exc */
function showError(exc) {
  errorBox.textContent = exc instanceof ApiError ? exc.message : String(exc);
  errorBox.hidden = false;
}

/** The document list's URL for the current sort and tag. */
export function listPath() {
  const params = new URLSearchParams({ sort: state.sort });
  if (state.tag) params.set("tag", state.tag);
  return `/api/documents?${params}`;
}

/**
 * Put the rows in the chosen order (the server sends them so; a rename or an edit moves one).
 * @param {LibraryDocument[]} rows
 */
export function sortRows(rows) {
  if (state.sort === "title") {
    rows.sort((a, b) => displayTitle(a.title).localeCompare(displayTitle(b.title), undefined, { sensitivity: "base" }));
  } else {
    rows.sort((a, b) => Date.parse(b.updated_at) - Date.parse(a.updated_at));
  }
}

/**
 * A tag as a chip; clicking it filters the list by it.
 * @param {string} tag
 */
function tagChip(tag) {
  const chip = button(tag, "tag-chip", () => filterByTag(tag), "tag-chip");
  chip.title = `Show only documents tagged “${tag}”`;
  return chip;
}

/**
 * Add a row's tag chips, and a Tags action for those who may change them (editors and the owner).
 * @param {HTMLElement} row
 * @param {LibraryDocument} doc
 * @param {string} role
 */
export function decorateRow(row, doc, role) {
  const tags = doc.tags || [];
  if (tags.length) {
    const chips = element("div", "tag-chips");
    chips.dataset.testid = "row-tags";
    chips.append(...tags.map(tagChip));
    row.querySelector(".doc-body")?.append(chips);
  }
  if (role === "owner" || role === "editor") {
    const edit = button("Tags", "edit-tags", () => editTags(doc));
    edit.title = "Label this document so you can find it by tag";
    const actions = row.querySelector(".doc-actions");
    actions?.insertBefore(edit, actions.querySelector("[data-testid=delete], [data-testid=leave]"));
  }
}

/** @param {string} tag "" for every document */
async function filterByTag(tag) {
  state.tag = tag;
  emptyState.textContent = tag ? `No documents tagged “${tag}”.` : emptyText;
  closeSearch();
  showView("list");
  await Promise.all([reloadList(), loadTags()]);
}

/** The tag filter: every tag on a readable document, with how many carry it. */
async function loadTags() {
  /** @type {{tag: string, count: number}[]} */
  let tags;
  try {
    tags = (await callApi("GET", "/api/tags")).tags;
  } catch (exc) {
    showError(exc);
    return;
  }
  if (state.tag && !tags.some((t) => t.tag === state.tag)) tags.push({ tag: state.tag, count: 0 });
  tagFilter.hidden = tags.length === 0;
  const chip = (/** @type {string} */ tag, /** @type {string} */ label) => {
    const toggle = () => filterByTag(state.tag === tag ? "" : tag);
    const made = button(label, "tag-filter-chip", toggle, "tag-chip filter-chip");
    made.dataset.tag = tag;
    made.setAttribute("aria-pressed", String(state.tag === tag));
    return made;
  };
  const chips = tags.map((t) => chip(t.tag, `${t.tag} (${t.count})`));
  tagFilter.replaceChildren(element("span", "muted", "Tags:"), chip("", "All"), ...chips);
}

/** @param {LibraryDocument} doc */
function editTags(doc) {
  tagsName.textContent = displayTitle(doc.title);
  tagsInput.value = (doc.tags || []).join(", ");
  tagsError.hidden = true;
  tagsDialog.returnValue = "";
  tagsDialog.showModal();
  tagsInput.focus();
  tagsDialog.dataset.id = doc.id;
}

tagsDialog.querySelector("form")?.addEventListener("submit", async (event) => {
  const submitter = /** @type {SubmitEvent} */ (event).submitter;
  if (!submitter || /** @type {HTMLButtonElement} */ (submitter).value !== "save") return;
  event.preventDefault(); // the dialog stays open until the server has taken the tags
  const tags = tagsInput.value.split(",").map((t) => t.trim()).filter(Boolean);
  try {
    await callApi("PUT", `${documentPath(tagsDialog.dataset.id || "")}/tags`, { tags });
  } catch (exc) {
    tagsError.textContent = exc instanceof ApiError ? exc.message.replace(/^tags: /, "") : String(exc);
    tagsError.hidden = false;
    return;
  }
  tagsDialog.close("saved");
  await Promise.all([reloadList(), loadTags()]);
});
tagsInput.addEventListener("input", () => {
  tagsError.hidden = true;
});
// Enter in the field saves (the form's first button, which Enter would press, is Cancel)
tagsInput.addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();
  /** @type {HTMLButtonElement} */ (tagsDialog.querySelector("[value=save]")).click();
});

/**
 * Move a document to the trash, with Undo for a while.
 * @param {LibraryDocument} doc
 * @param {() => void} removed called once the server has taken it (the row goes)
 */
export async function trashDocument(doc, removed) {
  try {
    await callApi("DELETE", documentPath(doc.id));
  } catch (exc) {
    showError(exc);
    return;
  }
  removed();
  loadTags();
  undoMessage.textContent = `Moved “${displayTitle(doc.title)}” to the trash. It is kept for 30 days.`;
  undoToast.hidden = false;
  undoButton.disabled = false;
  undoButton.onclick = async () => {
    undoButton.disabled = true;
    hideUndo();
    await restore(doc.id);
    await Promise.all([reloadList(), loadTags()]);
  };
  clearTimeout(undoTimer);
  undoTimer = window.setTimeout(hideUndo, UNDO_MS);
}

function hideUndo() {
  clearTimeout(undoTimer);
  undoToast.hidden = true;
}

/** @param {string} id */
async function restore(id) {
  try {
    await callApi("POST", `/api/trash/${encodeURIComponent(id)}/restore`);
    return true;
  } catch (exc) {
    showError(exc);
    return false;
  }
}

/** @param {"list" | "search" | "trash"} view */
function showView(view) {
  main.dataset.view = view;
  trashToggle.setAttribute("aria-pressed", String(view === "trash"));
  trashToggle.textContent = view === "trash" ? "Back to documents" : "Trash";
}

async function openTrash() {
  searchInput.value = "";
  closeSearch();
  showView("trash");
  /** @type {{documents: LibraryDocument[], keep_days: number}} */
  let answer;
  try {
    answer = await callApi("GET", "/api/trash");
  } catch (exc) {
    showError(exc);
    return;
  }
  trashList.replaceChildren(...answer.documents.map((doc) => trashRow(doc, answer.keep_days)));
  trashEmpty.hidden = answer.documents.length > 0;
}

/**
 * @param {LibraryDocument} doc
 * @param {number} keepDays
 */
function trashRow(doc, keepDays) {
  const deleted = Date.parse(doc.deleted_at || "");
  const left = Math.ceil((deleted + keepDays * DAY_MS - Date.now()) / DAY_MS);
  const remaining = element("span", undefined, left > 1 ? `${left} days left` : "deleted for ever within a day");
  remaining.dataset.testid = "days-left";
  return documentRow({
    testid: "trash-row",
    id: doc.id,
    title: doc.title,
    facts: [`deleted ${timeAgo(doc.deleted_at || "")} · `, remaining],
    actions: (row) => {
      const restoreButton = button("Restore", "restore", async () => {
        restoreButton.disabled = true;
        if (await restore(doc.id)) {
          row.remove();
          trashEmpty.hidden = trashList.children.length > 0;
          await Promise.all([reloadList(), loadTags()]);
        } else {
          restoreButton.disabled = false;
        }
      });
      const forever = () => confirmForever(doc, row);
      return [restoreButton, button("Delete for ever", "delete-forever", forever, "button quiet danger")];
    },
  });
}

/**
 * @param {LibraryDocument} doc
 * @param {HTMLElement} row
 */
function confirmForever(doc, row) {
  foreverName.textContent = displayTitle(doc.title);
  foreverDialog.returnValue = "";
  foreverDialog.showModal();
  foreverDialog.addEventListener(
    "close",
    async () => {
      if (foreverDialog.returnValue !== "forever") return;
      try {
        await callApi("DELETE", `/api/trash/${encodeURIComponent(doc.id)}`);
      } catch (exc) {
        showError(exc);
        return;
      }
      row.remove();
      trashEmpty.hidden = trashList.children.length > 0;
    },
    { once: true },
  );
}

/**
 * A snippet as text nodes, with <mark> around the server's highlights (no HTML is ever parsed).
 * @param {string} snippet
 */
export function snippetNodes(snippet) {
  /** @type {(Node)[]} */
  const nodes = [];
  let marked = false;
  let text = "";
  const flush = () => {
    if (!text) return;
    if (marked) {
      nodes.push(element("mark", undefined, text));
    } else {
      nodes.push(document.createTextNode(text));
    }
    text = "";
  };
  for (const char of snippet) {
    if (char === MARK_START || char === MARK_END) {
      flush();
      marked = char === MARK_START;
    } else {
      text += char;
    }
  }
  flush();
  return nodes;
}

/** @param {SearchHit} hit */
function hitRow(hit) {
  const snippet = element("p", "search-snippet");
  snippet.dataset.testid = "search-snippet";
  snippet.append(...snippetNodes(hit.snippet));
  return documentRow({
    testid: "search-hit",
    id: hit.id,
    title: hit.title,
    href: documentHref(hit.id),
    className: "search-hit",
    facts: [`edited ${timeAgo(hit.updated_at)}${hit.role === "owner" ? "" : ` · shared by ${hit.owner}`}`],
    excerpt: snippet,
  });
}

async function runSearch() {
  clearTimeout(searchTimer);
  const query = searchInput.value.trim();
  if (!query) {
    closeSearch();
    if (main.dataset.view === "search") showView("list");
    return;
  }
  showView("search");
  const seq = ++searchSeq;
  searchStatus.textContent = "Searching…";
  /** @type {SearchHit[]} */
  let results;
  try {
    results = (await callApi("GET", `/api/search?${new URLSearchParams({ q: query })}`)).results;
  } catch (exc) {
    if (seq !== searchSeq) return;
    searchStatus.textContent = exc instanceof ApiError ? exc.message.replace(/^q: /, "") : String(exc);
    searchResults.replaceChildren();
    return;
  }
  if (seq !== searchSeq) return; // a later search has been asked for; this answer is stale
  searchResults.replaceChildren(...results.map(hitRow));
  searchStatus.dataset.state = results.length ? "found" : "none";
  searchStatus.textContent = results.length
    ? `${results.length} ${results.length === 1 ? "document matches" : "documents match"}`
    : `No documents match “${query}”.`;
}

function closeSearch() {
  clearTimeout(searchTimer);
  searchSeq += 1;
  searchResults.replaceChildren();
  searchStatus.textContent = "";
  delete searchStatus.dataset.state;
}

/**
 * Wire the search box, sort, tag filter and trash to the list page.
 * @param {{reload: () => Promise<void>}} list
 */
export function initLibrary(list) {
  reloadList = list.reload;
  sortSelect.value = state.sort;
  showView("list");
  sortSelect.addEventListener("change", () => {
    state.sort = sortSelect.value === "title" ? "title" : "updated";
    localStorage.setItem(SORT_KEY, state.sort);
    reloadList();
  });
  searchInput.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = window.setTimeout(runSearch, SEARCH_DEBOUNCE_MS);
  });
  searchInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      searchInput.value = "";
      runSearch();
    }
  });
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch();
  });
  trashToggle.addEventListener("click", () => {
    if (main.dataset.view === "trash") {
      showView("list");
      reloadList();
    } else {
      openTrash();
    }
  });
  loadTags();
}
