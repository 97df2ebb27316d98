"""Charts of study results, drawn with matplotlib from tidy rows; no protocol logic here.

Why: every figure in the notebooks and in ``data/figures/`` is drawn by one function here, so a chart looks the
same wherever it is rebuilt and a notebook stays a few lines long.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # headless runs fall back to the Agg backend by themselves

MIB = 1024 * 1024
STYLE = {
    "IMAP header-first": dict(color="#1f77b4", linestyle="-", marker="o"),
    "IMAP download-all": dict(color="#1f77b4", linestyle="--", marker="s"),
    "POP3 header-first": dict(color="#d62728", linestyle="-", marker="o", markerfacecolor="none", markersize=9),
    "POP3 download-all": dict(color="#d62728", linestyle="--", marker="s", markerfacecolor="none",
                              markersize=9),
}


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


def bytes_up_and_down(df, title: str = "Bytes down and up against mailbox size"):
    """Bytes down (top) and up (bottom) of each strategy against the mailbox's size, one column per server."""
    servers = sorted(df["server"].unique())
    fig, axes = plt.subplots(2, len(servers), figsize=(6 * len(servers), 7.5), squeeze=False, sharex=True)
    for col, server in enumerate(servers):
        part = df[df["server"] == server]
        for row, (column, unit, scale) in enumerate((("bytes_down", "MiB", MIB), ("bytes_up", "KiB", 1024))):
            ax = axes[row][col]
            for label, g in part.groupby("label"):
                g = g.groupby("mailbox_bytes", as_index=False)[column].median().sort_values("mailbox_bytes")
                ax.plot(g["mailbox_bytes"] / MIB, g[column] / scale, label=label, **STYLE.get(label, {}))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.25)
            ax.set_ylabel(f"{column.replace('_', ' ')} ({unit})")
        axes[0][col].set_title(server, fontsize=10)
        axes[1][col].set_xlabel("mailbox size (MiB)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def bytes_vs_read_fraction(df, breakeven: dict, title: str = "Bytes down against the read fraction"):
    """Header-first's bytes down as the user opens more messages, against download-all's (dashed), with the
    measured break-even read fraction of each protocol marked."""
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {"imap": "#1f77b4", "pop3": "#d62728"}
    for protocol, part in df.groupby("protocol"):
        hf = part[part["strategy"] == "header-first"].groupby("read_fraction")["bytes_down"].median()
        whole = part[part["strategy"] == "download-all"]["bytes_down"].median()
        c = colors.get(protocol)
        ax.plot(hf.index, hf.values / MIB, marker="o", color=c, label=f"{protocol.upper()} header-first")
        ax.axhline(whole / MIB, color=c, linestyle="--", label=f"{protocol.upper()} download-all")
        f = breakeven.get(protocol)
        if f is not None:
            ax.axvline(f, color=c, linestyle=":", alpha=0.8)
            ax.annotate(f"break-even {protocol.upper()}: {f:.2f}", (f, whole / MIB), xytext=(5, -15 - 15 *
                        (protocol == "pop3")), textcoords="offset points", fontsize=8, color=c)
    ax.set_xlabel("read fraction (share of messages the user opens)")
    ax.set_ylabel("bytes down (MiB)")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def overhead_share(df, title: str = "Protocol overhead as a share of the bytes down"):
    """Per strategy, the share of bytes down that is protocol, not mail, against the mailbox size."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for label, g in df.groupby("label"):
        g = g.groupby("mailbox_bytes", as_index=False)["overhead_share"].median().sort_values("mailbox_bytes")
        ax.plot(g["mailbox_bytes"] / MIB, 100 * g["overhead_share"], label=label, **STYLE.get(label, {}))
    ax.set_xscale("log")
    ax.set_xlabel("mailbox size (MiB)")
    ax.set_ylabel("overhead (% of bytes down)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
