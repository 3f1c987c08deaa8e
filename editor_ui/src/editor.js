// The editor page (/d/{id}): joins the shared document, then wires the writing surface, ghost
// text, the suggestion socket, presence, AI authorship, comments, sharing and the toolbar panels
// together. `main`, at the end, reads as the list of steps.

import { EditorSelection, EditorState, Prec } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import { Access } from "./access.js";
import { callApi, documentPath } from "./api.js";
import { NotesField, ghostAnnouncer } from "./assistant.js";
import { Authorship, bindHighlightToggle, storedHighlight } from "./authorship.js";
import { SharedDocument } from "./collab.js";
import { Comments } from "./comments.js";
import { documentCounts } from "./counts.js";
import { byId } from "./dom.js";
import { ExportMenu } from "./exporting.js";
import { dismissGhost, ghostText } from "./ghost.js";
import { Identity } from "./identity.js";
import { localCopyName } from "./localcopy.js";
import { EndingNotice, showLoadFailure, showOpeningFailure, showSuggestionsOff } from "./notices.js";
import { Panels } from "./panels.js";
import { Presence } from "./presence.js";
import { RoleCheck } from "./rolecheck.js";
import { bindAccount, signedInAccount } from "./session.js";
import { SettingsStore, bindSettings } from "./settings.js";
import { SharePanel } from "./share.js";
import { CLOSE_FORBIDDEN, ReconnectingSocket } from "./socket.js";
import { StatusBar } from "./statusbar.js";
import { AuthorshipList, HistoryPanel } from "./suggestionhistory.js";
import { Suggester, suggestionSocketUrl } from "./suggestions.js";
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

/**
 * What the steps below share: the document, this writer, and the parts every step may use.
 * @typedef {{id: string, account: import("./session.js").Account,
 *   doc: {id: string, title: string, role?: string, notes?: string}, panels: Panels, status: StatusBar,
 *   access: Access, shared: SharedDocument, identity: Identity, presence: Presence, authorship: Authorship,
 *   roleCheck: RoleCheck, endingNotice: EndingNotice}} Page
 */

/** The document id is the last segment of /d/{id}. */
function documentId() {
  const segments = location.pathname.split("/").filter(Boolean);
  return decodeURIComponent(segments[segments.length - 1] || "");
}

/** The header's theme toggle and its panels, with the "More" menu of narrower screens. */
function bindHeader() {
  bindThemeToggle(byId("theme-toggle"));
  const panels = new Panels();
  // Narrower screens fold the secondary controls into the "More" menu (CSS decides when); a panel
  // opened from it closes the menu, and Escape in that panel gives focus back to "More".
  const more = byId("more-button");
  panels.register(more, byId("more-menu"), undefined, undefined, { menu: true });
  panels.fallbackFocus = more;
  return panels;
}

/**
 * The account, and the document's title and this writer's role: the API tells a missing document
 * apart (one not shared with this account is missing too); the text comes from the shared
 * document alone. Null once the page says why the document cannot open.
 * @param {string} id
 */
async function openDocument(id) {
  try {
    const [account, doc] = await Promise.all([signedInAccount(), callApi("GET", documentPath(id))]);
    return { account, doc };
  } catch (exc) {
    showLoadFailure(exc);
    return null;
  }
}

/**
 * Join the shared document, not yet connected: this writer's access and account corner, the
 * Y.Doc and its local copy, presence and AI authorship.
 * @param {string} id
 * @param {{account: Page["account"], doc: Page["doc"]}} opened
 * @param {Panels} panels
 * @param {StatusBar} status
 * @returns {Page}
 */
function joinDocument(id, { account, doc }, panels, status) {
  const access = new Access(doc.role, byId("role-badge"));
  // Writers keep a copy of the document in this browser, per account, so edits made offline
  // survive a closed tab; viewers have nothing of their own to keep.
  const localName = access.readOnly ? null : localCopyName(account.username, id);
  bindAccount(byId("account"), account, panels, localName ? [localName] : []);
  const identity = new Identity(account.username);
  const endingNotice = new EndingNotice();
  const roleCheck = new RoleCheck(id, access, (message) => status.showNotice(message));
  const shared = new SharedDocument(
    id,
    () => {
      status.showConnection(shared.connectionState);
      status.showSave(shared.saveState);
      endingNotice.update(shared);
    },
    () => roleCheck.refused(),
    () => roleCheck.check(),
    localName,
  );
  shared.readOnly = access.readOnly;
  const presence = new Presence(shared.awareness, identity, byId("presence"));
  shared.provider.on("status", ({ status: socketStatus }) => {
    if (socketStatus === "connected") presence.announce();
  });
  const authorship = new Authorship(shared.ydoc, shared.text, () => identity.name);
  return { id, account, doc, panels, status, access, shared, identity, presence, authorship, roleCheck, endingNotice };
}

