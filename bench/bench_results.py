"""Where a bench script puts what it measured: ``bench/results/NAME.md`` (the table it printed) and, when it has
rows, ``bench/results/NAME.csv``, each written whole or not at all (:mod:`mailstudy.outputs`). One place, so
every script's results land in the same folder the same way."""

from __future__ import annotations

from pathlib import Path

from mailstudy.outputs import write_atomically

#: bench/results/ (git ignores it: results are measured on each machine, the dated tables live in the docstrings)
RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, text: str, rows: list[dict] | None = None) -> Path:
    """Write ``text`` to ``bench/results/NAME.md`` and, with ``rows``, a table of them to ``NAME.csv``; returns
    the Markdown file's path."""
    RESULTS.mkdir(exist_ok=True)
    if rows is not None:
        import pandas as pd

        write_atomically(RESULTS / f"{name}.csv", pd.DataFrame(rows).to_csv(index=False))
    return write_atomically(RESULTS / f"{name}.md", text)
