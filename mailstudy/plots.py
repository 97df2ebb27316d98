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
    "POP3 header-first": dict(color="#d62728", linestyle="-", marker="o"),
    "POP3 download-all": dict(color="#d62728", linestyle="--", marker="s"),
}


def bytes_down_vs_mailbox(df, title: str = "Bytes down against mailbox size"):
    """One panel per server: bytes each strategy brought down, against the mailbox's total size (MiB)."""
    servers = sorted(df["server"].unique())
    fig, axes = plt.subplots(1, len(servers), figsize=(6 * len(servers), 4.2), squeeze=False, sharey=True)
    for ax, server in zip(axes[0], servers):
        part = df[df["server"] == server]
        for label, g in part.groupby("label"):
            g = g.groupby("mailbox_bytes", as_index=False)["bytes_down"].median().sort_values("mailbox_bytes")
            ax.plot(g["mailbox_bytes"] / MIB, g["bytes_down"] / MIB, label=label, **STYLE.get(label, {}))
        version = part["server_version"].iloc[0] if "server_version" in part else ""
        ax.set_title(f"{server} ({version})", fontsize=10)
        ax.set_xlabel("mailbox size (MiB)")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("bytes down (MiB)")
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
