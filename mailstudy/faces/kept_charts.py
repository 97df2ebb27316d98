"""Notebook 03's kept-connection chart: one sync of each client as it ships (with COMPRESS where it asks for it)
against reconnect-and-poll, in modelled seconds on each link of the table.

Why a module of its own: a chart is a face over a table (:mod:`mailstudy.study.kept_sync` makes the table); the
notebook calls :func:`kept_sync_chart` and keeps no drawing code.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from mailstudy.faces.plots import save_figure
from mailstudy.study.kept import VARIANTS

VARIANT_COLOR = {"reconnect-and-poll": "#c0392b", "as shipped": "#2471a3", "as shipped + COMPRESS": "#7fb3d5"}


def kept_sync_figure(table, title: str = "One sync as each client ships against reconnect-and-poll"):
    """One panel per ``sync_s_<link>`` column: horizontal bars per client, one per variant, seconds written at
    each bar's end; on a summary over seeds (:func:`mailstudy.study.kept_sync.kept_sync_summary`) the bars are
    medians and their error bars the 95 % interval."""
    links = [c for c in table.columns if c.startswith("sync_s_") and not c.endswith(("_lo", "_hi"))]
    clients = list(dict.fromkeys(table["client"]))
    names = [name for name, _b, _z in VARIANTS]
    fig, axes = plt.subplots(1, len(links), figsize=(5.2 * len(links), 0.9 * len(clients) + 1.8), squeeze=False)
    height = 0.8 / len(names)
    for ax, col in zip(axes[0], links):
        for k, name in enumerate(names):
            rows = table[table["variant"] == name].set_index("client")
            present = [c for c in clients if c in rows.index]
            ys = [len(clients) - 1 - i + 0.4 - (k + 0.5) * height for i, c in enumerate(clients) if c in rows.index]
            xs = [float(rows.loc[c, col]) for c in present]
            err = None
            if f"{col}_lo" in rows.columns:  # a summary over seeds: the median's 95 % interval
                err = [[x - float(rows.loc[c, f"{col}_lo"]) for x, c in zip(xs, present)],
                       [float(rows.loc[c, f"{col}_hi"]) - x for x, c in zip(xs, present)]]
            ax.barh(ys, xs, height=height, color=VARIANT_COLOR[name], label=name, xerr=err,
                    error_kw={"capsize": 2, "elinewidth": 0.8})
            ends = [x + e for x, e in zip(xs, err[1])] if err else xs  # the label starts past the interval
            for y, x, end in zip(ys, xs, ends):
                ax.text(end, y, f" {x:.2f}", va="center", fontsize=7)
        ax.set_yticks(range(len(clients)), clients[::-1], fontsize=8)
        ax.set_xlabel(f"modelled seconds on {col[len('sync_s_'):]}", fontsize=8)
        ax.margins(x=0.15)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(names), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def kept_sync_chart(table, folder: str | Path | None = None) -> Path:
    """Draw :func:`kept_sync_figure` and save it as ``kept_sync_times.png`` (under ``data/figures`` by default)."""
    fig = kept_sync_figure(table)
    try:
        return save_figure(fig, "kept_sync_times", folder)
    finally:
        plt.close(fig)


__all__ = ["kept_sync_chart", "kept_sync_figure"]
