// The document list page: this account's documents and those shared with it; create, rename,
// delete, and leave a shared one.

import { ApiError, callApi, documentPath } from "./api.js";
import { Panels } from "./panels.js";
import { bindAccount, signedInAccount } from "./session.js";
import { bindThemeToggle } from "./theme.js";
import { timeAgo } from "./time.js";
// finding and organising: search, sort, tags, trash
import { decorateRow, initLibrary, listPath, sortRows, trashDocument } from "./library.js";
import { rowExportMenu } from "./exporting.js"; // export and import (issue 12, item 1)
import { bindImport } from "./importing.js";

/**
 * @typedef {{id: string, title: string, owner: string, role?: import("./share.js").Role,
 *            created_at: string, updated_at: string, chars: number, preview: string,
 *            tags?: string[]}} DocumentSummary
 */

const rows = /** @type {HTMLUListElement} */ (document.getElementById("documents"));
const emptyState = /** @type {HTMLElement} */ (document.getElementById("empty"));
const loading = /** @type {HTMLElement} */ (document.getElementById("loading"));
const errorBox = /** @type {HTMLElement} */ (document.getElementById("list-error"));
const createForm = /** @type {HTMLFormElement} */ (document.getElementById("create-form"));
const newTitle = /** @type {HTMLInputElement} */ (document.getElementById("new-title"));
const leaveDialog = /** @type {HTMLDialogElement} */ (document.getElementById("leave-dialog"));
const leaveName = /** @type {HTMLElement} */ (document.getElementById("leave-name"));

/** @type {DocumentSummary[]} */
let documents = [];
/** The signed-in account's username; leaving a document removes this member. */
let me = "";

/** A server from before accounts sends no role: every document there is the writer's own. */
/** @param {DocumentSummary} doc */
function roleOf(doc) {
  return doc.role || "owner";
}

/** @param {unknown} exc */
function showError(exc) {
  errorBox.textContent = exc instanceof ApiError ? exc.message : String(exc);
  errorBox.hidden = false;
}

function clearError() {
  errorBox.hidden = true;
  errorBox.textContent = "";
}

/** @param {string} title */
function displayTitle(title) {
  return title.trim() || "Untitled";
}

function render() {
  sortRows(documents); // library.js: by last change or by title
  rows.replaceChildren(...documents.map(renderRow));
  emptyState.hidden = documents.length > 0;
}

/** @param {DocumentSummary} doc */
function renderRow(doc) {
  const row = document.createElement("li");
  const role = roleOf(doc);
  row.className = "doc-row";
  row.dataset.testid = "doc-row";
  row.dataset.id = doc.id;
  row.dataset.role = role;

  const body = document.createElement("div");
  body.className = "doc-body";
  const link = document.createElement("a");
  link.className = "doc-title";
  link.href = `/d/${encodeURIComponent(doc.id)}`;
  link.textContent = displayTitle(doc.title);
  const meta = document.createElement("div");
  meta.className = "doc-meta";
  const edited = document.createElement("time");
  edited.dateTime = doc.updated_at;
  edited.title = new Date(doc.updated_at).toLocaleString();
  edited.textContent = `edited ${timeAgo(doc.updated_at)}`;
  meta.append(edited, ` · ${doc.chars.toLocaleString()} ${doc.chars === 1 ? "character" : "characters"}`);
  if (role !== "owner") {
    const shared = document.createElement("span");
    shared.className = `badge badge-role badge-${role}`;
    shared.dataset.testid = "role";
    // comments: commenters read and comment
    const [label, verb] = { viewer: ["view only", "read"], commenter: ["can comment", "comment on"] }[role] || [
      "can edit",
      "edit",
    ];
    shared.textContent = `Shared by ${doc.owner} · ${label}`;
    shared.title = `${doc.owner} shared this document with you to ${verb}`;
    meta.prepend(shared, " ");
  }
  const preview = document.createElement("p");
  preview.className = "doc-preview";
  preview.textContent = doc.preview.replace(/\s+/g, " ").trim() || "Empty document";
  body.append(link, meta, preview);

  const actions = document.createElement("div");
  actions.className = "doc-actions";
  const open = document.createElement("a");
  open.className = "button quiet";
  open.href = link.href;
  open.textContent = "Open";
  open.dataset.testid = "open";
  actions.append(open);
  if (role !== "viewer") actions.append(actionButton("Rename", "rename", () => startRename(row, doc)));
  if (role === "owner") {
    const remove = actionButton("Delete", "delete", () => confirmDelete(doc));
    remove.classList.add("danger");
    remove.title = "Move to the trash; it is kept there for 30 days";
    actions.append(remove);
  } else {
    const leave = actionButton("Leave", "leave", () => confirmLeave(doc));
    leave.title = "Remove this shared document from your list; its owner can share it again";
    actions.append(leave);
  }

  row.append(body, actions);
  decorateRow(row, doc, role); // library.js: tag chips and the Tags action
  actions.insertBefore(rowExportMenu(doc), open.nextSibling); // exporting.js: Export per row
  return row;
}

/**
 * @param {string} label
 * @param {string} testid
 * @param {() => void} onClick
 */
