"""Charts of study results, drawn with matplotlib from tidy rows; no protocol logic here.

Why: every figure in the notebooks and in ``data/figures/`` is drawn by one function here, so a chart looks the
same wherever it is rebuilt and a notebook stays a few lines long.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # headless runs fall back to the Agg backend by themselves
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from mailstudy.outputs import data_dir, publish, tmp_beside

MIB = 1024 * 1024
STYLE = {
    "IMAP header-first": dict(color="#1f77b4", linestyle="-", marker="o"),
    "IMAP download-all": dict(color="#1f77b4", linestyle="--", marker="s"),
    "POP3 header-first": dict(color="#d62728", linestyle="-", marker="o", markerfacecolor="none", markersize=9),
    "POP3 download-all": dict(color="#d62728", linestyle="--", marker="s", markerfacecolor="none",
                              markersize=9),
}


def _finish(fig, ax, title: str, legend: bool = True):
    """The last touches every one-panel chart shares: legend, title, tight layout."""
    if legend:
        ax.legend(fontsize=8)
    ax.set_title(_wrap(title, fig), fontsize=10)
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
    return _finish(fig, ax, title)


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
    ax.set_title(_wrap(title, fig), fontsize=10)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def _wrap(title: str, fig, fontsize: float = 10) -> str:
    """A long title (they carry seed, server and profile) broken into lines that fit ``fig``'s width."""
    import textwrap

    width = int(fig.get_figwidth() * 72 / (0.62 * fontsize))  # characters per line at about 0.62 em each
    return "\n".join(textwrap.wrap(title, width)) or title


