// The editor page (/d/{id}): joins the shared document, then wires the writing surface, ghost
// text, the suggestion socket, presence, AI authorship, sharing and the toolbar panels together.

import { EditorSelection, EditorState, Prec } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import { Access } from "./access.js";
import { ApiError, callApi, documentPath } from "./api.js";
import { NotesField, ghostAnnouncer } from "./assistant.js";
import { Authorship, bindHighlightToggle, storedHighlight } from "./authorship.js";
import { SharedDocument } from "./collab.js";
import { Comments } from "./comments.js";
import { documentCounts } from "./counts.js";
import { ExportMenu } from "./exporting.js";
import { dismissGhost, ghostText } from "./ghost.js";
import { AuthorshipList, HistoryPanel } from "./suggestionhistory.js";
import { Identity } from "./identity.js";
import { localCopyName } from "./localcopy.js";
import { Panels } from "./panels.js";
import { Presence } from "./presence.js";
import { bindAccount, signedInAccount } from "./session.js";
import { SettingsStore, bindSettings } from "./settings.js";
import { SharePanel } from "./share.js";
import { CLOSE_FORBIDDEN, ReconnectingSocket } from "./socket.js";
import { StatusBar } from "./statusbar.js";
import { Suggester } from "./suggestions.js";
import { bindThemeToggle } from "./theme.js";
import { bindTitle, setTitleEditable } from "./title.js";
import { VersionsPanel } from "./versions.js";
import { writingSurface } from "./writing.js";

// The server records feedback from the socket on its own schedule; give it a moment before
// reading the history back over HTTP.
const HISTORY_REFRESH_DELAY_MS = 300;
// The AI-authored list follows every keystroke of every writer; redraw it at this pace at most.
const AUTHORSHIP_REFRESH_DELAY_MS = 250;
// Joining a document normally takes a moment; say so when it takes longer.
const SLOW_SYNC_MS = 5_000;

/** Why the document socket ended for good, said above the text while the page stays open. */
const ENDING_NOTICES = {
  missing: "This document was deleted or is no longer shared with you; edits from now on are not saved.",
  forbidden: "You no longer have access to this document; edits from now on are not saved.",
  too_many: "Too many Cowrite tabs are open for your account. Close some, then reload this one.",
  too_large:
    "Your last change was too large to save, so the server did not keep it, nor anything typed since. " +
    "Copy out what you need, then reload the saved version (this browser's copy of your unsaved changes is discarded).",
};

/** The same endings when they keep the document from opening at all. */
const LOAD_FAILURES = {
  forbidden: ["You do not have access to this document", "Ask its owner to share it with you."],
  too_many: ["Too many Cowrite tabs are open", "Your account has too many documents open; close some tabs and try again."],
  too_large: [
    "A change was too large to save",
    "This browser holds a change to the document that is too large for the server to save. " +
      "Reload the saved version to discard this browser's copy of it.",
  ],
};

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function byId(id) {
  const found = document.getElementById(id);
  if (!found) throw new Error(`editor.html lacks #${id}`);
  return /** @type {T} */ (found);
}

/** The document id is the last segment of /d/{id}. */
function documentId() {
  const segments = location.pathname.split("/").filter(Boolean);
  return decodeURIComponent(segments[segments.length - 1] || "");
}

/** @param {string} id */
function suggestionSocketUrl(id) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const tab = encodeURIComponent(tabId());
  return `${scheme}://${location.host}/ws/suggest/${encodeURIComponent(id)}?tab=${tab}`;
}

/**
 * This tab's id: the server keeps one suggestion session (and its cached context) per writer,
 * document and tab, so two tabs of one writer don't cancel each other's suggestions. Kept in
 * sessionStorage, so a reload or a reconnect keeps it and other tabs get their own.
 */
function tabId() {
  const key = "cowrite.tab";
  let id = sessionStorage.getItem(key);
  if (!id || !/^[A-Za-z0-9_-]{1,32}$/.test(id)) {
    id = Math.random().toString(36).slice(2, 12);
    sessionStorage.setItem(key, id);
  }
  return id;
}

/**
 * @param {unknown} exc
 * @param {string} [heading]
 */
