// Export: the editor's Export menu and the list's per-row one.
// Downloads are plain links to the export API, whose Content-Disposition names the file. Printing
// fills a print-only copy of the document rendered by the server (the HTML export: raw HTML off,
// safe links only), because CodeMirror draws only the lines in view; app.css's print section then
// shows that copy alone.

import { ApiError, documentPath } from "./api.js";

/** The download formats, in menu order. */
export const EXPORT_FORMATS = [
  { ext: "md", label: "Markdown (.md)" },
  { ext: "txt", label: "Plain text (.txt)" },
  { ext: "html", label: "Web page (.html)" },
  { ext: "docx", label: "Word (.docx)" },
];

/**
 * @param {string} id
 * @param {string} ext
 */
export function exportUrl(id, ext) {
  return `${documentPath(id)}/export.${ext}`;
}

/**
 * One download link per format.
 * @param {string} id
 * @returns {HTMLAnchorElement[]}
 */
export function exportLinks(id) {
  return EXPORT_FORMATS.map(({ ext, label }) => {
    const link = document.createElement("a");
    link.className = "export-item";
    link.href = exportUrl(id, ext);
    link.download = ""; // the server's file name
    link.textContent = label;
    link.dataset.testid = `export-${ext}`;
    link.dataset.format = ext;
    return link;
  });
}

/**
 * Fill `view` with the document as the server renders it for export.
 * @param {HTMLElement} view
 * @param {string} id
 */
export async function fillPrintView(view, id) {
  let response;
  try {
    response = await fetch(exportUrl(id, "html"), { headers: { Accept: "text/html" } });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  if (!response.ok) {
    throw new ApiError(response.status, `http_${response.status}`, "The document could not be prepared for printing.");
  }
  // DOMParser runs no scripts and loads nothing; the server's HTML has no raw HTML to begin with.
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const article = page.querySelector("article");
  if (!article) throw new ApiError(500, "bad_export", "The document could not be prepared for printing.");
  view.replaceChildren(...Array.from(article.childNodes, (node) => document.importNode(node, true)));
  document.body.classList.add("print-ready");
  // A later Ctrl+P prints the page as it is then, not this copy.
  window.addEventListener("afterprint", () => document.body.classList.remove("print-ready"), { once: true });
}

/** The editor's Export menu: a download link per format, and "Print or save as PDF". */
export class ExportMenu {
  /**
   * @param {HTMLElement} panel the menu's popover
   * @param {HTMLElement} printView the print-only copy of the document
   * @param {string} id
   * @param {() => void} close closes the menu (the panels' own close)
   */
  constructor(panel, printView, id, close) {
    this.printView = printView;
    this.id = id;
    this.error = /** @type {HTMLElement} */ (panel.querySelector("[data-testid=export-error]"));
    const list = /** @type {HTMLElement} */ (panel.querySelector(".export-list"));
    const printButton = /** @type {HTMLButtonElement} */ (panel.querySelector("[data-testid=export-print]"));
    for (const link of exportLinks(id)) {
      const item = document.createElement("li");
      item.append(link);
      link.addEventListener("click", () => setTimeout(close, 0));
      list.insertBefore(item, printButton.closest("li"));
    }
    printButton.addEventListener("click", async () => {
      printButton.disabled = true;
      this.error.hidden = true;
      try {
        await fillPrintView(printView, id);
        close();
        window.print();
      } catch (exc) {
        this.error.textContent = exc instanceof Error ? exc.message : String(exc);
        this.error.hidden = false;
      } finally {
        printButton.disabled = false;
      }
    });
  }

  /** Clear a message from an earlier attempt when the menu opens again. */
  reset() {
    this.error.hidden = true;
  }
}

/**
 * The list's per-row Export menu: a disclosure with the four download links.
 * @param {{id: string, title: string}} doc
 */
export function rowExportMenu(doc) {
  const menu = document.createElement("details");
  menu.className = "row-export";
  menu.dataset.testid = "row-export";
  const summary = document.createElement("summary");
  summary.className = "button quiet";
  summary.textContent = "Export";
  summary.title = `Download “${doc.title}” as Markdown, plain text, HTML or Word`;
  const list = document.createElement("div");
  list.className = "row-export-list";
  list.append(...exportLinks(doc.id));
  list.addEventListener("click", () => menu.removeAttribute("open"));
  menu.append(summary, list);
  return menu;
}

// One row's menu open at a time; a click elsewhere or Escape closes it.
if (typeof document !== "undefined") {
  document.addEventListener("pointerdown", (event) => {
    for (const open of document.querySelectorAll("details.row-export[open]")) {
      if (!open.contains(/** @type {Node} */ (event.target))) open.removeAttribute("open");
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    for (const open of document.querySelectorAll("details.row-export[open]")) open.removeAttribute("open");
  });
}