def _plain_log_axes(ax, which: str = "xy") -> None:
    """Log axes ticked at 1, 2, 5 x 10^k and labelled 0.5, 1, 2 rather than 5x10^-1, 10^0."""
    axes = []
    if "x" in which:
        ax.set_xscale("log")
        axes.append(ax.xaxis)
    if "y" in which:
        ax.set_yscale("log")
        axes.append(ax.yaxis)
    ax.grid(True, which="both", alpha=0.25)
    for axis in axes:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


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
            _plain_log_axes(ax)
            ax.set_ylabel(f"{column.replace('_', ' ')} ({unit}, log)")
        axes[0][col].set_title(server, fontsize=10)
        axes[1][col].set_xlabel("mailbox size (MiB)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(_wrap(title, fig, 12))
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
        hollow = dict(markerfacecolor="none", markersize=9, lw=1.2) if protocol == "pop3" else dict(lw=2.5)
        ax.plot(hf.index, hf.values / MIB, marker="o", color=c, label=f"{protocol.upper()} header-first", **hollow)
        ax.axhline(whole / MIB, color=c, linestyle="--", label=f"{protocol.upper()} download-all")
        f = breakeven.get(protocol)
        if f is not None:
            ax.axvline(f, color=c, linestyle=":", alpha=0.8)
            ax.annotate(f"break-even {protocol.upper()}: {f:.2f}", (f, whole / MIB), xytext=(5, -15 - 15 *
                        (protocol == "pop3")), textcoords="offset points", fontsize=8, color=c)
    ax.set_xlabel("read fraction (share of messages the user opens)")
    ax.set_ylabel("bytes down (MiB; the two protocols nearly overlap)")
    ax.grid(True, alpha=0.25)
    return _finish(fig, ax, title)


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
    return _finish(fig, ax, title)


LABEL_ORDER = ["IMAP header-first", "IMAP download-all", "POP3 header-first", "POP3 download-all"]


def list_and_open_bars(df, title: str = "Time to list and time to open"):
    """Per profile (groups) and strategy (bars): the time to list (left) and the time to open one message
    (right), each bar the median of the repeats with a whisker up to the 95th percentile."""
    import numpy as np

    profiles = list(dict.fromkeys(df["profile"]))
    labels = [lb for lb in LABEL_ORDER if lb in set(df["label"])]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / max(len(labels), 1)
    x = np.arange(len(profiles))
    for ax, column, what in ((axes[0], "time_to_list_s", "time to list"),
                             (axes[1], "open_median_s", "time to open a message")):
        for i, label in enumerate(labels):
            part = df[df["label"] == label]
            if column == "time_to_list_s":
                med = [part[part["profile"] == p][column].median() for p in profiles]
                p95 = [part[part["profile"] == p][column].quantile(0.95) for p in profiles]
            else:  # each session already gives its median and p95 open wait; take their medians
                med = [part[part["profile"] == p]["open_median_s"].median() for p in profiles]
                p95 = [part[part["profile"] == p]["open_p95_s"].median() for p in profiles]
            med = np.array(med, dtype=float)
            p95 = np.array(p95, dtype=float)
            color = STYLE.get(label, {}).get("color")
            hatch = "//" if "download-all" in label else None
            ax.bar(x + (i - (len(labels) - 1) / 2) * width, med, width, label=label, color=color, alpha=0.85,
                   hatch=hatch, edgecolor="white")
            ax.errorbar(x + (i - (len(labels) - 1) / 2) * width, med, yerr=[np.zeros_like(med),
                        np.nan_to_num(np.maximum(p95 - med, 0))], fmt="none", ecolor="black", capsize=2, lw=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels(profiles)
        _plain_log_axes(ax, "y")
        ax.set_xlabel("network profile")
        ax.set_ylabel(f"{what} (s, log)")
        ax.set_title(what, fontsize=10)
    axes[1].text(0.01, 0.98, "download-all opens nothing on demand: no bar", transform=axes[1].transAxes,
                 fontsize=7, color="#555", va="top")
    axes[0].legend(fontsize=8)
    fig.suptitle(_wrap(title + "; bars: medians, whiskers: 95th percentiles", fig, 12))
    fig.tight_layout()
    return fig


def model_vs_measured_scatter(df, title: str = "Model against measured"):
    """Each cell's modelled time against its measured time, log-log, with y = x and the ±10 % band."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.5, 6))
    markers = {"duration_s": "o", "time_to_list_s": "^"}
    for (time_name, profile), g in df.groupby(["time", "profile"]):
        ax.scatter(g["measured"], g["model"], marker=markers.get(time_name, "o"), s=28, alpha=0.8,
                   label=f"{time_name} · {profile}")
    lo = max(min(df["measured"].min(), df["model"].min()) * 0.7, 1e-4)
    hi = max(df["measured"].max(), df["model"].max()) * 1.4
    line = np.geomspace(lo, hi, 50)
    ax.plot(line, line, color="black", lw=1, label="y = x")
    ax.fill_between(line, line * 0.9, line * 1.1, color="grey", alpha=0.2, label="±10 %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured through the link (s, log)")
    ax.set_ylabel("model (s, log)")
    within = (df["error"].abs() <= 0.10).mean() * 100
    worst = 100 * df["error"].abs().max()
    ax.set_title(f"{_wrap(title, fig)}\n{within:.0f} % of points within 10 %, worst {worst:.1f} %",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def waiting_vs_rtt(df, title: str = "Total waiting against RTT"):
    """Modelled session duration (left) and time to list (right) of each strategy against the profile's RTT."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, column, what in ((axes[0], "duration_s", "whole session"), (axes[1], "time_to_list_s", "time to list")):
        for label, g in df.groupby("label"):
            g = g.sort_values("rtt_s")
            ax.plot(1000 * g["rtt_s"].clip(lower=0.05e-3), g[column], label=label, **STYLE.get(label, {}))
        _plain_log_axes(ax)
        marks = df.drop_duplicates("profile").sort_values("rtt_s")
        ax.set_xticks([1000 * max(r, 0.05e-3) for r in marks["rtt_s"]])
        # upright labels: 4g (55 ms) and lte-2012 (70 ms) sit too close on a log axis for slanted ones
        ax.set_xticklabels([f"{p} {1000 * r:g}" for p, r in zip(marks["profile"], marks["rtt_s"])], rotation=90,
                           fontsize=7)
        ax.set_xlabel("profile and its round-trip time (ms, log; loopback drawn at 0.05 ms)")
        ax.set_ylabel(f"{what} (s, log)")
        ax.grid(True, which="both", alpha=0.25)
        ax.set_title(what, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle(_wrap(title, fig, 12))
    fig.tight_layout()
    return fig


def pipelining_chart(df, title: str = "What pipelining and batching do"):
    """Round trips (left) and modelled duration on each profile (right) per variant."""
    import numpy as np

    variants = list(dict.fromkeys(df["variant"]))
    profiles = list(dict.fromkeys(df["profile"]))
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.5 * len(variants) + 2.5))
    first = df.drop_duplicates("variant").set_index("variant").loc[variants]
    y = np.arange(len(variants))
    axes[0].barh(y, first["round_trips"], color=["#1f77b4" if v.startswith("IMAP") else "#d62728" for v in variants])
    for yi, v in zip(y, first["round_trips"]):
        axes[0].text(v, yi, f" {int(v)}", va="center", fontsize=8)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(variants, fontsize=8)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("round trips (client flights)")
    h = 0.8 / max(len(profiles), 1)
    for i, p in enumerate(profiles):
        part = df[df["profile"] == p].set_index("variant").loc[variants]
        axes[1].barh(y + (i - (len(profiles) - 1) / 2) * h, part["duration_s"], h, label=p)
    axes[1].set_yticks(y)
    axes[1].set_yticklabels([])
    axes[1].invert_yaxis()
    _plain_log_axes(axes[1], "x")
    axes[1].set_xlabel("modelled session duration (s, log)")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(True, axis="x", which="both", alpha=0.25)
    fig.suptitle(_wrap(title, fig, 12))
    fig.tight_layout()
    return fig


def breakeven_chart(df, title: str = "Break-even read fraction per profile"):
    """Per profile, the read fraction above which header-first costs more than download-all: in bytes, and in
    total waiting (list plus every open), for IMAP and POP3. Values beyond [0, 1] are clipped and marked."""
    import numpy as np

    profiles = list(dict.fromkeys(df["profile"]))
    fig, ax = plt.subplots(figsize=(10, 4.8))
    x = np.arange(len(profiles))
    series = [(p, col) for p in ("imap", "pop3") for col in ("waiting_r", "bytes_r")]
    w = 0.8 / len(series)
    for i, (protocol, col) in enumerate(series):
        part = df[df["protocol"] == protocol].set_index("profile").reindex(profiles)
        raw = part[col].astype(float).to_numpy()
        shown = np.clip(np.nan_to_num(raw, nan=0.0), 0, 1.05)
        color = "#1f77b4" if protocol == "imap" else "#d62728"
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * w, shown, w, color=color,
                      alpha=1.0 if col == "waiting_r" else 0.45, label=f"{protocol.upper()} {col[:-2]}")
        for b, v in zip(bars, raw):
            if np.isnan(v) or v > 1 or v < 0:
                ax.text(b.get_x() + b.get_width() / 2, b.get_height(), "never" if np.isnan(v) or v > 1 else "<0",
                        ha="center", va="bottom", fontsize=6)
    ax.axhline(1.0, color="black", lw=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels(profiles)
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("network profile (by RTT)")
    ax.set_ylabel("break-even read fraction (share opened)")
    ax.grid(True, axis="y", alpha=0.25)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(_wrap(title, fig), fontsize=10)
    fig.tight_layout()
    return fig


def _by_client(ax, df, y, scale: float = 1.0):
    for client, g in df.groupby("clients"):
        g = g.sort_values("devices")
        pop3 = "pop3" in client
        ax.plot(g["devices"], g[y].astype(float) * scale, marker="s" if pop3 else "o",
                linestyle="--" if pop3 else "-", label=client)
    ax.set_xlabel("devices on the account")
    ax.grid(True, which="both", alpha=0.25)
    ax.set_xticks(sorted(df["devices"].unique()))


def bytes_per_day_vs_devices(df, title: str = "Bytes per day against device count"):
    """Bytes down per simulated day of the whole fleet against its device count, one line per client profile,
    one panel per server."""
    servers = sorted(df["server"].unique())
    fig, axes = plt.subplots(1, len(servers), figsize=(6.5 * len(servers), 4.8), squeeze=False)
    for ax, server in zip(axes[0], servers):
        _by_client(ax, df[df["server"] == server], "bytes_down_per_day", 1 / MIB)
        _plain_log_axes(ax, "y")
        ax.set_ylabel("bytes down per day, all devices (MiB, log)")
        ax.set_title(server, fontsize=10)
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(_wrap(title, fig, 12))
    fig.tight_layout()
    return fig


def device_agreement(df, title: str = "What the devices see"):
    """Against device count: duplicate downloads, availability (the worst device), read-state agreement and
    median staleness, one line per client profile."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = (("duplicate_downloads", "duplicate downloads (bodies)", 1.0),
              ("availability_min", "availability, worst device (% listed)", 100.0),
              ("read_agreement", "read-state agreement (% of messages)", 100.0),
              ("staleness_median_s", "staleness, median (minutes)", 1 / 60))
    for ax, (column, label, scale) in zip(axes.flat, panels):
        _by_client(ax, df, column, scale)
        ax.set_ylabel(label)
        ax.set_title(label.split(" (")[0], fontsize=10)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(_wrap(title, fig, 12))
    fig.tight_layout()
    return fig


def losses_chart(df, title: str = "Messages lost"):
    """Per client profile: messages no device and not the server holds, with all devices kept and after one
    device is lost, and messages held by one device only (POP3 delete's risk)."""
    import numpy as np

    clients = list(dict.fromkeys(df["clients"]))
    x = np.arange(len(clients))
    fig, ax = plt.subplots(figsize=(10, 4.6))
    kept = df[df["lose_device"].isna()].set_index("clients").reindex(clients)
    lost = df[df["lose_device"].notna()].set_index("clients").reindex(clients)
    for dx, values, label, color in ((-0.27, kept["messages_only_on_one_device"], "only on one device (none lost)",
                                      "#ef6c00"),
                                     (0.0, kept["messages_lost"], "lost, all devices kept", "#757575"),
                                     (0.27, lost["messages_lost"], "lost after device 0 is lost", "#c62828")):
        bars = ax.bar(x + dx, values.astype(float), 0.27, label=label, color=color)
        ax.bar_label(bars, fontsize=7)  # a zero is a result too: say it
    ax.set_xticks(x)
    ax.set_xticklabels(clients, rotation=20, ha="right")
    ax.set_xlabel("client profile (every device runs it)")
    ax.set_ylabel("messages")
    ax.grid(True, axis="y", alpha=0.25)
    return _finish(fig, ax, title)


def condstore_chart(df, title: str = "Flag sync: naive against CONDSTORE"):
    """Bytes down per day of the fleet against the mailbox's size at the start, naive flag sync against
    CONDSTORE's CHANGEDSINCE."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for condstore, g in df.groupby("condstore"):
        g = g.sort_values("start_messages")
        ax.plot(g["start_messages"], g["bytes_down_per_day"] / MIB, marker="o",
                linestyle="-" if condstore else "--",
                label="CONDSTORE (UID FETCH ... CHANGEDSINCE)" if condstore else "naive (FLAGS of every message)")
    ax.set_xlabel("messages in the mailbox at the start")
    ax.set_ylabel("bytes down per day, all devices (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.25)
    return _finish(fig, ax, title)