/**
 * The History panel: this writer's suggestions and the AI-authored text, kept current while open.
 * @param {Page} page
 * @returns {() => void} refreshes the suggestion list soon, if it is open (feedback just went out)
 */
function wireHistory({ id, panels, authorship }) {
  const suggestions = new HistoryPanel(byId("history-list"), id);
  const aiText = new AuthorshipList(byId("ai-list"), authorship);
  const box = byId("history-panel");
  panels.register(byId("history-button"), box, () => {
    suggestions.refresh();
    aiText.render();
  });
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let aiTextTimer;
  authorship.subscribe(() => {
    if (!panels.isOpen(box) || aiTextTimer !== undefined) return;
    aiTextTimer = setTimeout(() => {
      aiTextTimer = undefined;
      if (panels.isOpen(box)) aiText.render();
    }, AUTHORSHIP_REFRESH_DELAY_MS);
  });
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let suggestionsTimer;
  return () => {
    if (!panels.isOpen(box)) return;
    clearTimeout(suggestionsTimer);
    suggestionsTimer = setTimeout(() => suggestions.refresh(), HISTORY_REFRESH_DELAY_MS);
  };
}

/**
 * The header's panels (history, settings with the notes for suggestions, sharing, help, export),
 * the AI highlight toggle and the title.
 * @param {Page} page
 */
function wirePanels(page) {
  const { id, account, doc, panels, status, access, authorship } = page;
  const refreshHistorySoon = wireHistory(page);
  panels.register(byId("settings-button"), byId("settings-panel"));
  const share = new SharePanel(byId("share-panel"), id, { role: access.role, username: account.username });
  panels.register(byId("share-button"), byId("share-panel"), () => share.refresh());
  const help = byId("help-panel");
  panels.register(byId("help-button"), help);
  // Outside the editor; inside it the editor's keymap (buildEditor) sees Ctrl+/ first.
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "/" && !event.defaultPrevented) {
      event.preventDefault();
      panels.toggle(help);
    }
  });
  const exportBox = byId("export-panel");
  const exportMenu = new ExportMenu(exportBox, byId("print-view"), id, () => panels.close());
  panels.register(byId("export-button"), exportBox, () => exportMenu.reset());

  const settings = new SettingsStore();
  bindSettings(byId("settings-panel"), byId("auto-suggest"), settings);
  bindHighlightToggle(byId("ai-toggle"), authorship);
  const title = /** @type {HTMLInputElement} */ (byId("doc-title"));
  bindTitle(title, id, doc.title, (message) => status.showNotice(message), !access.readOnly);
  const notes = new NotesField(
    byId("set-notes"),
    byId("notes-state"),
    id,
    typeof doc.notes === "string" ? doc.notes : "",
    access.readOnly,
  );
  access.subscribe(() => notes.setReadOnly(access.readOnly));
  return { settings, help, title, refreshHistorySoon };
}

/**
 * Comments, fetched on every (re)connection and whenever the document socket says they changed.
 * @param {Page} page
 */
function wireComments({ id, account, access, shared, status }) {
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
  return comments;
}

/**
 * Connect, and wait for the server's copy of the document; should it not come, a local copy is
 * shown (and edited, offline) after SLOW_SYNC_MS. A document without one waits for the server,
 * which alone seeds the text. False once the page says why the document cannot open.
 * @param {Page} page
 */
async function connect({ shared, endingNotice }) {
  // The local copy first, so the first sync sends the server what it holds that the server lacks.
  const hasLocalCopy = await shared.loadLocalCopy();
  shared.connect();
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let slow;
  /** @type {Promise<import("./collab.js").Ending | null>} */
  const fallBack = new Promise((resolve) => {
    slow = setTimeout(() => {
      if (hasLocalCopy && shared.local && !shared.ending) resolve(null);
      else byId("loading").textContent = "Still connecting to the document…";
    }, SLOW_SYNC_MS);
  });
  const ending = await Promise.race([shared.whenSynced(), fallBack]);
  clearTimeout(slow);
  if (ending) {
    showOpeningFailure(ending, shared);
    return false;
  }
  byId("loading").hidden = true;
  document.body.dataset.state = "ready";
  endingNotice.ready = true;
  return true;
}

/**
 * The assistant: the suggestion socket and what asks on it, not yet started.
 * @param {Page} page
 * @param {SettingsStore} settings
 * @param {() => void} refreshHistorySoon
 */
