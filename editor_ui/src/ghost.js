// Ghost text: the suggestion drawn after the cursor, and the keys that take or dismiss it.
// Everything that decides a suggestion's fate happens in the state field, so each fate is exactly
// one transition; the suggestion controller reads the endings and reports them to the server.
// Ghost text is private to this writer: it reaches the shared document only when taken.

import { EditorSelection, Facet, Prec, StateEffect, StateField, Transaction } from "@codemirror/state";
import { Decoration, EditorView, WidgetType, keymap } from "@codemirror/view";

/**
 * One suggestion while it is on screen.
 * @typedef {object} Ghost
 * @property {string} id          the request id, echoed by the server
 * @property {number} pos         where the ghost text is drawn (always the cursor); it moves with
 *                               edits elsewhere, including other writers'
 * @property {number | null} suggestion  the server's history record, from `done`
 * @property {number} n           how many alternatives were asked for
 * @property {string[]} alternatives  text received so far, per alternative
 * @property {number} index      the alternative on screen
 * @property {string} taken      the start of that alternative already in the document
 * @property {number} keyed      how much of `taken` came with Tab or Ctrl+→; the rest the writer
 *                               typed through, which is their own text, not the model's
 * @property {boolean} generating  more text may still arrive
 * @property {boolean} shown     some text of it has been on screen
 */

/** @typedef {{ghost: Ghost | null, ended: Ghost[]}} GhostSlot */

/** @type {Ghost[]} */
const NONE_ENDED = [];

/** Start a new suggestion at the cursor (ends any previous one). */
export const startGhost = StateEffect.define();
/** Streamed text for one alternative: {id, index, text}. */
export const appendGhost = StateEffect.define();
/**
 * The server finished the suggestion: {id, alternatives?: string[], suggestion?: number}; the
 * alternatives, when given, are the final texts, which replace what streamed.
 */
export const finishGhost = StateEffect.define();
/** Dismiss the suggestion on screen, if any. */
export const dismissGhost = StateEffect.define();
/** Move to the next (+1) or previous (-1) alternative. */
const cycleGhost = StateEffect.define();
/** Text of the ghost the same transaction inserts: {text, all}. */
const takeGhost = StateEffect.define();

/**
 * Taken ghost text, as it enters the document.
 * @typedef {object} Taking
 * @property {number} from  where the AI-written run starts: the taken text only (what the writer
 *                          typed through before it is theirs)
 * @property {number} to
 * @property {number | null} suggestion
 */

/**
 * How a take reaches the document. Without one, the transaction is simply dispatched; the shared
 * document provides one that dispatches it and records the text as AI-authored in one step.
 * @typedef {(view: EditorView, spec: import("@codemirror/state").TransactionSpec, taking: Taking) => void} TakeHandler
 * @type {Facet<TakeHandler, TakeHandler | null>}
 */
export const takeHandler = Facet.define({ combine: (handlers) => handlers[handlers.length - 1] || null });

/**
 * The part of the ghost not yet in the document.
 * @param {Ghost | null} ghost
 */
export function visibleText(ghost) {
  if (!ghost) return "";
  const text = ghost.alternatives[ghost.index] || "";
  return text.startsWith(ghost.taken) ? text.slice(ghost.taken.length) : "";
}

/**
 * Whether a ghost that ended gave the writer all of its alternative.
 * @param {Ghost} ghost
 */
export function fullyTaken(ghost) {
  return ghost.taken.length > 0 && ghost.taken === ghost.alternatives[ghost.index];
}

/**
 * @param {Ghost} ghost
 * @param {Partial<Ghost>} change
 * @returns {Ghost}
 */
function withChange(ghost, change) {
  const next = { ...ghost, ...change };
  if (visibleText(next)) next.shown = true;
  return next;
}

/**
 * An alternative can be shown only if it agrees with what the writer already took.
 * @param {Ghost} ghost
 * @param {number} index
 */
function offersMore(ghost, index) {
  const text = ghost.alternatives[index] || "";
  return text.startsWith(ghost.taken) && text.length > ghost.taken.length;
}