function showLoadFailure(exc, heading) {
  byId("loading").hidden = true;
  const missing = exc instanceof ApiError && exc.status === 404;
  document.body.dataset.state = missing ? "missing" : "error";
  if (missing) {
    byId("not-found").hidden = false;
    document.title = "Document not found — Cowrite";
    return;
  }
  const box = byId("load-error");
  if (heading) byId("load-error-heading").textContent = heading;
  byId("load-error-message").textContent = exc instanceof Error ? exc.message : String(exc);
  box.hidden = false;
}

/**
 * A lasting message above the text: this page lost the document or its access.
 * @param {string} text
 * @param {HTMLElement} [action] a button to offer after the text
 */
function showAccessNotice(text, action) {
  const notice = byId("access-notice");
  notice.textContent = text;
  if (action) notice.append(action);
  notice.hidden = false;
}

/**
 * A button that discards this browser's copy of the document, then reloads the page, which
 * then holds the server's version only: the way out after a change too large to save, which the
 * local copy would otherwise send again on every opening.
 * @param {SharedDocument} shared
 */
function reloadSavedButton(shared) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button";
  button.dataset.testid = "reload-saved";
  button.textContent = "Reload the saved version";
  button.addEventListener("click", async () => {
    button.disabled = true;
    shared.disconnect();
    await shared.dropLocalCopy();
    location.reload();
  });
  return button;
}

/**
 * @param {Panels} panels
 * @param {HTMLElement} help
 */
function bindHelpShortcut(panels, help) {
  // Outside the editor; inside it the editor's keymap (below) sees Ctrl+/ first.
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "/" && !event.defaultPrevented) {
      event.preventDefault();
      panels.toggle(help);
    }
  });
}

