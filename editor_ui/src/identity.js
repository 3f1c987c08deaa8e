// Who this writer is to the others in a document: the account's username, and a colour derived
// from it, so the same writer always wears the same colour on every screen.

// Dark enough to carry white text (the cursor labels), light enough to read on the dark theme.
const PALETTE = [
  "#d9480f", "#c2255c", "#7048e8", "#1c7ed6", "#0c8599", "#2b8a3e",
  "#b35c00", "#9c36b5", "#087f5b", "#364fc7", "#a61e4d", "#5c940d",
];
// Selections of others are drawn in their colour at this opacity (a two-digit hex alpha).
const LIGHT_ALPHA = "33";
/** The colour of someone whose awareness carries none this page accepts. */
export const DEFAULT_COLOR = "#6b6f76";
/** The only colours taken from awareness: others' states reach style attributes (y-codemirror). */
const SAFE_COLOR = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;

/** @typedef {{name: string, color: string, colorLight: string}} User */

/**
 * `value` when it is a `#rgb` or `#rrggbb` colour, as `#rrggbb`; otherwise the default colour.
 * @param {unknown} value
 */
export function safeColor(value) {
  if (typeof value !== "string" || !SAFE_COLOR.test(value)) return DEFAULT_COLOR;
  const hex = value.slice(1).toLowerCase();
  return hex.length === 3 ? `#${hex[0]}${hex[0]}${hex[1]}${hex[1]}${hex[2]}${hex[2]}` : `#${hex}`;
}

/**
 * How this page draws a selection of someone wearing `color` (a `safeColor`): that colour,
 * see-through, so it reads on either theme. Made here, never taken from their awareness.
 * @param {string} color
 */
export function selectionColor(color) {
  return color + LIGHT_ALPHA;
}

/**
 * `color` mixed with white, as `#rrggbb`: the `colorLight` this page announces, for other
 * y-websocket clients (this page ignores the one it receives and uses `selectionColor`).
 * @param {string} color a `#rrggbb` colour
 */
function lighter(color) {
  const channels = [1, 3, 5].map((at) => parseInt(color.slice(at, at + 2), 16));
  return `#${channels.map((c) => Math.round(c + (255 - c) * 0.8).toString(16).padStart(2, "0")).join("")}`;
}

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
    return { name: this.name, color, colorLight: lighter(color) };
  }
}