/**
 * Typing that matches the ghost's start is taken from it instead of ending it.
 * @param {Ghost} ghost
 * @param {import("@codemirror/state").Transaction} tr
 * @returns {Ghost | null} the ghost after typing through, or null when the change diverges
 */
function typeThrough(ghost, tr) {
  /** @type {string | null} */
  let inserted = null;
  let pure = true;
  tr.changes.iterChanges((fromA, toA, _fromB, _toB, text) => {
    if (inserted !== null || fromA !== ghost.pos || toA !== ghost.pos) pure = false;
    inserted = text.toString();
  });
  if (!pure || !inserted) return null;
  if (!visibleText(ghost).startsWith(inserted)) return null;
  return withChange(ghost, { taken: ghost.taken + inserted, pos: ghost.pos + inserted.length });
}

/**
 * @param {GhostSlot} slot
 * @param {import("@codemirror/state").Transaction} tr
 * @returns {GhostSlot}
 */
function updateSlot(slot, tr) {
  /** @type {Ghost | null} */
  let ghost = slot.ghost;
  /** @type {Ghost[]} */
  const ended = [];
  const end = () => {
    if (ghost) ended.push(ghost);
    ghost = null;
  };

  const take = tr.effects.find((effect) => effect.is(takeGhost));
  if (ghost && take) {
    const taken = ghost.taken + take.value.text;
    const keyed = ghost.keyed + take.value.text.length;
    ghost = withChange(ghost, { taken, keyed, pos: ghost.pos + take.value.text.length });
    if (take.value.all || (fullyTaken(ghost) && !ghost.generating)) end();
  } else if (ghost && tr.docChanged) {
    // Only this writer's keys type through; another writer's text at the same spot ends it.
    const typed = tr.annotation(Transaction.remote) ? null : typeThrough(ghost, tr);
    if (typed) {
      ghost = typed;
      if (fullyTaken(ghost) && !ghost.generating) end();
    } else if (tr.changes.touchesRange(ghost.pos)) {
      end();
    } else {
      // An edit elsewhere (another writer's, usually): the ghost moves with its text.
      ghost = { ...ghost, pos: tr.changes.mapPos(ghost.pos) };
    }
  }

  for (const effect of tr.effects) {
    if (effect.is(startGhost)) {
      if (ghost) end();
      ghost = {
        id: effect.value.id,
        pos: effect.value.pos,
        n: effect.value.n,
        alternatives: Array.from({ length: effect.value.n }, () => ""),
        index: 0,
        taken: "",
        keyed: 0,
        suggestion: null,
        generating: true,
        shown: false,
      };
    } else if (ghost && effect.is(appendGhost) && effect.value.id === ghost.id) {
      ghost = appendText(ghost, effect.value.index, effect.value.text);
    } else if (ghost && effect.is(finishGhost) && effect.value.id === ghost.id) {
      ghost = settle(ghost, effect.value.alternatives, effect.value.suggestion);
      // Nothing left to offer: the writer took it all, or the model had nothing to say.
      if (fullyTaken(ghost) || !visibleText(ghost)) end();
    } else if (ghost && effect.is(cycleGhost)) {
      ghost = cycle(ghost, effect.value);
    } else if (ghost && effect.is(dismissGhost)) {
      end();
    }
  }

  // Ghost text belongs to one cursor position; moving away, selecting or clicking ends it.
  const selection = tr.state.selection;
  if (ghost && (selection.ranges.length > 1 || !selection.main.empty || selection.main.head !== ghost.pos)) {
    end();
  }
  if (ghost === slot.ghost && !ended.length && !slot.ended.length) return slot;
  return { ghost, ended: ended.length ? ended : NONE_ENDED };
}

/**
 * @param {Ghost} ghost
 * @param {number} index
 * @param {string} text
 */