function wireAssistant({ id, shared, status, roleCheck }, settings, refreshHistorySoon) {
  const socket = new ReconnectingSocket(suggestionSocketUrl(id), {
    onMessage: (frame) => suggester.handleFrame(frame),
    onState: (state) => {
      status.showSuggestionConnection(state);
      suggester.handleSocketState(state);
      if (state === "connected") roleCheck.suggestionsConnected();
      if (state !== "refused") return;
      if (socket.closeCode === CLOSE_FORBIDDEN) roleCheck.check();
      else showSuggestionsOff();
    },
  });
  roleCheck.socket = socket;
  // The document socket stopped answering: the suggestion socket, to the same server over the
  // same network, is no better off.
  shared.onUnanswered(() => socket.drop());
  const suggester = new Suggester({ socket, settings, status, onFeedback: refreshHistorySoon });
  return { socket, suggester };
}

/**
 * The editor itself, on the shared text, with the cursor at the end: writers come back to continue.
 * @param {Page} page
 * @param {{suggester: Suggester, comments: Comments, help: HTMLElement}} parts
 */
function buildEditor({ shared, access, presence, authorship, status, panels }, { suggester, comments, help }) {
  const state = EditorState.create({
    doc: shared.text.toString(),
    extensions: [
      writingSurface(),
      shared.editorBinding([authorship.spans], () => authorship.reanchor()),
      ghostText(),
      // Viewers get a read-only editor that never asks for suggestions.
      access.extension(suggester.extension()),
      presence.extension(),
      comments.extension(), // highlights, the "Comment" button, Ctrl+Alt+M
      // Every reader sees the document's counts, and their selection's.
      documentCounts((counts) => status.showCounts(counts)),
      // After the binding, whose plugin writes each local edit to the Y.Text that these read:
      // each take is its own undo step, and a finished suggestion is announced.
      authorship.extension(storedHighlight(), shared.undoManager),
      ghostAnnouncer(byId("ghost-announcer")),
      Prec.highest(keymap.of([{ key: "Mod-/", run: () => (panels.toggle(help), true) }])),
    ],
  });
  const view = new EditorView({ state, parent: byId("editor") });
  authorship.attach(view);
  access.attach(view);
  comments.attach(view);
  view.dispatch({ selection: EditorSelection.cursor(view.state.doc.length), scrollIntoView: true });
  suggester.attach(view);
  return view;
}

/**
 * The Versions panel; a restore is one undo step.
 * @param {Page} page
 * @param {EditorView} view
 */
function wireVersions({ id, shared, access, status, panels }, view) {
  const versions = new VersionsPanel(byId("versions-panel"), id, {
    view,
    undoManager: shared.undoManager,
    readOnly: () => access.readOnly,
    onRestored: (message) => status.showNotice(message),
  });
  panels.register(byId("versions-button"), byId("versions-panel"), () => versions.refresh());
}

/**
 * Follow a change of this writer's role while the page is open: a writer who may only view now
 * loses the title, the suggestions and any ghost text, and is told why.
 * @param {Page} page
 * @param {{title: HTMLInputElement, socket: ReconnectingSocket, view: EditorView}} parts
 */
function followRole({ access, shared, roleCheck }, { title, socket, view }) {
  access.subscribe(() => {
    shared.readOnly = access.readOnly;
    setTitleEditable(title, !access.readOnly);
    if (!access.readOnly) {
      socket.start();
      return;
    }
    socket.stop();
    view.dispatch({ effects: dismissGhost.of(null) });
    roleCheck.showReadOnlyNotice();
  });
}

/**
 * `window.cowrite`, the browser tests' view of the page (editor_ui/README.md lists it).
 * @param {Page} page
 * @param {{view: EditorView, suggester: Suggester, socket: ReconnectingSocket}} parts
 */
function exposeHooks({ shared, presence, identity, access, authorship }, { view, suggester, socket }) {
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

/** The editor page, step by step: each step's comment says what it adds. */
async function main() {
  const panels = bindHeader();
  const id = documentId();
  const status = new StatusBar();
  const opened = await openDocument(id);
  if (!opened) return;
  const page = joinDocument(id, opened, panels, status);
  const { settings, help, title, refreshHistorySoon } = wirePanels(page);
  const comments = wireComments(page);
  if (!(await connect(page))) return;
  const { socket, suggester } = wireAssistant(page, settings, refreshHistorySoon);
  const view = buildEditor(page, { suggester, comments, help });
  wireVersions(page, view);
  if (!page.access.readOnly) socket.start();
  view.focus();
  followRole(page, { title, socket, view });
  exposeHooks(page, { view, suggester, socket });
}

main();
