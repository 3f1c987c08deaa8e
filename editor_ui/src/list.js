// The document list page: this account's documents and those shared with it; create, rename,
// delete, and leave a shared one.

import { ApiError, callApi, documentPath } from "./api.js";
import { button, byId, element } from "./dom.js";
import { displayTitle, documentHref, documentRow } from "./documentrow.js";
import { rowExportMenu } from "./exporting.js";
import { bindImport } from "./importing.js";
// finding and organising: search, sort, tags, trash
import { decorateRow, initLibrary, listPath, sortRows, trashDocument } from "./library.js";
import { Panels } from "./panels.js";
import { bindAccount, signedInAccount } from "./session.js";
import { bindThemeToggle } from "./theme.js";
import { timeAgo } from "./time.js";

/**
 * @typedef {{id: string, title: string, owner: string, role?: import("./share.js").Role,
 *            created_at: string, updated_at: string, chars: number, preview: string,
 *            tags?: string[]}} DocumentSummary
 */

const rows = /** @type {HTMLUListElement} */ (byId("documents"));
const emptyState = byId("empty");
const loading = byId("loading");
const errorBox = byId("list-error");
const createForm = /** @type {HTMLFormElement} */ (byId("create-form"));
const newTitle = /** @type {HTMLInputElement} */ (byId("new-title"));
const leaveDialog = /** @type {HTMLDialogElement} */ (byId("leave-dialog"));
const leaveName = byId("leave-name");

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

function render() {
  sortRows(documents); // library.js: by last change or by title
  rows.replaceChildren(...documents.map(renderRow));
  emptyState.hidden = documents.length > 0;
}

/**
 * "Shared by ann · view only": who shared a document that is not the writer's own, and for what.
 * @param {DocumentSummary} doc
 * @param {string} role
 */
function sharedBadge(doc, role) {
  const badge = element("span", `badge badge-role badge-${role}`);
  badge.dataset.testid = "role";
  const [label, verb] = { viewer: ["view only", "read"], commenter: ["can comment", "comment on"] }[role] || [
    "can edit",
    "edit",
  ];
  badge.textContent = `Shared by ${doc.owner} · ${label}`;
  badge.title = `${doc.owner} shared this document with you to ${verb}`;
  return badge;
}

/** @param {DocumentSummary} doc */
function renderRow(doc) {
  const role = roleOf(doc);
  const href = documentHref(doc.id);
  const edited = /** @type {HTMLTimeElement} */ (element("time"));
  edited.dateTime = doc.updated_at;
  edited.title = new Date(doc.updated_at).toLocaleString();
  edited.textContent = `edited ${timeAgo(doc.updated_at)}`;
  const size = ` · ${doc.chars.toLocaleString()} ${doc.chars === 1 ? "character" : "characters"}`;
  const preview = element("p", "doc-preview", doc.preview.replace(/\s+/g, " ").trim() || "Empty document");
  const row = documentRow({
    testid: "doc-row",
    id: doc.id,
    title: doc.title,
    href,
    facts: role === "owner" ? [edited, size] : [sharedBadge(doc, role), " ", edited, size],
    excerpt: preview,
    actions: (row) => rowActions(row, doc, role, href),
  });
  row.dataset.role = role;
  decorateRow(row, doc, role); // library.js: tag chips and the Tags action
  return row;
}

/**
 * Open, Export, and what this writer's role allows: Rename for all but viewers, then Delete for
 * the owner or Leave for the others.
 * @param {HTMLLIElement} row
 * @param {DocumentSummary} doc
 * @param {string} role
 * @param {string} href
 */
function rowActions(row, doc, role, href) {
  const open = /** @type {HTMLAnchorElement} */ (element("a", "button quiet", "Open"));
  open.href = href;
  open.dataset.testid = "open";
  /** @type {HTMLElement[]} */
  const actions = [open, rowExportMenu(doc)];
  if (role !== "viewer") actions.push(button("Rename", "rename", () => startRename(row, doc)));
  if (role === "owner") {
    const remove = button("Delete", "delete", () => confirmDelete(doc), "button quiet danger");
    remove.title = "Move to the trash; it is kept there for 30 days";
    actions.push(remove);
  } else {
    const leave = button("Leave", "leave", () => confirmLeave(doc));
    leave.title = "Remove this shared document from your list; its owner can share it again";
    actions.push(leave);
  }
  return actions;
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
  const submit = /** @type {HTMLButtonElement} */ (createForm.querySelector("button"));
  submit.disabled = true;
  try {
    const created = await callApi("POST", "/api/documents", { title: newTitle.value.trim() || "Untitled" });
    location.assign(documentHref(created.id));
  } catch (exc) {
    showError(exc);
    submit.disabled = false;
  }
});

async function load() {
  try {
    const [account, answer] = await Promise.all([signedInAccount(), callApi("GET", listPath())]);
    me = account.username;
    bindAccount(byId("account"), account, new Panels());
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

bindThemeToggle(byId("theme-toggle"));
load();
initLibrary({ reload });
// A file dropped on the list, or chosen, becomes a document.
bindImport({
  zone: byId("import-zone"),
  area: byId("library-main"),
  input: /** @type {HTMLInputElement} */ (byId("import-input")),
  progress: /** @type {HTMLProgressElement} */ (byId("import-progress")),
  status: byId("import-status"),
  error: byId("import-error"),
  onImported: (doc) => location.assign(documentHref(doc.id)),
});
// "edited 5 min ago" goes stale while the page stays open; skip while a rename is being typed.
setInterval(() => {
  if (!rows.querySelector(".doc-title-input")) render();
}, 60_000);
