"""Notebook 08's chart with the table behind it: what a device pays to learn what changed, as the mailbox grows.

Why a module of its own: a chart is a face over a sweep (as :mod:`mailstudy.faces.charts`); the notebook calls
:func:`mailbox_sync` so that no logic lives in it, and the figure has its table beside it under ``data/``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from mailstudy.faces.plots import save_figure
from mailstudy.outputs import data_dir
from mailstudy.study.experiment import write_csv_atomically
from mailstudy.study.mailbox_sync import CHANGES, MAILBOXES, METHODS, PROFILES, sync_table

#: One look per method, kept apart where two methods land on one point (CONDSTORE and QRESYNC nearly always do).
LOOK = {"naive": dict(color="#c0392b", marker="o", linestyle="-"),
        "condstore": dict(color="#2471a3", marker="s", linestyle="--", markerfacecolor="none", markersize=9),
        "qresync": dict(color="#1e8449", marker="x", linestyle=":")}
LABEL = {"naive": "naive: UID FETCH 1:* (FLAGS)", "condstore": "CONDSTORE: ... (CHANGEDSINCE m)",
         "qresync": "QRESYNC: SELECT ... (QRESYNC (v m))"}


def sync_chart(rows, profile: str = "4g", title: str | None = None):
    """Two rows of panels, one column per number of changes: kilobytes down and seconds on ``profile`` against
    the mailbox's size (log-log: the sizes span two decades), one line per method; time error bars are the range
    over the seeds (95 % bootstrap interval of the median)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df = df[df["offered"].astype(bool)]
    changes = sorted(df["changes"].unique())
    fig, axes = plt.subplots(2, len(changes), figsize=(4.2 * len(changes), 7.6), squeeze=False, sharex=True,
                             sharey="row")
    for col, k in enumerate(changes):
        for method in METHODS:
            s = df[(df["changes"] == k) & (df["method"] == method)]
            if s.empty:
                continue
            b = s.drop_duplicates("mailbox").sort_values("mailbox")
            axes[0][col].plot(b["mailbox"], b["bytes_down"] / 1000, label=LABEL[method], **LOOK[method])
            t = s[s["profile"] == profile].sort_values("mailbox")
            axes[1][col].errorbar(t["mailbox"], t["duration_s"],
                                  yerr=[t["duration_s"] - t["duration_s_lo"], t["duration_s_hi"] - t["duration_s"]],
                                  capsize=3, label=LABEL[method], **LOOK[method])
        axes[0][col].set_title(f"{k} message{'s' if k != 1 else ''} changed", fontsize=10)
        axes[1][col].set_xlabel("messages in the mailbox")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.xaxis.set_major_formatter(PLAIN)
            ax.yaxis.set_major_formatter(PLAIN)
        axes[1][col].yaxis.set_minor_formatter(PLAIN)  # seconds span less than a decade: label the minor ticks
    axes[0][0].set_ylabel("kilobytes down (protocol)")
    axes[1][0].set_ylabel(f"seconds on {profile} (model)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.03))
    seeds = int(df["seeds"].max()) if "seeds" in df else 1
    fig.suptitle(title or f"What does a device pay to learn what changed, as the mailbox grows? "
                 f"(times: median of {seeds} seeds, 95 % interval)", fontsize=10)
    fig.text(0.5, 0.005, "CONDSTORE (hollow squares) and QRESYNC (crosses) send nearly the same bytes and overlap.",
             ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    return fig


def _plain(value: float, _pos) -> str:
    """Tick labels as numbers with separators (1,000 and 0.5), not powers of ten."""
    return f"{value:,.0f}" if value >= 10 else f"{value:g}"


PLAIN = FuncFormatter(_plain)


def mailbox_sync(server: str = "dovecot", mailboxes=MAILBOXES, changes=CHANGES, profile: str = "4g",
                 profiles=None, seeds=range(10), repeats: int = 3, results: Path | None = None,
                 figures: Path | None = None, progress=None) -> dict:
    """Notebook 08's table (``mailbox_sync_SERVER.csv``) and chart (``mailbox_sync_SERVER.png``) for one server;
    the table's times on ``profiles`` (default: the study's four, :data:`mailstudy.study.mailbox_sync.PROFILES`),
    the chart's on ``profile``."""
    profiles = tuple(profiles) if profiles else PROFILES
    if profile not in profiles:
        profiles = (profile, *profiles)
    rows = sync_table(server, mailboxes, changes, profiles=profiles, seeds=seeds, repeats=repeats, progress=progress)
    import pandas as pd

    df = pd.DataFrame(rows)
    csv = write_csv_atomically(df, (results or data_dir("results")) / f"mailbox_sync_{server}.csv")
    fig = sync_chart(rows, profile)
    png = save_figure(fig, f"mailbox_sync_{server}", figures)
    plt.close(fig)
    return {"table": df, "csv": csv, "png": png}
