"""The report as it is read: each figure in its unit, a row printed per variant and book as it
comes, a Markdown table per book at the end, and medians over runs."""

from __future__ import annotations

import statistics

from bench.writers import MISSED

COLUMNS = [
    ("keystroke savings", "keystroke_savings", "%"),
    ("word precision", "word_precision", "%"),
    ("pauses with a take", "take_share", "%"),
    ("shown", "shown_share", "%"),
    ("repetition", "repetition_rate", "%"),
    ("words shown", "words_shown", "n"),
]
ONLINE_COLUMNS = [
    ("first text p50", "first_text_p50_ms", "ms"),
    ("first text p50 where shown", "shown_first_text_p50_ms", "ms"),
    ("answered p50", "answer_p50_ms", "ms"),
    ("answered in time", "in_time_share", "%"),
]


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if value == MISSED:
        return "missed"
    return {"%": f"{value * 100:.1f}%", "ms": f"{value:.0f} ms"}.get(unit, f"{value:.0f}")


def row(book: str, label: str, values: dict[str, float | None], seconds: float | None = None) -> None:
    """One variant's figures on one book, printed as they come."""
    shown = ", ".join(
        f"{name} {show(values.get(key), unit)}"
        for name, key, unit in COLUMNS + ONLINE_COLUMNS
        if key in values
    )
    took = f" ({seconds:.0f} s)" if seconds is not None else ""
    print(f"{book} | {label}: {shown}{took}", flush=True)


def table(title: str, rows: dict[str, dict[str, float | None]], online: bool) -> str:
    """A Markdown table: one row per variant, one column per figure."""
    columns = COLUMNS + (ONLINE_COLUMNS if online else [])
    lines = [f"\n{title}\n", "| variant | " + " | ".join(name for name, _, _ in columns) + " |"]
    lines.append("|---|" + "---:|" * len(columns))
    for label, values in rows.items():
        lines.append(
            f"| {label} | " + " | ".join(show(values.get(key), unit) for _, key, unit in columns) + " |"
        )
    return "\n".join(lines)


def median(runs: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Each figure's median over runs, those where it was undefined left out."""
    out: dict[str, float | None] = {}
    for key in runs[0]:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = float(statistics.median(v for v in values if v is not None)) if values else None
    return out


def plural(writers: int) -> str:
    return f"{writers} writer{'s' if writers != 1 else ''}"
