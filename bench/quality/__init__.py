"""Suggestion quality (`make bench`): are the words on screen the ones the writer types next?

Online (the default): simulated writers type real prose from each book in ../shared/corpus/ at a
human pace, as bench/writers.py's do (same pauses, same takes, `--writers 1 8`), against a real
Cowrite server started once per variant with its policy in COWRITE_SUGGEST_* settings; `--peer`
plays the same writers against llama-server on the same GGUF. Offline (`--offline`): no server;
the model runs in-process behind an Engine, and at `--positions` pauses spread through each book
(2,000 characters of text so far ending as bench.writers' `pause_points` end a phrase: half after
the space, half right after the word) the request is built as the socket builds it
(`policy.to_request`) and its text kept as the socket keeps it (`policy.final_text`). Books are
reflowed first: one line per paragraph, as a writer types them, not Project Gutenberg's wrapping.

Figures, per book (a pause is one suggestion; what is "on screen" is the `done` text when the
suggestion ended before the writer resumed, else what had streamed by then):
- keystroke savings: characters taken with Tab, less one Tab per take, over the characters of the
  text produced. Offline, each position is a pause after a phrase of 3 to 9 words: the text
  produced there is that phrase plus what was taken, so Σ(taken - 1 per take) / Σ(phrase + taken).
- word precision: of the whole words on screen, the share that are what the writer types next,
  counted from the suggestion's start up to the first that is not (leading space as `taken`
  treats it). A trailing word counts only where it is known to be whole: Cowrite releases whole
  words only (its policy's `whole_words`); llama-server's last word is whole when it stopped by
  itself (end of text, a stop string, a sentence end), not at its token limit or a confidence cut.
- pauses with a take: the share where the writer took at least one word.
- shown: the share with any text on screen when the writer resumed.
- repetition: of the suggestions shown, the share with a word 3-gram (case and punctuation aside)
  that appeared before, within the suggestion or in the 200 characters before the cursor.
- online only: first text p50 (a pause with no text before the writer resumed is a miss, as in
  bench.writers), and answered in time: text on screen, or a `done` with none (a decision to show
  nothing), before the writer resumed.

Variants: `--policy default plain` names starting points; `--max-tokens 8 16 --span free sentence
--confidence 0 0.3` (and --run-confidence, --no-repeat, --repetition-penalty, --temperature) run
the cross product of every knob given over each of them. llama-server gets the knobs it has:
temperature, max tokens, `repeat_penalty`, and client-side, from its `n_probs` probabilities, the
same confidence and sentence cuts (streaming/stopping.py's rules); not Cowrite's token healing,
repetition guard, whole words or final filter, which is what its rows leave out. Offline,
Cowrite's requests are seeded by position, so variants at temperature > 0 sample alike where they
can, and have all the time they need (the engine is kept full on purpose).

Results: bench/results/quality.json (offline: quality-offline.json) and a Markdown table per book.
Online with the defaults takes about 15 minutes a variant on 2 cores (twice that with `--peer`);
offline about a minute a book and variant (llama-server's rows about the same, far more where the
machine is busy: its threads spin).
"""

# The modules, one concept each: books (the corpus, reflowed), figures (a pause judged, and the
# figures over many), variant (what a run compares), recorder (what a simulated writer saw),
# peerclient (llama-server as a client plays it), servers (the processes played against), online
# and inprocess (the two modes), report (rows and tables), __main__ (the command line).

from __future__ import annotations

from bench.common import ROOT
from bench.quality.books import books, reflow
from bench.quality.figures import Judged, judge, offline_figures, repeats, word_counts
from bench.quality.inprocess import offline, positions
from bench.quality.peerclient import ClientCut, pieces_of
from bench.quality.recorder import Recorder
from bench.quality.variant import Variant, server_env, variants

__all__ = [
    "ROOT",
    "ClientCut",
    "Judged",
    "Recorder",
    "Variant",
    "books",
    "judge",
    "offline",
    "offline_figures",
    "pieces_of",
    "positions",
    "reflow",
    "repeats",
    "server_env",
    "variants",
    "word_counts",
]
