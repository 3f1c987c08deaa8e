// The editor page (/d/{id}): loads the document, then wires the writing surface, ghost text,
// the suggestion socket, autosave and the toolbar panels together.

import { EditorSelection, EditorState, Prec } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import { ApiError, callApi, documentPath } from "./api.js";
import { Autosaver } from "./autosave.js";
import { ghostText } from "./ghost.js";
import { HistoryPanel } from "./history.js";
import { Panels } from "./panels.js";
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

  /** @type {{id: string, title: string, text: string}} */
  let doc;
  try {
    doc = await callApi("GET", documentPath(id));
  } catch (exc) {
    showLoadFailure(exc);
    return;
  }
  byId("loading").hidden = true;
  document.body.dataset.state = "ready";
  bindTitle(byId("doc-title"), id, doc.title, (message) => status.showNotice(message));

  const panels = new Panels();
  const historyPanel = new HistoryPanel(byId("history-list"), id);
  panels.register(byId("history-button"), byId("history-panel"), () => historyPanel.refresh());
  panels.register(byId("settings-button"), byId("settings-panel"));
  const help = byId("help-panel");
  panels.register(byId("help-button"), help);
  bindHelpShortcut(panels, help);

  const settings = new SettingsStore();
  bindSettings(byId("settings-panel"), byId("auto-suggest"), settings);

  const autosaver = new Autosaver({
    readText: () => view.state.doc.toString(),
    save: (text, keepalive) => callApi("PATCH", documentPath(id), { text }, { keepalive }),
    onState: (state) => status.showSave(state),
  });
  status.showSave("saved");

  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let historyTimer;
  const socket = new ReconnectingSocket(suggestionSocketUrl(id), {
    onMessage: (frame) => suggester.handleFrame(frame),
    onState: (state) => {
      status.showConnection(state);
      suggester.handleSocketState(state);
    },
  });
  const suggester = new Suggester({
    socket,
    settings,
    status,
    onFeedback: () => {
      if (!panels.isOpen(byId("history-panel"))) return;
      clearTimeout(historyTimer);
      historyTimer = setTimeout(() => historyPanel.refresh(), HISTORY_REFRESH_DELAY_MS);
    },
  });

  const state = EditorState.create({
    doc: doc.text,
    extensions: [
      writingSurface(),
      ghostText(),
      suggester.extension(),
      Prec.highest(keymap.of([{ key: "Mod-/", run: () => (panels.toggle(help), true) }])),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) autosaver.noteEdit();
      }),
    ],
  });
  const view = new EditorView({ state, parent: byId("editor") });
  // Writers come back to continue, so the cursor starts at the end (after CodeMirror has
  // normalised line breaks, which can change the length).
  view.dispatch({ selection: EditorSelection.cursor(view.state.doc.length), scrollIntoView: true });
  suggester.attach(view);
  socket.start();
  view.focus();

  /** @type {any} */ (window).cowrite = {
    view,
    state: () => ({ ...suggester.snapshot(), saved: autosaver.saved, connected: socket.connected }),
  };
}

main();
