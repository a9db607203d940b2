"""Writing a benchmark's table into its marked section of ``docs/benchmarks.md``.

Each benchmark owns the text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``;
the prose around the markers is written by hand and kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def write_section(name: str, body: str, doc: Path = DOC) -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if begin not in text:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    before, _, rest = text.partition(begin)
    _, _, after = rest.partition(end)
    doc.write_text(f"{before}{begin}\n{body}\n{end}{after}")


def median(values: Sequence[float]) -> float:
    """The median of repeated measurements (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def spread(values: Sequence[float], digits: int = 1) -> str:
    """``median (min-max)`` of repeated measurements; the value alone when there is one."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"
