"""The study's charts with the tables behind them: each function runs its sweep, writes the CSV and the PNG.

Why a module of its own: a chart is a face over a sweep; the notebooks call these so that no logic lives in a
notebook, and every figure has its table beside it under ``data/``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mailstudy.faces.plots import bytes_down_vs_mailbox, save_figure
from mailstudy.outputs import data_dir
from mailstudy.servers import available_servers
from mailstudy.study.experiment import (
    Experiment,
    four_strategies,
    sweep,
    write_csv_atomically,
)


def first_result(servers: list[str] | None = None, message_counts: tuple[int, ...] = (25, 50, 100, 200),
                 sizes: str = "buchner2009", seed: int = 0, repeats: int = 1,
                 results: Path | None = None, figures: Path | None = None,
                 cache_dir: str | Path | None = data_dir("cache"), progress: bool = True):
    """Bytes down against mailbox size for the four strategies on each server; writes a CSV and a PNG.

    ``results`` and ``figures`` default to ``data/results`` and ``data/figures`` under the project root
    (:func:`mailstudy.outputs.project_root`), never the working directory.

    Returns ``(dataframe, csv_path, png_path)``.
    """
    servers = servers or available_servers()
    cells = [replace(e, messages=n)
             for server in servers
             for e in four_strategies(Experiment(server=server, sizes=sizes, seed=seed, repeats=repeats))
             for n in message_counts]
    df = sweep(cells, cache_dir=cache_dir, progress=progress)
    csv = write_csv_atomically(df, Path(results or data_dir("results")) / "bytes_down_vs_mailbox_size.csv")
    fig = bytes_down_vs_mailbox(df, title=f"Bytes down against mailbox size ({sizes}, seed {seed}, read fraction 0)")
    png = save_figure(fig, "bytes_down_vs_mailbox_size", figures or data_dir("figures"))
    return df, csv, png
