// Presence: what this writer tells the others through awareness (name, colour, whether a
// suggestion is up) and the toolbar chips showing who else is in the document.

import { EditorView } from "@codemirror/view";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { currentGhost } from "./ghost.js";
import { safeColor, selectionColor } from "./identity.js";

/** @typedef {{name: string, color: string, suggesting: boolean}} Peer */

export class Presence {
  /**
   * @param {import("y-protocols/awareness").Awareness} awareness
   * @param {import("./identity.js").Identity} identity
   * @param {HTMLElement} chips the toolbar element the chips go into
   */
  constructor(awareness, identity, chips) {
    this.awareness = awareness;
    this.identity = identity;
    this.chips = chips;
    this.suggesting = false;
    /** What the chips show now, to redraw only when it changes (not on every remote cursor move). */
    this.drawn = "";

    awareness.setLocalState({ user: identity.user, suggesting: false });
    awareness.on("change", () => this.render());
    // Leaving: the others drop this writer at once instead of after the awareness timeout.
    window.addEventListener("pagehide", () => awareness.setLocalState(null));
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) this.announce();
    });
  }

  /**
   * Tell everyone this writer is here again, after a reconnect or a return to the page.
   * Peers, and the server, remember the clock at which they last dropped this client; the
   * provider's goodbye and the server's clean-up may each have used one, so step past both.
   */
  announce() {
    const state = { ...(this.awareness.getLocalState() || {}), user: this.identity.user, suggesting: this.suggesting };
    this.awareness.setLocalState(state);
    this.awareness.setLocalState({ ...state });
  }

  /**
   * @param {string} field
   * @param {unknown} value
   */
  setField(field, value) {
    if (this.awareness.getLocalState() !== null) this.awareness.setLocalStateField(field, value);
  }

  /** Keeps `suggesting` true while this writer has a suggestion generating or on screen. */
  extension() {
    return EditorView.updateListener.of((update) => {
      const suggesting = currentGhost(update.state) !== null;
      if (suggesting === this.suggesting) return;
      this.suggesting = suggesting;
      this.setField("suggesting", suggesting);
    });
  }

  /** @returns {Peer[]} the others in the document, by name */
  peers() {
    /** @type {Peer[]} */
    const peers = [];
    this.awareness.getStates().forEach((state, clientId) => {
      if (clientId === this.awareness.clientID || !state || !state.user) return;
      const { name, color } = state.user;
      if (typeof name !== "string" || !name) return;
      peers.push({
        name,
        color: safeColor(color),
        suggesting: state.suggesting === true,
      });
    });
    return peers.sort((a, b) => a.name.localeCompare(b.name));
  }

  render() {
    const peers = this.peers();
    const drawn = JSON.stringify(peers);
    if (drawn === this.drawn) return;
    this.drawn = drawn;
    this.chips.replaceChildren(...peers.map(chip));
    this.chips.title = peers.length ? `Also here: ${peers.map((peer) => peer.name).join(", ")}` : "";
  }
}

/** @param {Peer} peer */
function chip(peer) {
  const element = document.createElement("span");
  element.className = "peer";
  element.dataset.testid = "peer";
  element.dataset.suggesting = String(peer.suggesting);
  element.style.setProperty("--peer", peer.color);
  // The "✦ suggesting" marker is drawn by CSS, so the chip's text stays the name.
  const name = document.createElement("span");
  name.className = "peer-name";
  name.textContent = peer.name;
  element.append(name);
  element.title = peer.suggesting ? `${peer.name} is looking at a suggestion` : peer.name;
  return element;
}

/**
 * Someone else's awareness state as this page may use it: `user.color` a `#rrggbb` colour (the
 * default colour for anything else) and `user.colorLight` made from it here. y-codemirror writes
 * both into style attributes, so a colour like `red;background:url(…)` must never get that far.
 * @param {any} state
 */
export function safeState(state) {
  if (!state || typeof state !== "object" || !state.user || typeof state.user !== "object") return state;
  const color = safeColor(state.user.color);
  return { ...state, user: { ...state.user, color, colorLight: selectionColor(color) } };
}

/**
 * An encoded awareness update (y-protocols: a count, then client id, clock and JSON state of
 * each) with every state made safe by `safeState`, before it is applied to the page's awareness.
 * An entry whose state is not JSON is left out.
 * @param {Uint8Array} update
 * @returns {Uint8Array}
 */
export function safeAwarenessUpdate(update) {
  const decoder = decoding.createDecoder(update);
  /** @type {Array<[number, number, string]>} */
  const entries = [];
  const count = decoding.readVarUint(decoder);
  for (let i = 0; i < count; i++) {
    const clientId = decoding.readVarUint(decoder);
    const clock = decoding.readVarUint(decoder);
    const json = decoding.readVarString(decoder);
    try {
      entries.push([clientId, clock, JSON.stringify(safeState(JSON.parse(json)))]);
    } catch {
      console.warn("Cowrite: ignoring an awareness state that is not JSON");
    }
  }
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, entries.length);
  for (const [clientId, clock, json] of entries) {
    encoding.writeVarUint(encoder, clientId);
    encoding.writeVarUint(encoder, clock);
    encoding.writeVarString(encoder, json);
  }
  return encoding.toUint8Array(encoder);
}
