// The editor page (/d/{id}): joins the shared document, then wires the writing surface, ghost
// text, the suggestion socket, presence, AI authorship and the toolbar panels together.

import { EditorSelection, EditorState, Prec } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import { ApiError, callApi, documentPath } from "./api.js";
import { Authorship, bindHighlightToggle, storedHighlight } from "./authorship.js";
import { SharedDocument } from "./collab.js";
import { ghostText } from "./ghost.js";
import { AuthorshipList, HistoryPanel } from "./history.js";
import { Identity, bindNameField } from "./identity.js";
import { Panels } from "./panels.js";
import { Presence } from "./presence.js";
import { SettingsStore, bindSettings } from "./settings.js";
import { ReconnectingSocket } from "./socket.js";
import { StatusBar } from "./statusbar.js";
import { Suggester } from "./suggestions.js";
import { bindThemeToggle } from "./theme.js";
import { bindTitle } from "./title.js";
import { writingSurface } from "./writing.js";

// The server records feedback from the socket on its own schedule; give it a moment before
// reading the history back over HTTP.
const HISTORY_REFRESH_DELAY_MS = 300;
// The AI-authored list follows every keystroke of every writer; redraw it at this pace at most.
const AUTHORSHIP_REFRESH_DELAY_MS = 250;
// Joining a document normally takes a moment; say so when it takes longer.
const SLOW_SYNC_MS = 5_000;

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
  return `${scheme}://${location.host}/ws/suggest/${encodeURIComponent(id)}`;
}

/** @param {unknown} exc */
function showLoadFailure(exc) {
  byId("loading").hidden = true;
  const missing = exc instanceof ApiError && exc.status === 404;
  document.body.dataset.state = missing ? "missing" : "error";
  if (missing) {
    byId("not-found").hidden = false;
    document.title = "Document not found — Cowrite";
    return;
  }
  const box = byId("load-error");
  byId("load-error-message").textContent = exc instanceof Error ? exc.message : String(exc);
  box.hidden = false;
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
  const id = documentId();
  const status = new StatusBar();

  // The API gives the title and tells a missing document apart; the text comes from the shared
  // document alone, never from here.
  /** @type {{id: string, title: string}} */
  let doc;
  try {
    doc = await callApi("GET", documentPath(id));
  } catch (exc) {
    showLoadFailure(exc);
    return;
  }

  const identity = new Identity();
  let goneNoticeShown = false;
  const shared = new SharedDocument(id, () => {
    status.showConnection(shared.connectionState);
    status.showSave(shared.saveState);
    if (shared.gone && !goneNoticeShown) {
      goneNoticeShown = true;
      status.showNotice("This document was deleted; edits from now on are not saved.");
    }
  });
  const presence = new Presence(shared.awareness, identity, byId("presence"));
  shared.provider.on("status", ({ status: socketStatus }) => {
    if (socketStatus === "connected") presence.announce();
  });
  const authorship = new Authorship(shared.ydoc, shared.text, () => identity.name);
  const panels = new Panels();
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
  const help = byId("help-panel");
  panels.register(byId("help-button"), help);
  bindHelpShortcut(panels, help);

  const settings = new SettingsStore();
  bindSettings(byId("settings-panel"), byId("auto-suggest"), settings);
  bindNameField(byId("set-name"), identity);
  bindHighlightToggle(byId("ai-toggle"), authorship);
  bindTitle(byId("doc-title"), id, doc.title, (message) => status.showNotice(message));

  shared.connect();
  const slow = setTimeout(() => {
    byId("loading").textContent = "Still connecting to the document…";
  }, SLOW_SYNC_MS);
  const found = await shared.whenSynced();
  clearTimeout(slow);
  if (!found) {
    showLoadFailure(new ApiError(404, "not_found", "Document not found."));
    return;
  }
  byId("loading").hidden = true;
  document.body.dataset.state = "ready";

  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let historyTimer;
  const socket = new ReconnectingSocket(suggestionSocketUrl(id), {
    onMessage: (frame) => suggester.handleFrame(frame),
    onState: (state) => {
      status.showSuggestionConnection(state);
      suggester.handleSocketState(state);
    },
  });
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
      suggester.extension(),
      presence.extension(),
      // After the binding, whose plugin writes each local edit to the Y.Text that these read.
      authorship.extension(storedHighlight()),
      Prec.highest(keymap.of([{ key: "Mod-/", run: () => (panels.toggle(help), true) }])),
    ],
  });
  const view = new EditorView({ state, parent: byId("editor") });
  authorship.attach(view);
  // Writers come back to continue, so the cursor starts at the end.
  view.dispatch({ selection: EditorSelection.cursor(view.state.doc.length), scrollIntoView: true });
  suggester.attach(view);
  socket.start();
  view.focus();

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
    }),
    aiSpans: () => authorship.list().map(({ text, user, suggestion, at }) => ({ text, user, suggestion, at })),
    ytext: () => shared.text.toString(),
    goOffline: () => {
      shared.disconnect();
      socket.stop();
    },
    goOnline: () => {
      shared.connect();
      socket.start();
    },
  };
}

main();
