"""The books the writers type: each of ../shared/corpus/ by name, reflowed from Project Gutenberg's
wrapping to one line per paragraph, as a writer types them."""

from __future__ import annotations

import re
from pathlib import Path

from bench.common import CORPUS, FALLBACK

CORPUS_DIR = CORPUS.parent


def reflow(text: str) -> str:
    """Prose as a writer types it: each paragraph on one line, a blank line between paragraphs;
    a Project Gutenberg header and licence (where a file keeps them) and illustrations left out."""
    start = text.find("*** START OF")
    if start >= 0:
        text = text[text.index("\n", start) + 1 :]
    end = text.find("*** END OF")
    if end >= 0:
        text = text[:end]
    paragraphs = (" ".join(part.split()) for part in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p and not p.startswith("[Illustration"))


def books(folder: Path = CORPUS_DIR) -> dict[str, str]:
    """Every book of the corpus by name, reflowed; the tests' short prose where there is none."""
    paths = sorted(folder.glob("*.txt")) or [FALLBACK]
    return {path.stem: reflow(path.read_text(encoding="utf-8")) for path in paths}
