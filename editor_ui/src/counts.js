// Counts for the status bar: words, characters and reading time of the document and of the
// selection, kept per line so that a keystroke recounts only the lines it touched.

import { ViewPlugin } from "@codemirror/view";

/** Words a minute of an adult reading prose silently (about 230, by the usual studies). */
export const WORDS_PER_MINUTE = 230;
// Lines of at most this many characters in all are recounted at once; more (a paste, a large
// remote change, the document's first load) is counted in slices after a pause, so a long
// document never holds up a keystroke.
const SYNC_CHARS = 20_000;
const PAUSE_MS = 250;
const SLICE_MS = 8;

/** @typedef {{words: number, characters: number}} Count */

const wordSegmenter = new Intl.Segmenter(undefined, { granularity: "word" });
const graphemeSegmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

// The Markdown marks a reader never sees. Block marks open a line: a heading's #s, a quote's >s,
// a list item's bullet or number (and a task's box); inline, a link or image keeps its text and
// loses its address, and emphasis, code and strike-through marks go.
const BLOCK_MARKS = /^[ \t]*(?:>[ \t]?)*(?:#{1,6}(?=[ \t]|$)[ \t]*|(?:[-*+]|\d{1,9}[.)])(?=[ \t]|$)[ \t]*(?:\[[ xX]\][ \t]+)?)?/;
// Lines that are all marks: a thematic break, a setext heading's underline, a code fence.
const MARKS_ONLY = /^[ \t]*(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,}|=+[ \t]*|(?:```|~~~).*)$/;
const LINK = /!?\[([^\]\n]*)\]\([^)\n]*\)/g;
const INLINE_MARKS = /\*{1,3}|~~|`+|(?<![\p{L}\p{N}])_{1,3}|_{1,3}(?![\p{L}\p{N}])/gu;
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * A line as a reader sees it: the Markdown marks taken out.
 * @param {string} line
 */
export function readerText(line) {
  if (MARKS_ONLY.test(line)) return "";
  return line.replace(BLOCK_MARKS, "").replace(LINK, "$1").replace(INLINE_MARKS, "");
}

/**
 * Words (Intl.Segmenter's word-like segments, so Chinese, Thai or Russian count as words too) and
 * characters (what a reader perceives as one, spaces included) of text without line breaks.
 * @param {string} line
 * @returns {Count}
 */
function countReaderLine(line) {
  let words = 0;
  for (const segment of wordSegmenter.segment(line)) if (segment.isWordLike) words += 1;
  let characters = line.length;
  if (NON_ASCII.test(line)) {
    characters = 0;
    for (const _ of graphemeSegmenter.segment(line)) characters += 1;
  }
  return { words, characters };
}

/**
 * The count of a text of any number of lines; line breaks are not characters.
 * @param {string} text
 * @returns {Count}
 */
export function countText(text) {
  let words = 0;
  let characters = 0;
  for (const line of text.split("\n")) {
    const count = countReaderLine(readerText(line));
    words += count.words;
    characters += count.characters;
  }
  return { words, characters };
}

/** @param {number} words */
export function readingTime(words) {
  if (words === 0) return "";
  const minutes = Math.round(words / WORDS_PER_MINUTE);
  if (minutes < 1) return "< 1 min read";
  if (minutes < 60) return `${minutes} min read`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${hours} h ${rest} min read` : `${hours} h read`;
}

/**
 * What the status bar shows.
 * @typedef {object} Counts
 * @property {Count | null} document  null until the first count of a long document is done
 * @property {Count | null} selection  null when nothing is selected
 * @property {boolean} pending  a recount is still under way; the numbers are the last complete ones
 */

/**
 * The per-line count of a document; null for lines not counted yet.
 */
class LineCounts {
  /** @param {number} lines */
  constructor(lines) {
    /** @type {Array<Count | null>} */
    this.lines = new Array(lines).fill(null);
    this.words = 0;
    this.characters = 0;
    this.uncounted = lines;
  }

  /**
   * Replace lines `from`..`to` (1-based, inclusive) of the old document by `count` uncounted lines.
   * @param {number} from
   * @param {number} to
   * @param {number} count
   */
  replace(from, to, count) {
    const removed = this.lines.slice(from - 1, to);
    const added = new Array(count).fill(null);
    // splice takes its new items as arguments, which a paste of many lines would run out of.
    if (count < 1_000) this.lines.splice(from - 1, to - from + 1, ...added);
    else this.lines = this.lines.slice(0, from - 1).concat(added, this.lines.slice(to));
    for (const line of removed) {
      if (line) {
        this.words -= line.words;
        this.characters -= line.characters;
      } else {
        this.uncounted -= 1;
      }
    }
    this.uncounted += count;
  }

  /**
   * @param {number} number 1-based
   * @param {string} text
   */
  count(number, text) {
    if (this.lines[number - 1]) return;
    const line = countText(text);
    this.lines[number - 1] = line;
    this.words += line.words;
    this.characters += line.characters;
    this.uncounted -= 1;
  }
}

/**
 * The counting plugin: calls `show` with fresh counts after each change of text or selection
 * (for every writer's change, remote ones included), at once when that is cheap, after a pause
 * when it is not. Read-only pages count too.
 * @param {(counts: Counts) => void} show
 */
export function documentCounts(show) {
  return ViewPlugin.define((view) => new CountsPlugin(view, show));
}

class CountsPlugin {
  /**
   * @param {import("@codemirror/view").EditorView} view
   * @param {(counts: Counts) => void} show
   */
  constructor(view, show) {
    this.view = view;
    this.show = show;
    this.counts = new LineCounts(view.state.doc.lines);
    /** The last complete document count, shown while a recount is under way. */
    /** @type {Count | null} */
    this.shown = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.refresh();
  }

  /** @param {import("@codemirror/view").ViewUpdate} update */
  update(update) {
    if (update.docChanged) {
      // Lines before the first change and after the last one keep their counts.
      let fromA = Infinity;
      let toA = -1;
      let toB = -1;
      update.changes.iterChangedRanges((a1, a2, _b1, b2) => {
        fromA = Math.min(fromA, a1);
        toA = Math.max(toA, a2);
        toB = Math.max(toB, b2);
      });
      const start = update.startState.doc;
      const first = start.lineAt(fromA).number;
      const last = start.lineAt(toA).number;
      const newLast = update.state.doc.lineAt(toB).number;
      this.counts.replace(first, last, newLast - first + 1);
    }
    if (update.docChanged || update.selectionSet) this.refresh();
  }

  refresh() {
    const doc = this.view.state.doc;
    if (this.uncountedChars(doc) <= SYNC_CHARS) this.countAll(doc, Infinity);
    const selection = this.selectionCount();
    const pending = this.counts.uncounted > 0 || selection === undefined;
    if (!pending) this.shown = { words: this.counts.words, characters: this.counts.characters };
    this.show({ document: this.shown, selection: selection || null, pending });
    clearTimeout(this.timer);
    if (pending) this.timer = setTimeout(() => this.countSlice(), PAUSE_MS);
  }

  /** @param {import("@codemirror/state").Text} doc */
  uncountedChars(doc) {
    let chars = 0;
    const lines = this.counts.lines;
    for (let i = 0; i < lines.length && chars <= SYNC_CHARS; i++) {
      if (!lines[i]) chars += doc.line(i + 1).length + 1;
    }
    return chars;
  }

  /**
   * Count uncounted lines until `deadline` (performance.now()); whether all are counted.
   * @param {import("@codemirror/state").Text} doc
   * @param {number} deadline
   */
  countAll(doc, deadline) {
    const lines = this.counts.lines;
    for (let i = 0; i < lines.length; i++) {
      if (lines[i]) continue;
      this.counts.count(i + 1, doc.line(i + 1).text);
      if (performance.now() > deadline) return this.counts.uncounted === 0;
    }
    return true;
  }

  countSlice() {
    const done = this.countAll(this.view.state.doc, performance.now() + SLICE_MS);
    if (done) this.refresh();
    else this.timer = setTimeout(() => this.countSlice(), 0);
  }

  /**
   * The selection's count; null when nothing is selected, undefined when it is too large to
   * count before the document's lines are (it is counted after the pause).
   * @returns {Count | null | undefined}
   */
  selectionCount() {
    const { state } = this.view;
    const ranges = state.selection.ranges.filter((range) => !range.empty);
    if (!ranges.length) return null;
    let size = 0;
    for (const range of ranges) size += range.to - range.from;
    if (size > SYNC_CHARS && this.counts.uncounted > 0) return undefined;
    let words = 0;
    let characters = 0;
    for (const range of ranges) {
      const count = size > SYNC_CHARS ? this.largeRange(range.from, range.to) : countText(state.sliceDoc(range.from, range.to));
      words += count.words;
      characters += count.characters;
    }
    return { words, characters };
  }

  /**
   * A long selection: its whole lines from the per-line counts, its partial ends counted here.
   * @param {number} from
   * @param {number} to
   * @returns {Count}
   */
  largeRange(from, to) {
    const doc = this.view.state.doc;
    const first = doc.lineAt(from);
    const last = doc.lineAt(to);
    if (first.number === last.number) return countText(doc.sliceString(from, to));
    const head = countText(doc.sliceString(from, first.to));
    const tail = countText(doc.sliceString(last.from, to));
    let words = head.words + tail.words;
    let characters = head.characters + tail.characters;
    for (let n = first.number + 1; n < last.number; n++) {
      const line = this.counts.lines[n - 1];
      if (line) {
        words += line.words;
        characters += line.characters;
      }
    }
    return { words, characters };
  }

  destroy() {
    clearTimeout(this.timer);
  }
}
