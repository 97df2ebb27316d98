"""Charts of study results, drawn with matplotlib from tidy rows; no protocol logic here.

Why: every figure in the notebooks and in ``data/figures/`` is drawn by one function here, so a chart looks the
same wherever it is rebuilt and a notebook stays a few lines long.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # headless runs fall back to the Agg backend by themselves
from matplotlib.ticker import NullFormatter, ScalarFormatter

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


def save_figure(fig, name: str, folder: str | Path = "data/figures") -> Path:
    """Save ``fig`` as ``folder/name.png`` (written to a temporary name first, then moved into place)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    tmp = folder / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)
    return path


def bytes_per_exchange(frame, title: str = "Bytes per exchange"):
    """Bytes up and down of each exchange of one session (a :func:`~mailstudy.protocol.metrics.exchanges_frame`),
    as paired bars on a log scale, labelled with the command."""
    import numpy as np

    n = len(frame)
    fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 0.35 * n + 3)), 3.6))
    x = np.arange(n)
    ax.bar(x - 0.2, frame["bytes_up"].clip(lower=1), width=0.4, label="up (client → server)", color="#1f5fa8")
    ax.bar(x + 0.2, frame["bytes_down"].clip(lower=1), width=0.4, label="down (server → client)", color="#2e7d32")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([str(c) for c in frame["command"]], rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("exchange (command, in the order sent)")
    ax.set_ylabel("TCP payload (bytes, log)")
    ax.grid(True, axis="y", alpha=0.25)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


VERDICT_COLORS = {"supported": "#2e7d32", "contradicted": "#c62828", "holds-only-when": "#ef6c00",
                  "not-a-protocol-property": "#757575"}


def claims_chart(ledger, title: str = "The article's claims: verdicts"):
    """One row per claim (first server's verdict), coloured by verdict: the ledger of notebook 06 at a glance."""
    first = ledger.drop_duplicates("key")
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(first) + 1.4))
    for i, (_, r) in enumerate(first.iloc[::-1].iterrows()):
        ax.barh(i, 1, color=VERDICT_COLORS.get(r["verdict"], "#999"))
        ax.text(0.01, i, f"{r['claim']}", va="center", fontsize=8, color="white")
        ax.text(1.01, i, r["verdict"], va="center", fontsize=8)
    ax.set_yticks([])
    ax.set_xticks([])
    ax.set_xlim(0, 1.3)
    ax.set_xlabel("verdict of each claim (measured in this run; the ledger gives the numbers)")
    ax.set_title(title, fontsize=10)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig
