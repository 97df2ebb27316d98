"""Notebook 04's charts: bytes per day against device count, what the devices see, losses, flag sync.

Why a module of its own: several client profiles often give the same figure (every body-syncing client
downloads each message once per device), so these charts must show coinciding lines apart: each client has its
own marker, coinciding ones are offset sideways and named in a note, and a panel per server is drawn only where
the servers differ. The shared rules are in :mod:`mailstudy.faces.chart_kit`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from mailstudy.faces.chart_kit import (MARKERS, MIB, dodge, interval_note, overlap_note, overlapping, plot_series,
                                       same_across, summary, titles, yerr)
from mailstudy.faces.plots import plain_log_axes

#: One colour per client profile, the same in every chart of notebook 04 (IMAP clients blues and greens, POP3
#: ones reds and browns).
CLIENT_COLORS = {"thunderbird": "#1f77b4", "thunderbird-online": "#17becf", "k9": "#2ca02c", "neomutt": "#9467bd",
                 "mbsync": "#7f7f7f", "thunderbird-pop3": "#d62728", "thunderbird-pop3-headers": "#ff7f0e",
                 "k9-pop3": "#8c564b", "pop3-delete": "#e377c2"}


def _client_style(client: str, i: int) -> dict:
    pop3 = "pop3" in client
    return dict(color=CLIENT_COLORS.get(client, f"C{i % 10}"), marker=MARKERS[i % len(MARKERS)],
                linestyle="--" if pop3 else "-", markerfacecolor="none" if pop3 else None, markersize=7)


def by_client(ax, df, column: str, scale: float = 1.0, step: float = 0.05) -> list[list[str]]:
    """One line per client profile against the device count (on a base-2 axis: counts double), interval bars
    when the table has them; coinciding lines are shifted sideways by ``step`` of a doubling each. Returns the
    groups that coincide."""
    clients = list(dict.fromkeys(df["clients"]))
    parts = {c: summary(df[df["clients"] == c], "devices", column) for c in clients}
    groups = overlapping({c: p["y"].to_numpy(float) for c, p in parts.items()})
    where = {c: (k, len(g)) for g in groups for k, c in enumerate(g)}
    for i, (c, p) in enumerate(parts.items()):
        k, n = where.get(c, (0, 1))
        plot_series(ax, p["devices"].to_numpy(float) * 2 ** dodge(n, k, step), p, c, scale, **_client_style(c, i))
    ax.set_xscale("log", base=2)
    ticks = sorted(df["devices"].unique())
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("devices on the account (count, doubling)")
    ax.grid(True, which="both", alpha=0.25)
    return groups


def bytes_per_day_vs_devices(df, title: str = "How many bytes a day does each added device cost?",
                             conditions: str = ""):
    """Bytes down per simulated day of the whole fleet against its device count, one line per client profile;
    one panel per server, or one panel when the servers give the same bytes (said in the subtitle)."""
    servers = sorted(df["server"].unique())
    merged = len(servers) > 1 and same_across(df, "server", "bytes_down_per_day")
    panels = [(", ".join(servers), df[df["server"] == servers[0]])] if merged or len(servers) == 1 else \
        [(s, df[df["server"] == s]) for s in servers]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels) + 1.5, 5.2), squeeze=False)
    for ax, (server, part) in zip(axes[0], panels):
        groups = by_client(ax, part, "bytes_down_per_day", 1 / MIB)
        plain_log_axes(ax, "y")
        overlap_note(ax, groups)
        ax.set_ylabel("bytes down per day, all devices (MiB, log)")
        ax.set_title(f"server: {server}", fontsize=10)
    axes[0][-1].legend(fontsize=8, loc="upper left", title="client profile", title_fontsize=8)
    same = f"{' and '.join(servers)} give the same bytes (within 2 %): one panel" if merged else ""
    titles(fig, title, conditions, "; ".join(s for s in (same, interval_note(df, "bytes_down_per_day")) if s))
    return fig


def device_agreement(df, title: str = "Do the devices download twice, see every message and agree on what is read?",
                     conditions: str = ""):
    """Against device count: duplicate downloads, availability (the worst device), read-state agreement and
    median staleness, one line per client profile (coinciding ones offset and named)."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.6))
    panels = (("duplicate_downloads", "duplicate downloads (bodies)", 1.0),
              ("availability_min", "availability, worst device (% listed)", 100.0),
              ("read_agreement", "read-state agreement (% of messages)", 100.0),
              ("staleness_median_s", "staleness, median (minutes)", 1 / 60))
    for ax, (column, label, scale) in zip(axes.flat, panels):
        groups = by_client(ax, df, column, scale)
        overlap_note(ax, groups, "upper left" if column == "duplicate_downloads"
                     else "lower left")
        ax.set_ylabel(label)
        ax.set_title(label.split(" (")[0], fontsize=10)
        if scale == 100.0:
            ax.set_ylim(-5, 108)
    axes[0][0].legend(fontsize=8, loc="center left", title="client profile", title_fontsize=8)
    titles(fig, title, conditions, interval_note(df, [p[0] for p in panels]))
    return fig


