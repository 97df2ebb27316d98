"""Charts of study results, drawn with matplotlib from tidy rows; no protocol logic here.

Why: every figure in the notebooks and in ``data/figures/`` is drawn by one function here, so a chart looks the
same wherever it is rebuilt and a notebook stays a few lines long.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # headless runs fall back to the Agg backend by themselves
from matplotlib.ticker import NullFormatter, ScalarFormatter

from mailstudy.outputs import data_dir, publish, tmp_beside

MIB = 1024 * 1024
STYLE = {
    "IMAP header-first": dict(color="#1f77b4", linestyle="-", marker="o"),
    "IMAP download-all": dict(color="#1f77b4", linestyle="--", marker="s"),
    "POP3 header-first": dict(color="#d62728", linestyle="-", marker="o", markerfacecolor="none", markersize=9),
    "POP3 download-all": dict(color="#d62728", linestyle="--", marker="s", markerfacecolor="none",
                              markersize=9),
}


def bytes_down_vs_mailbox(df, title: str = "Bytes down against mailbox size"):
    """Bytes each strategy brought down against the mailbox's total size, one column per server.

    Top: bytes down (MiB, log-log, so header-first and download-all fit on one chart). Bottom: the same as a
    share of the mailbox, where the protocols' framing shows (IMAP and POP3 markers differ so overlaps show).
    """
    servers = sorted(df["server"].unique())
    fig, axes = plt.subplots(2, len(servers), figsize=(6 * len(servers), 7.5), squeeze=False, sharex=True)
    for col, server in enumerate(servers):
        part = df[df["server"] == server]
        top, bottom = axes[0][col], axes[1][col]
        for label, g in part.groupby("label"):
            g = g.groupby("mailbox_bytes", as_index=False)["bytes_down"].median().sort_values("mailbox_bytes")
            style = STYLE.get(label, {})
            top.plot(g["mailbox_bytes"] / MIB, g["bytes_down"] / MIB, label=label, **style)
            bottom.plot(g["mailbox_bytes"] / MIB, 100 * g["bytes_down"] / g["mailbox_bytes"], label=label,
                        **style)
        version = part["server_version"].iloc[0] if "server_version" in part else ""
        top.set_title(f"{server} ({version})", fontsize=10)
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.25)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        bottom.set_xlabel("mailbox size (MiB)")
    axes[0][0].set_ylabel("bytes down (MiB)")
    axes[1][0].set_ylabel("bytes down as % of the mailbox")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_figure(fig, name: str, folder: str | Path | None = None) -> Path:
    """Save ``fig`` as ``folder/name.png``, whole or not at all (:mod:`mailstudy.outputs`); ``folder`` defaults
    to ``data/figures`` under the project root, never the working directory."""
    folder = Path(folder) if folder is not None else data_dir("figures")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    tmp = tmp_beside(path)
    try:
        fig.savefig(tmp, dpi=120, format="png")
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