async function main() {
  bindThemeToggle(byId("theme-toggle"));
  const panels = new Panels();
  // Narrower screens fold the secondary controls into the "More" menu (CSS decides when); a panel
  // opened from it closes the menu, and Escape in that panel gives focus back to "More".
  const more = byId("more-button");
  panels.register(more, byId("more-menu"), undefined, undefined, { menu: true });
  panels.fallbackFocus = more;
  const id = documentId();
  const status = new StatusBar();

  // The API gives the title and this writer's role, and tells a missing document apart (one not
  // shared with this account is missing too); the text comes from the shared document alone.
  /** @type {{id: string, title: string, role?: string}} */
  let doc;
  /** @type {import("./session.js").Account} */
  let account;
  try {
    [account, doc] = await Promise.all([signedInAccount(), callApi("GET", documentPath(id))]);
  } catch (exc) {
    showLoadFailure(exc);
    return;
  }
  const access = new Access(doc.role, byId("role-badge"));
  // Writers keep a copy of the document in this browser, per account, so edits made offline
  // survive a closed tab; viewers have nothing of their own to keep.
  const localName = access.readOnly ? null : localCopyName(account.username, id);
  bindAccount(byId("account"), account, panels, localName ? [localName] : []);
  const identity = new Identity(account.username);
  let ready = false;
  let endingShown = false;
  /** A role check (see checkRole below) is under way. */
  let checking = false;
  /** Times the suggestion socket was reopened after a refusal since it was last connected. */
  let reopened = 0;
  /** The server refused edits of this writer (its role had changed): they exist only here. */
  let editsRefused = false;
  const shared = new SharedDocument(
    id,
    () => {
      status.showConnection(shared.connectionState);
      status.showSave(shared.saveState);
      if (ready && shared.ending && !endingShown) {
        endingShown = true;
        const action = shared.ending === "too_large" ? reloadSavedButton(shared) : undefined;
        showAccessNotice(ENDING_NOTICES[shared.ending], action);
      }
    },
    () => {
      editsRefused = true;
      if (access.readOnly) showReadOnlyNotice();
      else checkRole();
    },
    () => checkRole(),
    localName,
  );
  shared.readOnly = access.readOnly;
  const presence = new Presence(shared.awareness, identity, byId("presence"));
  shared.provider.on("status", ({ status: socketStatus }) => {
    if (socketStatus === "connected") presence.announce();
  });
  const authorship = new Authorship(shared.ydoc, shared.text, () => identity.name);
  const historyPanel = new HistoryPanel(byId("history-list"), id);
  const authorshipList = new AuthorshipList(byId("ai-list"), authorship);
  const historyBox = byId("history-panel");
  panels.register(byId("history-button"), historyBox, () => {
    historyPanel.refresh();
    authorshipList.render();
  });
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let authorshipTimer;
  authorship.subscribe(() => {
    if (!panels.isOpen(historyBox) || authorshipTimer !== undefined) return;
    authorshipTimer = setTimeout(() => {
      authorshipTimer = undefined;
      if (panels.isOpen(historyBox)) authorshipList.render();
    }, AUTHORSHIP_REFRESH_DELAY_MS);
  });
  panels.register(byId("settings-button"), byId("settings-panel"));
  const share = new SharePanel(byId("share-panel"), id, { role: access.role, username: account.username });
  panels.register(byId("share-button"), byId("share-panel"), () => share.refresh());
  const help = byId("help-panel");
  panels.register(byId("help-button"), help);
  bindHelpShortcut(panels, help);
  // Export and import (issue 12, item 1): the Export menu and printing (exporting.js).
  const exportBox = byId("export-panel");
  const exportMenu = new ExportMenu(exportBox, byId("print-view"), id, () => panels.close());
  panels.register(byId("export-button"), exportBox, () => exportMenu.reset());

  const settings = new SettingsStore();
  bindSettings(byId("settings-panel"), byId("auto-suggest"), settings);
  bindHighlightToggle(byId("ai-toggle"), authorship);
  const title = /** @type {HTMLInputElement} */ (byId("doc-title"));
  bindTitle(title, id, doc.title, (message) => status.showNotice(message), !access.readOnly);
  // A steadier assistant: the document's notes for suggestions, in the settings panel.
  const notes = new NotesField(
    byId("set-notes"),
    byId("notes-state"),
    id,
    typeof (/** @type {any} */ (doc).notes) === "string" ? /** @type {any} */ (doc).notes : "",
    access.readOnly,
  );
  access.subscribe(() => notes.setReadOnly(access.readOnly));
  // Comments (issue 12, item 3): fetched on every (re)connection and whenever the socket says so.
  const comments = new Comments({
    margin: byId("comments"),
    id,
    ydoc: shared.ydoc,
    text: shared.text,
    me: account.username,
    mayComment: () => access.mayComment,
    isOwner: () => access.role === "owner",
    onNotice: (message) => status.showNotice(message),
  });
  shared.onCommentsChanged = () => comments.refresh();
  shared.provider.on("sync", (/** @type {boolean} */ synced) => synced && comments.refresh());
  access.subscribe(() => comments.render());

  // The local copy first, so the first sync sends the server what it holds that the server lacks.
  const hasLocalCopy = await shared.loadLocalCopy();
  shared.connect();
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let slow;
  // The server's copy comes first; should it not come, a local copy is shown (and edited, offline)
  // after SLOW_SYNC_MS. A document without one waits for the server, which alone seeds the text.
  /** @type {Promise<import("./collab.js").Ending | null>} */
  const fallBack = new Promise((resolve) => {
    slow = setTimeout(() => {
      if (hasLocalCopy && shared.local && !shared.ending) resolve(null);
      else byId("loading").textContent = "Still connecting to the document…";
    }, SLOW_SYNC_MS);
  });
  const ending = await Promise.race([shared.whenSynced(), fallBack]);
  clearTimeout(slow);
  if (ending === "missing") {
    showLoadFailure(new ApiError(404, "not_found", "Document not found."));
    return;
  }
  if (ending) {
    const [heading, message] = LOAD_FAILURES[ending];
    showLoadFailure(new Error(message), heading);
    if (ending === "too_large") byId("load-error-message").append(" ", reloadSavedButton(shared));
    return;
  }
  byId("loading").hidden = true;
  document.body.dataset.state = "ready";
  ready = true;

  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let historyTimer;
  const socket = new ReconnectingSocket(suggestionSocketUrl(id), {
    onMessage: (frame) => suggester.handleFrame(frame),
    onState: (state) => {
      status.showSuggestionConnection(state);
      suggester.handleSocketState(state);
      if (state === "connected") reopened = 0;
      if (state !== "refused") return;
      if (socket.closeCode === CLOSE_FORBIDDEN) checkRole();
      else showAccessNotice("Suggestions are off: your account has too many Cowrite tabs open. Close some, then reload.");
    },
  });
  // The document socket stopped answering: the suggestion socket, to the same server over the
  // same network, is no better off.
  shared.onUnanswered(() => socket.drop());
  const suggester = new Suggester({
    socket,
    settings,
    status,
    onFeedback: () => {
      if (!panels.isOpen(historyBox)) return;
      clearTimeout(historyTimer);
      historyTimer = setTimeout(() => historyPanel.refresh(), HISTORY_REFRESH_DELAY_MS);
    },
  });

  const state = EditorState.create({
    doc: shared.text.toString(),
    extensions: [
      writingSurface(),
      shared.editorBinding([authorship.spans], () => authorship.reanchor()),
      ghostText(),
      // Viewers get a read-only editor that never asks for suggestions.
      access.extension(suggester.extension()),
      presence.extension(),
      comments.extension(), // comments: highlights, the "Comment" button, Ctrl+Alt+M
      // Counts (issue 12, item 4): every reader sees the document's, and their selection's.
      documentCounts((counts) => status.showCounts(counts)),
      // After the binding, whose plugin writes each local edit to the Y.Text that these read.
      // A steadier assistant: each take is its own undo step; a finished suggestion is announced.
      authorship.extension(storedHighlight(), shared.undoManager),
      ghostAnnouncer(byId("ghost-announcer")),
      Prec.highest(keymap.of([{ key: "Mod-/", run: () => (panels.toggle(help), true) }])),
    ],
  });
  const view = new EditorView({ state, parent: byId("editor") });
  authorship.attach(view);
  access.attach(view);
  comments.attach(view);
  // Writers come back to continue, so the cursor starts at the end.
  view.dispatch({ selection: EditorSelection.cursor(view.state.doc.length), scrollIntoView: true });
  suggester.attach(view);
  // Version history (issue 12, item 2): the Versions panel; a restore is one undo step.
  const versions = new VersionsPanel(byId("versions-panel"), id, {
    view,
    undoManager: shared.undoManager,
    readOnly: () => access.readOnly,
    onRestored: (message) => status.showNotice(message),
  });
  panels.register(byId("versions-button"), byId("versions-panel"), () => versions.refresh());
  if (!access.readOnly) socket.start();
  view.focus();

  // The owner may change this writer's role, or take the access away, while the page is open;
  // the server then refuses edits or the suggestion socket, and the API says what changed.
  access.subscribe(() => {
    shared.readOnly = access.readOnly;
    setTitleEditable(title, !access.readOnly);
    if (!access.readOnly) {
      socket.start();
      return;
    }
    socket.stop();
    view.dispatch({ effects: dismissGhost.of(null) });
    showReadOnlyNotice();
  });
  function showReadOnlyNotice() {
    showAccessNotice(
      editsRefused
        ? "Your access changed: you can only view this document now. Your latest edits were not saved; reload to see the saved text."
        : "Your access changed: you can only view this document now.",
    );
  }
  async function checkRole() {
    if (checking) return;
    checking = true;
    try {
      const fresh = await callApi("GET", documentPath(id));
      access.set(fresh.role);
      // The server closes the suggestion socket on any change of role; still a writer, reopen it
      // (a few times at most, should the server keep refusing it for another reason).
      if (!access.readOnly && socket.state === "refused" && socket.closeCode === CLOSE_FORBIDDEN && reopened < 3) {
        reopened += 1;
        socket.start();
      }
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) showAccessNotice(ENDING_NOTICES.missing);
      else status.showNotice(`Could not check your access: ${exc instanceof Error ? exc.message : exc}`);
    } finally {
      checking = false;
    }
  }

  /** @type {any} */ (window).cowrite = {
    view,
    state: () => ({
      ...suggester.snapshot(),
      saved: shared.saved,
      connected: socket.connected,
      synced: shared.synced,
      online: shared.online,
      peers: presence.peers(),
      name: identity.name,
      role: access.role,
      readOnly: access.readOnly,
      local: shared.local !== null,
      ending: shared.ending,
    }),
    aiSpans: () => authorship.list().map(({ text, user, suggestion, at }) => ({ text, user, suggestion, at })),
    ytext: () => shared.text.toString(),
    storedLocally: () => shared.storedLocally(),
    goOffline: () => {
      shared.disconnect();
      socket.stop();
    },
    goOnline: () => {
      shared.connect();
      if (!access.readOnly) socket.start();
    },
  };
}

main();
