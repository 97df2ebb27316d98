"""Notebook 01's listing-cost chart with its table: header-first's bytes as a share of download-all, per strategy
and per client profile.

Why a module of its own: a chart is a face over a table (as :mod:`mailstudy.faces.charts`); the notebook calls
:func:`listing_costs` so no logic lives in it, and the figure has its table beside it under ``data/``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from mailstudy.faces.plots import save_figure
from mailstudy.outputs import data_dir
from mailstudy.study.experiment import write_csv_atomically
from mailstudy.study.listing_share import listing_share

PROTOCOL_COLOR = {"imap": "#2471a3", "pop3": "#c0392b"}


def share_chart(summary, title: str | None = None):
    """Horizontal bars (linear axis, percent of the same protocol's download-all) for every strategy and client,
    IMAP above POP3, each with its 95 % interval and its value written at the bar's end."""
    s = summary.sort_values(["protocol", "kind", "share"], ascending=[True, False, True]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9.5, 0.42 * len(s) + 1.8))
    y = list(range(len(s)))[::-1]
    pct = 100 * s["share"]
    err = [100 * (s["share"] - s["share_lo"]), 100 * (s["share_hi"] - s["share"])]
    ax.barh(y, pct, color=[PROTOCOL_COLOR[p] for p in s["protocol"]], alpha=0.85)
    ax.errorbar(pct, y, xerr=err, fmt="none", ecolor="#222222", capsize=3)
    for yi, (v, hi) in zip(y, zip(pct, 100 * s["share_hi"])):
        ax.text(hi + 1.5, yi, f"{v:.1f} %", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{n}  ({'strategy' if k == 'strategy' else 'client'})" for n, k in zip(s["name"], s["kind"])],
                       fontsize=8.5)
    ax.set_xlabel("bytes down with nothing opened, % of the same protocol's download-all")
    ax.set_xlim(0, max(110.0, float((100 * s["share_hi"]).max()) + 12))
    ax.axvline(100, color="#555555", linewidth=0.8, linestyle=":")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.85) for c in PROTOCOL_COLOR.values()]
    fig.legend(handles, ["IMAP", "POP3"], loc="lower right", ncol=2, fontsize=8, frameon=False)
    seeds = int(s["seeds"].max())
    ax.set_title(title or f"What does listing the mailbox cost against downloading it all? "
                 f"(median of {seeds} seeds, 95 % interval)", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def listing_costs(server: str = "embedded", messages: int = 30, sizes: str = "buchner2009", seeds=range(10),
                  executor=None, results: Path | None = None, figures: Path | None = None) -> dict:
    """Notebook 01's listing-cost table (``listing_share.csv``, per seed ``listing_share_seeds.csv``) and chart
    (``listing_share.png``)."""
    out = listing_share(server, messages, sizes, seeds, executor=executor)
    results = Path(results or data_dir("results"))
    out["summary_csv"] = write_csv_atomically(out["summary"], results / "listing_share.csv")
    out["seeds_csv"] = write_csv_atomically(out["seeds"], results / "listing_share_seeds.csv")
    fig = share_chart(out["summary"])
    out["png"] = save_figure(fig, "listing_share", figures)
    plt.close(fig)
    return out
