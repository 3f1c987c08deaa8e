// Who this writer is to the others in a document: the account's username, and a colour derived
// from it, so the same writer always wears the same colour on every screen.

// Dark enough to carry white text (the cursor labels), light enough to read on the dark theme.
const PALETTE = [
  "#d9480f", "#c2255c", "#7048e8", "#1c7ed6", "#0c8599", "#2b8a3e",
  "#b35c00", "#9c36b5", "#087f5b", "#364fc7", "#a61e4d", "#5c940d",
];
// Selections of others are drawn in their colour at this opacity (a two-digit hex alpha).
const LIGHT_ALPHA = "33";

/** @typedef {{name: string, color: string, colorLight: string}} User */

/** @param {string} name */
export function colorOf(name) {
  // FNV-1a: tiny, and spreads similar names ("ann", "anna") over the palette.
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return PALETTE[(hash >>> 0) % PALETTE.length];
}

export class Identity {
  /** @param {string} username the signed-in account, which the server vouches for */
  constructor(username) {
    this.name = username;
  }

  /** @returns {User} */
  get user() {
    const color = colorOf(this.name);
    return { name: this.name, color, colorLight: color + LIGHT_ALPHA };
  }
}
