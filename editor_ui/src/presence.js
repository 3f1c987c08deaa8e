// Presence: what this writer tells the others through awareness (name, colour, whether a
// suggestion is up), the toolbar chips showing who else is in the document, and the names on the
// others' cursors while they type.

import { EditorView, ViewPlugin } from "@codemirror/view";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { currentGhost } from "./ghost.js";
import { safeColor, selectionColor } from "./identity.js";

/** @typedef {{name: string, color: string, suggesting: boolean}} Peer */

// A co-author's name shows on their cursor (y-codemirror's caret label) this long after they last
// typed or moved it; then it fades (app.css).
export const CURSOR_NAME_MS = 3_000;

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

    /** Each other client's cursor as last seen (JSON), to tell a moved cursor from a renewal. */
    /** @type {Map<number, string>} */
    this.cursors = new Map();
    /** Until when (Date.now()) each name shows on its cursors. */
    /** @type {Map<string, number>} */
    this.activeUntil = new Map();
    /** @type {EditorView | null} */
    this.view = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.fadeTimer = undefined;

    awareness.setLocalState({ user: identity.user, suggesting: false });
    awareness.on("change", (/** @type {{added: number[], updated: number[], removed: number[]}} */ changes) => {
      this.noteCursors(changes);
      this.render();
    });
    // Typing at the end of the text leaves a cursor's relative position as it was, so the edits
    // tell too: the clients whose clock a transaction advanced wrote in it.
    awareness.doc.on("afterTransaction", (/** @type {import("yjs").Transaction} */ tr) => {
      if (!tr.local) this.noteEdits(tr);
    });
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

  /**
   * Keeps `suggesting` true while this writer has a suggestion generating or on screen, and marks
   * the others' carets whose names show.
   */
  extension() {
    const presence = this;
    return [
      EditorView.updateListener.of((update) => {
        const suggesting = currentGhost(update.state) !== null;
        if (suggesting === this.suggesting) return;
        this.suggesting = suggesting;
        this.setField("suggesting", suggesting);
      }),
      ViewPlugin.define((view) => {
        presence.view = view;
        return {
          update() {
            // y-codemirror draws (or redraws) the carets in this update; mark them once it has.
            if (presence.cursors.size) presence.redraw();
          },
          destroy() {
            presence.view = null;
            clearTimeout(presence.fadeTimer);
          },
        };
      }),
    ];
  }

  /**
   * A co-author whose cursor moved (they typed, or moved it) has their name shown for a while.
   * @param {{added: number[], updated: number[], removed: number[]}} changes
   */
  noteCursors({ added, updated, removed }) {
    for (const clientId of removed) this.cursors.delete(clientId);
    const states = this.awareness.getStates();
    let moved = false;
    for (const clientId of [...added, ...updated]) {
      if (clientId === this.awareness.clientID) continue;
      const state = states.get(clientId);
      const name = state && state.user && state.user.name;
      const cursor = state && state.cursor ? JSON.stringify(state.cursor) : null;
      if (typeof name !== "string" || cursor === null) {
        this.cursors.delete(clientId);
        continue;
      }
      if (this.cursors.get(clientId) === cursor) continue;
      this.cursors.set(clientId, cursor);
      this.activeUntil.set(name, Date.now() + CURSOR_NAME_MS);
      moved = true;
    }
    if (!moved) return;
    this.scheduleFade();
    this.redraw();
  }

  /**
   * Co-authors who wrote in a transaction from elsewhere have their names shown for a while.
   * @param {import("yjs").Transaction} tr
   */
  noteEdits(tr) {
    const states = this.awareness.getStates();
    let wrote = false;
    tr.afterState.forEach((clock, clientId) => {
      if (clientId === this.awareness.clientID || clock <= (tr.beforeState.get(clientId) || 0)) return;
      const state = states.get(clientId);
      const name = state && state.user && state.user.name;
      if (typeof name !== "string") return;
      this.activeUntil.set(name, Date.now() + CURSOR_NAME_MS);
      wrote = true;
    });
    if (!wrote) return;
    this.scheduleFade();
    this.redraw();
  }

  /** Mark the carets once the editor has drawn what it is drawing now. */
  redraw() {
    if (this.view) this.view.requestMeasure({ key: this, read() {}, write: () => this.markCarets() });
  }

  /** Mark each caret y-codemirror drew with whether its name shows now. */
  markCarets() {
    if (!this.view) return;
    const now = Date.now();
    for (const caret of this.view.contentDOM.querySelectorAll(".cm-ySelectionCaret")) {
      if (!(caret instanceof HTMLElement)) continue;
      const label = caret.querySelector(".cm-ySelectionInfo");
      const name = label ? label.textContent || "" : "";
      const active = String((this.activeUntil.get(name) || 0) > now);
      caret.dataset.testid = "remote-cursor";
      if (caret.dataset.active !== active) caret.dataset.active = active;
    }
  }

  /** Redraw the carets' names when the next one is due to fade. */
  scheduleFade() {
    clearTimeout(this.fadeTimer);
    const now = Date.now();
    let next = Infinity;
    for (const [name, until] of this.activeUntil) {
      if (until <= now) this.activeUntil.delete(name);
      else next = Math.min(next, until);
    }
    if (next === Infinity) return;
    this.fadeTimer = setTimeout(() => {
      this.markCarets();
      this.scheduleFade();
    }, next - now + 10);
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
