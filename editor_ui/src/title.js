// The editable document title in the editor's header.

import { callApi, documentPath } from "./api.js";

/**
 * @param {HTMLInputElement} input
 * @param {string} docId
 * @param {string} initial
 * @param {(message: string) => void} notify
 * @param {boolean} editable false for a writer who may only view the document
 */
export function bindTitle(input, docId, initial, notify, editable) {
  let saved = initial;
  input.value = initial;
  document.title = `${initial || "Untitled"} — Cowrite`;
  setTitleEditable(input, editable);

  const commit = async () => {
    if (input.readOnly) return;
    const title = input.value.trim();
    if (!title) {
      input.value = saved; // a document keeps some title; an emptied field means "never mind"
      return;
    }
    if (title === saved) return;
    try {
      await callApi("PATCH", documentPath(docId), { title });
      saved = title;
      document.title = `${title} — Cowrite`;
    } catch (exc) {
      notify(`Renaming failed: ${exc instanceof Error ? exc.message : exc}`);
    }
  };

  input.addEventListener("change", commit);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      input.blur();
    } else if (event.key === "Escape") {
      event.preventDefault();
      input.value = saved;
      input.blur();
    }
  });
}

/**
 * @param {HTMLInputElement} input
 * @param {boolean} editable
 */
export function setTitleEditable(input, editable) {
  input.readOnly = !editable;
  input.title = editable ? "" : "Only writers who may edit can rename this document";
}