function appendText(ghost, index, text) {
  if (index < 0 || index >= ghost.alternatives.length || !text) return ghost;
  const alternatives = ghost.alternatives.slice();
  alternatives[index] += text;
  const next = withChange(ghost, { alternatives });
  // Until the writer picks, show the first alternative that has something to say.
  if (!visibleText(ghost) && !ghost.taken && index !== ghost.index && !alternatives[ghost.index]) {
    return withChange(next, { index });
  }
  return next;
}

/**
 * The suggestion as the server settled it. Its final texts are authoritative: the server may end
 * an alternative shorter than it streamed (a half word dropped), empty it, or drop it (no entry:
 * empty too). Without them (the connection was lost) what streamed stays.
 * @param {Ghost} ghost
 * @param {string[] | undefined} finals the texts from the `done` frame, by alternative
 * @param {number | undefined} suggestion the history record from the `done` frame
 */
function settle(ghost, finals, suggestion) {
  const alternatives = finals ? ghost.alternatives.map((_, index) => finals[index] || "") : ghost.alternatives;
  /** @type {Ghost} */
  let next = {
    ...ghost,
    alternatives,
    generating: false,
    suggestion: typeof suggestion === "number" ? suggestion : ghost.suggestion,
  };
  // The alternative on screen lost its text: show another that still has some.
  if (!visibleText(next)) {
    const other = alternatives.findIndex((_, index) => offersMore(next, index));
    if (other >= 0) next = { ...next, index: other };
  }
  // A suggestion the server emptied produced nothing: what streamed of it does not count as
  // shown (it gets no feedback), unless the writer took some of it.
  if (finals && !alternatives.some(Boolean)) next.shown = ghost.taken.length > 0;
  return withChange(next, {});
}

/**
 * @param {Ghost} ghost
 * @param {number} step
 */
function cycle(ghost, step) {
  const count = ghost.alternatives.length;
  for (let k = 1; k < count; k++) {
    const index = (((ghost.index + step * k) % count) + count) % count;
    if (offersMore(ghost, index)) return withChange(ghost, { index });
  }
  return ghost;
}

class GhostWidget extends WidgetType {
  /**
   * @param {string} text
   * @param {string} counter
   */
  constructor(text, counter) {
    super();
    this.text = text;
    this.counter = counter;
  }

  /** @param {GhostWidget} other */
  eq(other) {
    return other.text === this.text && other.counter === this.counter;
  }

  toDOM() {
    const wrap = document.createElement("span");
    wrap.className = "cm-ghost-wrap";
    const ghost = document.createElement("span");
    ghost.className = "cm-ghost";
    ghost.dataset.testid = "ghost";
    ghost.textContent = this.text;
    wrap.append(ghost);
    if (this.counter) {
      const counter = document.createElement("span");
      counter.className = "cm-ghost-counter";
      counter.setAttribute("aria-hidden", "true");
      counter.textContent = this.counter;
      wrap.append(counter);
    }
    return wrap;
  }

  ignoreEvent() {
    return false;
  }
}

/** The suggestion state; read it with `currentGhost` and `endedGhosts`. */
export const ghostField = StateField.define({
  /** @returns {GhostSlot} */
  create: () => ({ ghost: null, ended: NONE_ENDED }),
  update: updateSlot,
  provide: (field) =>
    EditorView.decorations.from(field, (slot) => {
      const text = visibleText(slot.ghost);
      if (!slot.ghost || !text) return Decoration.none;
      const counter = slot.ghost.n > 1 ? `${slot.ghost.index + 1}/${slot.ghost.n}` : "";
      const widget = Decoration.widget({ widget: new GhostWidget(text, counter), side: 1 });
      return Decoration.set([widget.range(slot.ghost.pos)]);
    }),
});

/** @param {import("@codemirror/state").EditorState} state */
export function currentGhost(state) {
  return state.field(ghostField).ghost;
}

/**
 * The suggestions whose fate this view update decided, in order.
 * @param {import("@codemirror/view").ViewUpdate} update
 * @returns {Ghost[]}
 */
export function endedGhosts(update) {
  return update.transactions.flatMap((tr) => tr.state.field(ghostField).ended);
}