def losses_chart(df, title: str = "Which setups lose messages, and how many?", conditions: str = ""):
    """Per client profile: messages no device and not the server holds, with all devices kept and after one
    device is lost, and messages held by one device only (POP3 delete's risk). Every value is written on its
    bar, zeros included."""
    clients = list(dict.fromkeys(df["clients"]))
    x = np.arange(len(clients))
    fig, ax = plt.subplots(figsize=(10.5, 5))
    kept = df[df["lose_device"].isna()]
    lost = df[df["lose_device"].notna()]
    series = ((-0.27, kept, "messages_only_on_one_device", "only on one device (none lost)", "#ef6c00"),
              (0.0, kept, "messages_lost", "lost, all devices kept", "#757575"),
              (0.27, lost, "messages_lost", "lost after device 0 is lost", "#c62828"))
    for dx, part, column, label, color in series:
        s = summary(part, "clients", column).set_index("clients").reindex(clients)
        bars = ax.bar(x + dx, s["y"].to_numpy(float), 0.27, label=label, color=color)
        err = yerr(s)
        if err is not None:
            ax.errorbar(x + dx, s["y"].to_numpy(float), yerr=err, fmt="none", ecolor="black", capsize=2, lw=0.8)
        ax.bar_label(bars, fmt="%g", fontsize=7)  # a zero is a result too: say it
    ax.set_xticks(x)
    ax.set_xticklabels(clients, rotation=20, ha="right")
    ax.set_xlabel("client profile (every device runs it)")
    ax.set_ylabel("messages (count)")
    ax.set_ylim(bottom=0)
    ax.grid(True, axis="y", alpha=0.25)
    ax.legend(fontsize=8)
    titles(fig, title, conditions, interval_note(df, ["messages_lost", "messages_only_on_one_device"]))
    return fig


def condstore_chart(df, title: str = "What does flag sync cost as the mailbox grows, with and without CONDSTORE?",
                    conditions: str = ""):
    """Bytes down per day of the fleet against the mailbox's size at the start, naive flag sync against
    CONDSTORE's CHANGEDSINCE."""
    fig, ax = plt.subplots(figsize=(8.5, 5))
    for i, (condstore, g) in enumerate(df.groupby("condstore")):
        s = summary(g, "start_messages", "bytes_down_per_day")
        plot_series(ax, s["start_messages"].to_numpy(float), s,
                    "CONDSTORE (UID FETCH ... CHANGEDSINCE)" if condstore else "naive (FLAGS of every message)",
                    1 / MIB, marker="o" if condstore else "s", linestyle="-" if condstore else "--",
                    color="#2e7d32" if condstore else "#6a1b9a")
    ax.set_xlabel("messages in the mailbox at the start (count)")
    ax.set_ylabel("bytes down per day, all devices (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8)
    titles(fig, title, conditions, interval_note(df, "bytes_down_per_day"))
    return fig


def three_protocol_fleet(summary, conditions: str = ""):
    """Notebook 04's JMAP fleet (:func:`mailstudy.study.jmap_cell.fleet_three_protocols`): bytes down per day
    against the device count, one line per client profile named with its protocol, on one Cyrus."""
    named = summary.assign(clients=[f"{c} ({p.upper()})" for c, p in zip(summary["clients"], summary["protocol"])])
    return bytes_per_day_vs_devices(named, title="IMAP, POP3 and JMAP devices on one Cyrus: bytes a day as "
                                                 "devices are added", conditions=conditions)
