// One document as a row of the list page, as the document list, the search results and the trash
// all show it: a title, a line of facts, perhaps an excerpt, and the actions on it.

import { element } from "./dom.js";

/**
 * A title as the page shows it: a blank one reads "Untitled".
 * @param {string} title
 */
export function displayTitle(title) {
  return title.trim() || "Untitled";
}

/**
 * Where a document opens: its editor page.
 * @param {string} id
 */
export function documentHref(id) {
  return `/d/${encodeURIComponent(id)}`;
}

/**
 * A document's row. The parts the list page reaches into later keep their classes: `.doc-title`
 * (renamed in place), `.doc-body` (tag chips) and `.doc-actions` (the Tags and Export actions).
 * @param {{
 *   testid: string,
 *   id: string,
 *   title: string,
 *   href?: string,
 *   className?: string,
 *   facts: Array<Node | string>,
 *   excerpt?: HTMLElement,
 *   actions?: (row: HTMLLIElement) => HTMLElement[],
 * }} parts `href` makes the title a link (a trashed document has none); `className` is added
 *   to `doc-row`; `actions` makes the buttons, given the row they act on, and a row without it
 *   has no actions box at all
 * @returns {HTMLLIElement}
 */
export function documentRow({ testid, id, title, href, className, facts, excerpt, actions }) {
  const row = /** @type {HTMLLIElement} */ (element("li", className ? `doc-row ${className}` : "doc-row"));
  row.dataset.testid = testid;
  row.dataset.id = id;
  const heading = element(href ? "a" : "span", "doc-title", displayTitle(title));
  if (href) /** @type {HTMLAnchorElement} */ (heading).href = href;
  const meta = element("div", "doc-meta");
  meta.append(...facts);
  const body = element("div", "doc-body");
  body.append(heading, meta);
  if (excerpt) body.append(excerpt);
  row.append(body);
  if (actions) {
    const box = element("div", "doc-actions");
    box.append(...actions(row));
    row.append(box);
  }
  return row;
}
