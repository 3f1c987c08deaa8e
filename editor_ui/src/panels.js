// The header's popovers (settings, history, share, help, the account panel): one open at a time,
// closed by Escape or a click elsewhere, and announced to assistive technology through aria-expanded.

export class Panels {
  constructor() {
    /** @type {Map<HTMLElement, {button: HTMLElement, onOpen?: () => void, onClose?: () => void}>} */
    this.panels = new Map();
    /** @type {HTMLElement | null} */
    this.openPanel = null;

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
      const returnFocus = this.openPanel.contains(document.activeElement);
      const entry = this.panels.get(this.openPanel);
      this.close();
      if (returnFocus && entry) entry.button.focus();
    });
  }

  /**
   * @param {HTMLElement} button
   * @param {HTMLElement} panel
   * @param {() => void} [onOpen]
   * @param {() => void} [onClose]
   */
  register(button, panel, onOpen, onClose) {
    this.panels.set(panel, { button, onOpen, onClose });
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", panel.id);
    panel.hidden = true;
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
    panel.hidden = false;
    entry.button.setAttribute("aria-expanded", "true");
    this.openPanel = panel;
    if (entry.onOpen) entry.onOpen();
  }

  close() {
    const panel = this.openPanel;
    if (!panel) return;
    panel.hidden = true;
    const entry = this.panels.get(panel);
    this.openPanel = null;
    if (entry) {
      entry.button.setAttribute("aria-expanded", "false");
      if (entry.onClose) entry.onClose();
    }
  }

  /** @param {HTMLElement} panel */
  isOpen(panel) {
    return this.openPanel === panel;
  }
}