/**
 * Insert `text` from the ghost at its position and move the cursor past it.
 * @param {EditorView} view
 * @param {string} text
 * @param {boolean} all
 */
function take(view, text, all) {
  const ghost = currentGhost(view.state);
  if (!ghost || !text) return false;
  /** @type {import("@codemirror/state").TransactionSpec} */
  const spec = {
    changes: { from: ghost.pos, insert: text },
    selection: EditorSelection.cursor(ghost.pos + text.length),
    effects: takeGhost.of({ text, all }),
    userEvent: "input.complete",
    scrollIntoView: true,
  };
  const taking = {
    from: ghost.pos,
    to: ghost.pos + text.length,
    suggestion: ghost.suggestion,
  };
  const handler = view.state.facet(takeHandler);
  if (handler) handler(view, spec, taking);
  else view.dispatch(spec);
  return true;
}

/** @param {EditorView} view */
export function acceptAll(view) {
  return take(view, visibleText(currentGhost(view.state)), true);
}

// A word with the space before it and the punctuation around it, so ", and" or " (big)" come
// in one step and no step leaves a lone space behind.
const NEXT_WORD = /^\s*[^\s\p{L}\p{N}]*[\p{L}\p{N}_'’-]*[^\s\p{L}\p{N}]*/u;

/**
 * The next word-accept step of `text`.
 * @param {string} text
 */
export function nextWord(text) {
  const match = NEXT_WORD.exec(text);
  return match && match[0] ? match[0] : text.slice(0, 1);
}

/** @param {EditorView} view */
export function acceptWord(view) {
  const text = visibleText(currentGhost(view.state));
  return take(view, nextWord(text), false);
}

/**
 * Tab (and Shift+Tab) with no suggestion to take: a writer who pressed it a moment before the
 * ghost text came goes on typing, so the focus stays in an editable editor and nothing is inserted.
 * Keyboard users leave the editor with Escape then Tab, or Ctrl+M (CodeMirror's tab-focus mode).
 * @param {EditorView} view
 */
function keepFocus(view) {
  return view.state.facet(EditorView.editable);
}

/** @param {EditorView} view */
export function dismiss(view) {
  const ghost = currentGhost(view.state);
  if (!ghost) return false;
  const wasVisible = Boolean(visibleText(ghost));
  view.dispatch({ effects: dismissGhost.of(null) });
  // A pending request with nothing on screen is cancelled quietly; Escape keeps its usual job.
  return wasVisible;
}

/**
 * @param {number} step
 * @returns {(view: EditorView) => boolean}
 */
function cycleCommand(step) {
  return (view) => {
    const ghost = currentGhost(view.state);
    if (!ghost || ghost.n < 2 || !visibleText(ghost)) return false;
    view.dispatch({ effects: cycleGhost.of(step) });
    return true;
  };
}

const ghostTheme = EditorView.baseTheme({
  ".cm-ghost": {
    color: "var(--ghost, #686d74)",
    whiteSpace: "pre-wrap",
    pointerEvents: "none",
  },
  ".cm-ghost-counter": {
    marginLeft: "0.5em",
    padding: "0 0.35em",
    borderRadius: "3px",
    font: "11px/1.6 system-ui, sans-serif",
    color: "var(--muted, #6b6f76)",
    border: "1px solid var(--line, #ddd)",
    verticalAlign: "middle",
    userSelect: "none",
  },
});

/** The ghost-text extension: state, decoration, look and keys. */
export function ghostText() {
  return [
    ghostField,
    ghostTheme,
    // Above the default keymaps, so Tab, Escape and Ctrl+Arrow act on the ghost first and fall
    // through to their usual meaning when there is none.
    Prec.highest(
      keymap.of([
        { key: "Tab", run: (view) => acceptAll(view) || keepFocus(view), shift: keepFocus },
        { key: "Ctrl-ArrowRight", run: acceptWord },
        { key: "Escape", run: dismiss },
        { key: "Alt-]", run: cycleCommand(1) },
        { key: "Alt-[", run: cycleCommand(-1) },
      ]),
    ),
  ];
}
