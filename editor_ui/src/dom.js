// The DOM helpers every page uses: find an element the page's HTML must hold, make an element,
// make a button, each in one line.

/**
 * The element with this id. The page's own HTML holds it, so a missing one is a mistake in the
 * page: said at once, by name, rather than as a null read somewhere later.
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
export function byId(id) {
  const found = document.getElementById(id);
  if (!found) throw new Error(`${location.pathname} lacks #${id}`);
  return /** @type {T} */ (found);
}

/**
 * A new element with an optional class list and text.
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElement}
 */
export function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

/**
 * A button that acts on the page (`type="button"`, so inside a form it never submits it), with
 * the `data-testid` the browser tests find it by.
 * @param {string} label
 * @param {string} testid
 * @param {(event: MouseEvent) => void} onClick
 * @param {string} [className] the page's quiet button unless said otherwise
 * @returns {HTMLButtonElement}
 */
export function button(label, testid, onClick, className = "button quiet") {
  const made = /** @type {HTMLButtonElement} */ (element("button", className, label));
  made.type = "button";
  made.dataset.testid = testid;
  made.addEventListener("click", onClick);
  return made;
}
