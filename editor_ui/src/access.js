// What this writer may do in the open document: its role (owner, editor, commenter, viewer), the header's
// role badge, and an editor that is read-only, without suggestions, for those who may only view.

import { Compartment, EditorState } from "@codemirror/state";
import { EditorView } from "@codemirror/view";

/** @typedef {import("./share.js").Role} Role */

/** @type {Record<Role, {label: string, title: string}>} */
const BADGES = {
  owner: { label: "Owner", title: "You own this document: you can edit it and choose who else may" },
  editor: { label: "Can edit", title: "This document was shared with you to edit" },
  commenter: { label: "Can comment", title: "You can read this document and comment on it, but not change its text" },
  viewer: { label: "View only", title: "You can read this document and watch the others write, but not change it" },
};

/** @param {unknown} value */
function asRole(value) {
  // A server from before accounts sends no role: everything there is the one writer's own.
  return value === "editor" || value === "commenter" || value === "viewer" ? value : "owner";
}

export class Access {
  /**
   * @param {unknown} role the document's `role` from the API
   * @param {HTMLElement} badge
   */
  constructor(role, badge) {
    /** @type {Role} */
    this.role = asRole(role);
    this.badge = badge;
    this.compartment = new Compartment();
    /** @type {import("@codemirror/state").Extension} */
    this.writing = [];
    /** @type {EditorView | null} */
    this.view = null;
    /** @type {Array<(role: Role) => void>} */
    this.listeners = [];
    this.show();
  }

  get readOnly() {
    return this.role === "viewer" || this.role === "commenter";
  }

  /** Comments: everyone but viewers may comment, reply and resolve. */
  get mayComment() {
    return this.role !== "viewer";
  }

  /**
   * The editor extension: `writing` (suggestions and the like) for those who may edit, a
   * read-only, non-editable editor for viewers; it follows later role changes.
   * @param {import("@codemirror/state").Extension} writing
   */
  extension(writing) {
    this.writing = writing;
    return this.compartment.of(this.current());
  }

  current() {
    return this.readOnly ? [EditorState.readOnly.of(true), EditorView.editable.of(false)] : this.writing;
  }

  /** @param {EditorView} view */
  attach(view) {
    this.view = view;
  }

  /**
   * The server says the role changed (the owner changed it while the page was open).
   * @param {unknown} value
   */
  set(value) {
    const role = asRole(value);
    if (role === this.role) return;
    this.role = role;
    this.show();
    if (this.view) this.view.dispatch({ effects: this.compartment.reconfigure(this.current()) });
    for (const listener of this.listeners) listener(role);
  }

  /** @param {(role: Role) => void} listener */
  subscribe(listener) {
    this.listeners.push(listener);
  }

  show() {
    const { label, title } = BADGES[this.role];
    this.badge.textContent = label;
    this.badge.title = title;
    this.badge.dataset.role = this.role;
    // Hides what only writers use (auto suggest, suggestion settings) through CSS.
    document.body.dataset.role = this.role;
  }
}