function actionButton(label, testid, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button quiet";
  button.textContent = label;
  button.dataset.testid = testid;
  button.addEventListener("click", onClick);
  return button;
}

/**
 * Swap the row's title for an input; Enter or blur saves, Escape gives up.
 * @param {HTMLLIElement} row
 * @param {DocumentSummary} doc
 */
function startRename(row, doc) {
  const link = /** @type {HTMLAnchorElement} */ (row.querySelector(".doc-title"));
  const input = document.createElement("input");
  input.className = "doc-title-input";
  input.value = doc.title;
  input.maxLength = 200;
  input.setAttribute("aria-label", "New title");
  input.dataset.testid = "rename-input";
  link.replaceWith(input);
  input.focus();
  input.select();

  let settled = false;
  /** @param {boolean} save */
  const finish = async (save) => {
    if (settled) return;
    settled = true;
    const title = input.value.trim();
    if (!save || title === doc.title) {
      input.replaceWith(link);
      return;
    }
    input.disabled = true;
    try {
      const updated = await callApi("PATCH", documentPath(doc.id), { title });
      clearError();
      Object.assign(doc, updated && typeof updated === "object" ? pickSummary(updated) : { title });
      render();
    } catch (exc) {
      showError(exc);
      input.replaceWith(link);
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") finish(true);
    if (event.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
}

/**
 * Keep only the summary fields a PATCH answer shares with the list (it may also carry the text).
 * @param {Record<string, unknown>} answer
 */
function pickSummary(answer) {
  /** @type {Partial<DocumentSummary>} */
  const summary = {};
  for (const key of ["title", "updated_at", "chars", "preview"]) {
    if (key in answer) Object.assign(summary, { [key]: answer[key] });
  }
  return summary;
}

/**
 * Delete moves the document to the trash at once, with Undo (library.js); nothing to confirm.
 * @param {DocumentSummary} doc
 */
function confirmDelete(doc) {
  trashDocument(doc, () => {
    documents = documents.filter((other) => other.id !== doc.id);
    render();
  });
}

/** @param {DocumentSummary} doc */
function confirmLeave(doc) {
  confirmRemoval(doc, leaveDialog, leaveName, "leave", `${documentPath(doc.id)}/members/${encodeURIComponent(me)}`);
}

/**
 * Ask in `dialog`; when its answer is `answer`, DELETE `path` and drop the document from the list.
 * @param {DocumentSummary} doc
 * @param {HTMLDialogElement} dialog
 * @param {HTMLElement} nameSlot where the dialog names the document
 * @param {string} answer the dialog's returnValue that confirms
 * @param {string} path
 */
function confirmRemoval(doc, dialog, nameSlot, answer, path) {
  nameSlot.textContent = displayTitle(doc.title);
  dialog.returnValue = "";
  dialog.showModal();
  dialog.addEventListener(
    "close",
    async () => {
      if (dialog.returnValue !== answer) return;
      try {
        await callApi("DELETE", path);
        clearError();
        documents = documents.filter((other) => other.id !== doc.id);
        render();
      } catch (exc) {
        showError(exc);
      }
    },
    { once: true },
  );
}

createForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = /** @type {HTMLButtonElement} */ (createForm.querySelector("button"));
  button.disabled = true;
  try {
    const created = await callApi("POST", "/api/documents", { title: newTitle.value.trim() || "Untitled" });
    location.assign(`/d/${encodeURIComponent(created.id)}`);
  } catch (exc) {
    showError(exc);
    button.disabled = false;
  }
});

async function load() {
  try {
    const [account, answer] = await Promise.all([signedInAccount(), callApi("GET", listPath())]);
    me = account.username;
    bindAccount(/** @type {HTMLElement} */ (document.getElementById("account")), account, new Panels());
    documents = answer.documents;
    clearError();
    render();
  } catch (exc) {
    showError(exc);
  } finally {
    loading.hidden = true;
  }
}

/** Fetch the documents again, as library.js's sort, tag filter, restore or Undo want them. */
async function reload() {
  try {
    documents = (await callApi("GET", listPath())).documents;
    clearError();
    render();
  } catch (exc) {
    showError(exc);
  }
}

bindThemeToggle(/** @type {HTMLButtonElement} */ (document.getElementById("theme-toggle")));
load();
initLibrary({ reload });
// Export and import (issue 12, item 1): a file dropped on the list, or chosen, becomes a document.
bindImport({
  zone: /** @type {HTMLElement} */ (document.getElementById("import-zone")),
  area: /** @type {HTMLElement} */ (document.getElementById("library-main")),
  input: /** @type {HTMLInputElement} */ (document.getElementById("import-input")),
  progress: /** @type {HTMLProgressElement} */ (document.getElementById("import-progress")),
  status: /** @type {HTMLElement} */ (document.getElementById("import-status")),
  error: /** @type {HTMLElement} */ (document.getElementById("import-error")),
  onImported: (doc) => location.assign(`/d/${encodeURIComponent(doc.id)}`),
});
// "edited 5 min ago" goes stale while the page stays open; skip while a rename is being typed.
setInterval(() => {
  if (!rows.querySelector(".doc-title-input")) render();
}, 60_000);
