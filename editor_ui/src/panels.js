// The header's popovers (settings, history, share, help, the account panel, and on narrower screens
// the "More" menu): one open at a time, closed by Escape or a click elsewhere, and announced to
// assistive technology through aria-expanded.

export class Panels {
  constructor() {
    /**
     * @type {Map<HTMLElement, {button: HTMLElement, onOpen?: () => void, onClose?: () => void,
     *   show: (shown: boolean) => void}>}
     */
    this.panels = new Map();
    /** @type {HTMLElement | null} */
    this.openPanel = null;
    /**
     * Where focus goes back to when a panel's own button is out of sight (folded into the closed
     * "More" menu on a narrow screen).
     * @type {HTMLElement | null}
     */
    this.fallbackFocus = null;

    document.addEventListener("pointerdown", (event) => {
      const panel = this.openPanel;
      if (!panel) return;
      const target = /** @type {Node} */ (event.target);
      const entry = this.panels.get(panel);
      if (panel.contains(target) || (entry && entry.button.contains(target))) return;
      this.close();
    });
    document.addEventListener("keydown", (event) => {
      // The editor claims Escape first when it has ghost text to dismiss.
      if (event.key !== "Escape" || event.defaultPrevented || !this.openPanel) return;
      // Focus goes back to the panel's button from inside the panel, and from nowhere: a button in
      // the "More" menu loses focus when the menu folds away as its panel opens.
      const active = document.activeElement;
      const returnFocus = this.openPanel.contains(active) || !active || active === document.body;
      const entry = this.panels.get(this.openPanel);
      this.close();
      if (returnFocus && entry) this.focusButton(entry.button);
    });
  }

  /**
   * Focus a panel's button, or the fallback when that button is not shown.
   * @param {HTMLElement} button
   */
  focusButton(button) {
    if (button.getClientRects().length > 0 || !this.fallbackFocus) button.focus();
    else this.fallbackFocus.focus();
  }

  /**
   * @param {HTMLElement} button
   * @param {HTMLElement} panel
   * @param {() => void} [onOpen]
   * @param {() => void} [onClose]
   * @param {{menu?: boolean}} [options] `menu`: the panel is shown by its `data-open` attribute
   *   rather than hidden, so CSS may lay it out in line where there is room (the "More" menu)
   */
  register(button, panel, onOpen, onClose, options = {}) {
    const show = options.menu
      ? (/** @type {boolean} */ shown) => panel.toggleAttribute("data-open", shown)
      : (/** @type {boolean} */ shown) => {
          panel.hidden = !shown;
        };
    this.panels.set(panel, { button, onOpen, onClose, show });
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", panel.id);
    show(false);
    button.addEventListener("click", () => this.toggle(panel));
  }

  /** @param {HTMLElement} panel */
  toggle(panel) {
    if (this.openPanel === panel) this.close();
    else this.open(panel);
  }

  /** @param {HTMLElement} panel */
  open(panel) {
    this.close();
    const entry = this.panels.get(panel);
    if (!entry) throw new Error(`register(${panel.id}) before opening it`);
    entry.show(true);
    entry.button.setAttribute("aria-expanded", "true");
    this.openPanel = panel;
    if (entry.onOpen) entry.onOpen();
  }

  close() {
    const panel = this.openPanel;
    if (!panel) return;
    const entry = this.panels.get(panel);
    this.openPanel = null;
    if (entry) {
      entry.show(false);
      entry.button.setAttribute("aria-expanded", "false");
      if (entry.onClose) entry.onClose();
    }
  }

  /** @param {HTMLElement} panel */
  isOpen(panel) {
    return this.openPanel === panel;
  }
}
