"""The study's charts with the tables behind them: each function runs its sweep, writes the CSV and the PNG.

Why a module of its own: a chart is a face over a sweep; the notebooks call these so that no logic lives in a
notebook, and every figure has its table beside it under ``data/``.
"""

from __future__ import annotations

from pathlib import Path

from mailstudy.faces.plots import save_figure
from mailstudy.study.experiment import Experiment, write_csv_atomically

RESULTS = Path("data/results")
FIGURES = Path("data/figures")


def traffic_volume(servers: list[str], message_counts, fractions, read_messages: int, sizes: str = "buchner2009",
                   seed: int = 0, results: Path = RESULTS, figures: Path = FIGURES, cache_dir=None):
    """Notebook 01's three charts and their tables: bytes up/down against mailbox size, bytes against the read
    fraction with the measured break-even, and the overhead share. Returns a dict of frames and paths."""
    from mailstudy.faces.plots import bytes_up_and_down, bytes_vs_read_fraction, overhead_share
    from mailstudy.study.volume import measured_breakeven, read_fraction_sweep, volume_sweep, with_overhead

    what = f"{sizes}, seed {seed}"
    volume = with_overhead(volume_sweep(servers, message_counts, sizes, seed, cache_dir))
    out = {"volume": volume, "volume_csv": write_csv_atomically(volume, Path(results) / "traffic_volume.csv")}
    out["volume_png"] = save_figure(bytes_up_and_down(
        volume, f"Bytes down and up against mailbox size ({what}, read fraction 0, loopback)"),
        "traffic_volume_up_down", figures)
    out["overhead_png"] = save_figure(overhead_share(
        volume[volume["server"] == servers[0]], f"Protocol overhead as a share of bytes down ({what}, {servers[0]})"),
        "traffic_volume_overhead", figures)
    base = Experiment(server=servers[0], messages=read_messages, sizes=sizes, seed=seed)
    reads = read_fraction_sweep(base, fractions, cache_dir)
    even = measured_breakeven(reads)
    out.update(reads=reads, breakeven=even,
               reads_csv=write_csv_atomically(reads, Path(results) / "bytes_vs_read_fraction.csv"))
    out["reads_png"] = save_figure(bytes_vs_read_fraction(
        reads, even, f"Bytes down against read fraction ({read_messages} messages, {what}, {servers[0]})"),
        "bytes_vs_read_fraction", figures)
    return out
