// Import: the list's import drop zone and "Import a file" button.
// The file goes to the server as the raw request body (its name in ?name=), through
// XMLHttpRequest because fetch cannot report upload progress. On success the writer lands in the
// new document; a refused file leaves the list as it was, with the server's reason shown.

import { goToSignIn } from "./api.js";

export const IMPORT_MAX = 5 << 20; // server/api/imports.py's IMPORT_MAX
const EXTENSIONS = ["md", "markdown", "txt", "docx"];

/**
 * Why a file cannot be imported, before uploading it; null when it may be.
 * @param {File} file
 */
export function refusal(file) {
  const ext = file.name.includes(".") ? file.name.split(".").pop()?.toLowerCase() : "";
  if (!ext || !EXTENSIONS.includes(ext)) {
    return "Only Markdown (.md), plain text (.txt) and Word (.docx) files can be imported.";
  }
  if (file.size > IMPORT_MAX) return "The file is over 5 MiB, the most that can be imported.";
  if (file.size === 0) return "The file is empty.";
  return null;
}

/**
 * Upload `file`; resolves to the new document, rejects with the server's message.
 * @param {File} file
 * @param {(fraction: number) => void} onProgress
 * @returns {Promise<{id: string, title: string}>}
 */
export function uploadFile(file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", `/api/documents/import?name=${encodeURIComponent(file.name)}`);
    request.setRequestHeader("Accept", "application/json");
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      const body = request.response;
      if (request.status === 201 && body && body.id) return resolve(body);
      if (request.status === 401) goToSignIn();
      const message = body && body.error && body.error.message;
      reject(new Error(message ? `${capitalise(message)}.` : `The server answered ${request.status}.`));
    });
    request.addEventListener("error", () => reject(new Error("The server could not be reached.")));
    request.send(file);
  });
}

/** @param {string} text */
function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1).replace(/\.$/, "");
}

/**
 * Wire the drop zone (dragging a file anywhere over `area` highlights it) and the file input.
 * @param {{zone: HTMLElement, area: HTMLElement, input: HTMLInputElement, progress: HTMLProgressElement,
 *   status: HTMLElement, error: HTMLElement, onImported: (doc: {id: string, title: string}) => void}} parts
 */
export function bindImport({ zone, area, input, progress, status, error, onImported }) {
  let busy = false;
  let depth = 0; // dragenter/dragleave pairs: children of `area` fire them too

  /** @param {File | undefined} file */
  async function importFile(file) {
    if (!file || busy) return;
    error.hidden = true;
    const why = refusal(file);
    if (why) {
      error.textContent = `“${file.name}” was not imported: ${why}`;
      error.hidden = false;
      return;
    }
    busy = true;
    zone.setAttribute("aria-busy", "true");
    progress.value = 0;
    progress.hidden = false;
    status.textContent = `Importing “${file.name}”…`;
    try {
      const doc = await uploadFile(file, (fraction) => {
        progress.value = Math.round(fraction * 100);
      });
      status.textContent = `Imported “${doc.title}”. Opening it…`;
      onImported(doc);
    } catch (exc) {
      status.textContent = "";
      error.textContent = `“${file.name}” was not imported: ${exc instanceof Error ? exc.message : exc}`;
      error.hidden = false;
    } finally {
      busy = false;
      zone.removeAttribute("aria-busy");
      progress.hidden = true;
      input.value = "";
    }
  }

  /** @param {DragEvent} event */
  const carriesFiles = (event) => Boolean(event.dataTransfer && event.dataTransfer.types.includes("Files"));
  area.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth += 1;
    zone.dataset.dragging = "true";
  });
  area.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // allows the drop
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  area.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) delete zone.dataset.dragging;
  });
  area.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    delete zone.dataset.dragging;
    importFile(event.dataTransfer?.files[0]);
  });
  input.addEventListener("change", () => importFile(input.files?.[0]));
}
