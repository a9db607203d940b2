"""Writing a benchmark's table into its marked section of ``docs/benchmarks.md``.

Each benchmark owns the text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``;
the prose around the markers is written by hand and kept.
"""

from __future__ import annotations

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
