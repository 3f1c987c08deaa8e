// Who this writer is to the others in a document: a name kept in localStorage (there are no
// accounts yet) and a colour derived from it, so the same name always wears the same colour.

const NAME_KEY = "cowrite.name";
const MAX_NAME_CHARS = 40;

// Dark enough to carry white text (the cursor labels), light enough to read on the dark theme.
const PALETTE = [
  "#d9480f", "#c2255c", "#7048e8", "#1c7ed6", "#0c8599", "#2b8a3e",
  "#b35c00", "#9c36b5", "#087f5b", "#364fc7", "#a61e4d", "#5c940d",
];
// Selections of others are drawn in their colour at this opacity (a two-digit hex alpha).
const LIGHT_ALPHA = "33";

/** @typedef {{name: string, color: string, colorLight: string}} User */

/** @param {string} name */
function colorOf(name) {
  // FNV-1a: tiny, and spreads similar names ("Writer 1234", "Writer 1235") over the palette.
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return PALETTE[(hash >>> 0) % PALETTE.length];
}

/** @param {unknown} value */
function cleanName(value) {
  return typeof value === "string" ? value.replace(/\s+/g, " ").trim().slice(0, MAX_NAME_CHARS) : "";
}

function generatedName() {
  return `Writer ${String(Math.floor(Math.random() * 10_000)).padStart(4, "0")}`;
}

export class Identity {
  constructor() {
    /** @type {Array<(user: User) => void>} */
    this.listeners = [];
    let stored = "";
    try {
      stored = cleanName(localStorage.getItem(NAME_KEY));
    } catch {
      // Storage refused (private window): a fresh name for this page is fine.
    }
    this.name = stored || generatedName();
    if (!stored) this.store();
  }

  /** @returns {User} */
  get user() {
    const color = colorOf(this.name);
    return { name: this.name, color, colorLight: color + LIGHT_ALPHA };
  }

  /**
   * @param {string} value
   * @returns {boolean} whether the name changed (an empty name is refused)
   */
  rename(value) {
    const name = cleanName(value);
    if (!name || name === this.name) return false;
    this.name = name;
    this.store();
    for (const listener of this.listeners) listener(this.user);
    return true;
  }

  store() {
    try {
      localStorage.setItem(NAME_KEY, this.name);
    } catch {
      // The name still applies to this page.
    }
  }

  /** @param {(user: User) => void} listener */
  subscribe(listener) {
    this.listeners.push(listener);
  }
}

/**
 * The name field in the settings panel: renames live, as the writer types.
 * @param {HTMLInputElement} input
 * @param {Identity} identity
 */
export function bindNameField(input, identity) {
  input.maxLength = MAX_NAME_CHARS;
  input.value = identity.name;
  input.addEventListener("input", () => identity.rename(input.value));
  // Leaving the field empty keeps the last name; show it again.
  input.addEventListener("change", () => {
    input.value = identity.name;
  });
}
