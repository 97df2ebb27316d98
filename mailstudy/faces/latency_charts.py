"""Notebook 03's charts: time to list and to open, the model's error, waiting against RTT and bandwidth,
pipelining and batching, the break-even read fraction.

Why a module of its own: these charts share one layout rule (times differ by orders of magnitude between
profiles, and bars on a log axis have no meaningful length, so each profile gets its own linear panel) and one
colour rule (colour is the protocol, hatch or line style the strategy). The shared rules are in
:mod:`mailstudy.faces.chart_kit`.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from mailstudy.faces.chart_kit import (LABEL_ORDER, NAMES, PROTOCOL_COLORS, STYLE, dodge, fmt_ms, fmt_rate,
                                       has_interval, interval_note, overlap_note, overlapping, plot_series, summary,
                                       titles, yerr)
from mailstudy.errors import MailstudyError
from mailstudy.faces.plots import plain_log_axes


def _protocol(label: str) -> str:
    return label.split()[0].lower()


def _bar_style(label: str) -> dict:
    """Colour is the protocol; download-all is hatched."""
    return dict(facecolor=PROTOCOL_COLORS.get(_protocol(label), "#777"),
                hatch="//" if "download-all" in label else None, edgecolor="white", alpha=0.9)


def _profile_name(df, profile) -> str:
    """"4g (55 ms, 21.3 Mbit/s)": the name with the two figures that move a time (from the row, else the
    named profile)."""
    row = df[df["profile"] == profile].iloc[0]
    if "rtt_s" not in row or "down_bps" not in row:
        from mailstudy.link import get_profile

        try:
            row = get_profile(profile).params()
        except MailstudyError:
            return str(profile)
    return f"{profile} ({fmt_ms(row['rtt_s'])}, {fmt_rate(row['down_bps'])})"


def list_and_open_bars(df, title: str = "How long does the user wait for the list, and for each message opened?",
                       conditions: str = ""):
    """Per profile (one panel each: its own linear axis) and strategy (bars): the time to list (top row) and the
    time to open one message (bottom row). With ``X_lo``/``X_hi`` the whiskers are the 95 % interval over
    seeds; without, each bar is the median of the repeats and its whisker reaches their 95th percentile.
    Download-all opens nothing on demand: its place says so in words."""
    profiles = list(dict.fromkeys(df["profile"]))
    labels = [lb for lb in LABEL_ORDER if lb in set(df["label"])]
    fig, axes = plt.subplots(2, len(profiles), figsize=(3.6 * len(profiles) + 1.2, 7.2), squeeze=False)
    x = np.arange(len(labels))
    interval = has_interval(df, "time_to_list_s")
    for col, profile in enumerate(profiles):
        part = df[df["profile"] == profile]
        for row, column in enumerate(("time_to_list_s", "open_median_s")):
            ax = axes[row][col]
            for i, label in enumerate(labels):
                g = part[part["label"] == label]
                s = summary(g.assign(one=0), "one", column)
                med = float(s["y"].iloc[0]) if len(s) else math.nan
                if math.isnan(med):
                    ax.text(i, 0, "no open:\nall came\nwith the list", ha="center", va="bottom", fontsize=7,
                            color="#555")
                    continue
                ax.bar(i, med, 0.7, label=label, **_bar_style(label))
                err = yerr(s)
                if err is None and len(g) > 1:
                    top = g["open_p95_s" if column == "open_median_s" else column].quantile(0.95)
                    err = np.array([[0.0], [max(top - med, 0.0)]])
                if err is not None:
                    ax.errorbar(i, med, yerr=err, fmt="none", ecolor="black", capsize=3, lw=0.9)
                ax.annotate(f"{med:.3g}", (i, med), xytext=(-3, 2), textcoords="offset points", ha="right",
                            va="bottom", fontsize=7)  # left of the whisker, never under it
            ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.12)
            ax.set_xticks(x)
            ax.set_xticklabels([lb.replace(" ", "\n", 1) for lb in labels], fontsize=7)
            ax.set_ylabel(f"{NAMES[column]} (s)")
            ax.set_xlabel("strategy")
            ax.grid(True, axis="y", alpha=0.25)
            if row == 0:
                ax.set_title(_profile_name(df, profile), fontsize=9)
    handles = [Patch(**_bar_style(lb), label=lb) for lb in labels]
    fig.legend(handles=handles, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    note = interval_note(df, "time_to_list_s") if interval else "bars: medians of the repeats, whiskers: 95th percentile"
    titles(fig, title, conditions, note + "; each profile on its own linear axis")
    fig.subplots_adjust(bottom=0.12)
    return fig


def model_vs_measured_scatter(df, title: str = "How far is the model from the measured time?", conditions: str = ""):
    """The model's relative error against the time measured through the link, in % on a linear axis, one row
    per profile and strategy; marker = which time (list or whole session), colour = protocol; the ±10 % band
    shaded and each error written beside its point (the worst is never hidden by a log scale)."""
    keys = list(dict.fromkeys(zip(df["profile"], df["label"])))
    times = list(dict.fromkeys(df["time"]))
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(keys) + 2.2))
    markers = {"duration_s": "o", "time_to_list_s": "^"}
    y = np.arange(len(keys))
    for j, t in enumerate(times):
        part = df[df["time"] == t].set_index(["profile", "label"])
        for i, key in enumerate(keys):
            if key not in part.index:
                continue
            r = part.loc[key]
            r = r.iloc[0] if getattr(r, "ndim", 1) > 1 else r
            e = 100 * float(r["error"])
            yi = i + dodge(len(times), j, 0.28)
            xerr = None
            if "error_lo" in r and not math.isnan(float(r["error_lo"])):
                xerr = [[max(e - 100 * float(r["error_lo"]), 0)], [max(100 * float(r["error_hi"]) - e, 0)]]
            ax.errorbar(e, yi, xerr=xerr, fmt=markers.get(t, "o"), color=PROTOCOL_COLORS.get(_protocol(key[1])),
                        ms=7, capsize=3)
            ax.annotate(f"{e:+.1f} %", (e, yi), xytext=(7, -3), textcoords="offset points", fontsize=7)
    ax.axvspan(-10, 10, color="grey", alpha=0.15)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{p} · {lb}" for p, lb in keys], fontsize=8)
    ax.invert_yaxis()
    span = max(15.0, 1.25 * float(np.nanmax(np.abs(100 * df["error"].astype(float)))))
    ax.set_xlim(-span, span)
    ax.set_xlabel("model − measured, relative to measured (%)")
    ax.set_ylabel("profile · strategy")
    ax.grid(True, axis="x", alpha=0.25)
    handles = [Line2D([], [], marker=markers.get(t, "o"), color="#555", ls="none", label=NAMES.get(t, t))
               for t in times]
    handles += [Line2D([], [], marker="s", color=c, ls="none", label=p.upper())
                for p, c in PROTOCOL_COLORS.items() if any(_protocol(lb) == p for _, lb in keys)]
    handles.append(Patch(color="grey", alpha=0.15, label="within ±10 %"))
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    within = (df["error"].abs() <= 0.10).mean() * 100
    worst = df.loc[df["error"].abs().idxmax()]
    note = (f"{within:.0f} % of figures within 10 %; worst {100 * worst['error']:+.1f} % "
            f"({worst['profile']}, {worst['label']}, {NAMES.get(worst['time'], worst['time'])})")
    titles(fig, title, conditions, "; ".join(s for s in (note, interval_note(df, "error")) if s))
    return fig


def waiting_vs_rtt(rtt_df, bandwidth_df=None, title: str = "How does the wait grow with RTT, and with bandwidth?",
                   conditions: str = ""):
    """Modelled time to list (top) and whole session (bottom) of each strategy: against the RTT at one fixed
    bandwidth (left) and against the bandwidth at one fixed RTT (right), so neither hides behind the other.
    Without ``bandwidth_df`` only the left column is drawn."""
    frames = [("rtt_s", rtt_df)] + ([("down_bps", bandwidth_df)] if bandwidth_df is not None else [])
    fig, axes = plt.subplots(2, len(frames), figsize=(6.2 * len(frames) + 0.6, 8), squeeze=False)
    for col, (x_col, df) in enumerate(frames):
        fixed = _fixed(df, "down_bps" if x_col == "rtt_s" else "rtt_s")
        for row, column in enumerate(("time_to_list_s", "duration_s")):
            ax = axes[row][col]
            labels = [lb for lb in LABEL_ORDER if lb in set(df["label"])]
            parts = {lb: summary(df[df["label"] == lb], x_col, column) for lb in labels}
            coinciding = {lb for g in overlapping({k: p["y"].to_numpy() for k, p in parts.items()}) for lb in g}
            for i, (lb, p) in enumerate(parts.items()):
                xs = p[x_col].to_numpy(float) * (1000 if x_col == "rtt_s" else 1e-6)
                if lb in coinciding:
                    xs = xs * 1.03 ** dodge(len(labels), i, 1)
                plot_series(ax, xs, p, lb, **STYLE.get(lb, {}))
            plain_log_axes(ax)
            overlap_note(ax, overlapping({k: p["y"].to_numpy() for k, p in parts.items()}), "upper left"
                         if x_col == "rtt_s" else "upper right")
            ax.set_ylabel(f"{NAMES[column]} (s, log)")
            ax.set_xlabel("round-trip time (ms, log)" if x_col == "rtt_s" else "bandwidth down (Mbit/s, log)")
            if row == 0:
                ax.set_title(f"RTT varied, bandwidth fixed at {fixed}" if x_col == "rtt_s"
                             else f"bandwidth varied, RTT fixed at {fixed}", fontsize=9.5)
    axes[0][0].legend(fontsize=8, loc="lower right")
    titles(fig, title, conditions, interval_note(rtt_df, ["time_to_list_s", "duration_s"]))
    return fig


def _fixed(df, column: str) -> str:
    """The one value of ``column`` a sweep holds fixed, as text ("21.3 Mbit/s down, 6.3 Mbit/s up", "55 ms")."""
    if column == "rtt_s":
        return ", ".join(fmt_ms(v) for v in sorted(df["rtt_s"].unique()))
    ups = sorted(df["up_bps"].dropna().unique()) if "up_bps" in df else []
    downs = ", ".join(fmt_rate(v) for v in sorted(df["down_bps"].dropna().unique()))
    return f"{downs} down" + (f", {', '.join(fmt_rate(v) for v in ups)} up" if ups else "")


def pipelining_chart(df, title: str = "How many round trips and seconds do pipelining and batching save?",
                     conditions: str = ""):
    """Round trips per variant (left), then the modelled session duration per variant on each profile (one
    linear panel per profile). Colour is the protocol everywhere in the figure; each bar carries its value."""
    variants = list(dict.fromkeys(df["variant"]))
    profiles = list(dict.fromkeys(df["profile"]))
    fig, axes = plt.subplots(1, 1 + len(profiles), figsize=(4.6 + 3.2 * len(profiles), 0.45 * len(variants) + 2.8),
                             squeeze=False, sharey=True)
    axes = axes[0]
    y = np.arange(len(variants))
    colors = [PROTOCOL_COLORS.get(v.split()[0].lower(), "#777") for v in variants]
    trips = summary(df, "variant", "round_trips").set_index("variant").loc[variants]
    _hbars(axes[0], y, trips, colors, "{:.0f}")
    axes[0].set_xlabel("round trips (client flights)")
    axes[0].set_title("counted (every profile)", fontsize=9.5)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(variants, fontsize=8)
    axes[0].set_ylabel("variant")
    axes[0].invert_yaxis()
    for ax, p in zip(axes[1:], profiles):
        s = summary(df[df["profile"] == p], "variant", "duration_s").set_index("variant").reindex(variants)
        _hbars(ax, y, s, colors, "{:.3g} s")
        ax.set_xlabel("session duration (s, model)")
        ax.set_title(_profile_name(df, p), fontsize=9.5)
    handles = [Patch(color=c, label=p.upper()) for p, c in PROTOCOL_COLORS.items()
               if any(v.lower().startswith(p) for v in variants)]
    axes[-1].legend(handles=handles, fontsize=8, loc="lower right")
    titles(fig, title, conditions, interval_note(df, ["round_trips", "duration_s"]))
    return fig


def _hbars(ax, y, s, colors, fmt: str) -> None:
    ax.barh(y, s["y"].to_numpy(float), 0.7, color=colors)
    err = yerr(s)
    if err is not None:
        ax.errorbar(s["y"].to_numpy(float), y, xerr=err, fmt="none", ecolor="black", capsize=3, lw=0.9)
    for yi, v in zip(y, s["y"].to_numpy(float)):
        if not math.isnan(v):
            ax.text(v, yi, " " + fmt.format(v), va="center", fontsize=7.5)
    ax.set_xlim(0, np.nanmax(s["y"].to_numpy(float)) * 1.3 or 1)
    ax.grid(True, axis="x", alpha=0.25)


def _verdict_text(r) -> str | None:
    """The words for a break-even that is no point in [0, 1] (None when it is one)."""
    if r is None or (isinstance(r, float) and math.isnan(r)) or r > 1:
        return "never (header-first wins at every read fraction)"
    if r < 0:
        return "always (download-all wins even when nothing is opened)"
    return None


def breakeven_chart(df, sweeps: dict | None = None,
                    title: str = "Above which read fraction does header-first make the user wait longer?",
                    conditions: str = ""):
    """The read fraction above which header-first costs the user more waiting in total (list plus every open)
    than download-all: per profile (left; each profile labelled with its RTT and bandwidth, since both move the
    point), and, given ``sweeps`` ({"rtt": frame, "bandwidth": frame} of the same rows over custom profiles),
    against RTT at fixed bandwidth and against bandwidth at fixed RTT. A break-even outside [0, 1] is written
    as "never" or "always", not drawn as a bar. The bytes break-even does not depend on the network: it is the
    vertical line of each protocol in the left panel."""
    sweeps = sweeps or {}
    profiles = list(dict.fromkeys(df["profile"]))
    fig, axes = plt.subplots(1, 1 + len(sweeps), figsize=(7.5 + 4.6 * len(sweeps), 0.55 * len(profiles) + 3),
                             squeeze=False)
    axes = axes[0]
    ax = axes[0]
    protocols = list(dict.fromkeys(df["protocol"]))
    for j, protocol in enumerate(protocols):
        c = PROTOCOL_COLORS.get(protocol)
        part = df[df["protocol"] == protocol]
        s = summary(part, "profile", "waiting_r").set_index("profile").reindex(profiles)
        err = yerr(s)
        for i, p in enumerate(profiles):
            v = s["y"].iloc[i]
            yi = i + dodge(len(protocols), j, 0.3)
            words = _verdict_text(None if math.isnan(v) else v)
            if words:
                ax.text(0.02, yi, f"{protocol.upper()}: {words}", ha="left", va="center", fontsize=7, color=c,
                        bbox=dict(fc="white", ec="none", pad=0.5))
                continue
            ax.errorbar(v, yi, xerr=None if err is None else err[:, i:i + 1], fmt="o", color=c, ms=7, capsize=3)
            ax.annotate(f"{v:.2f}", (v, yi), xytext=(6, -3), textcoords="offset points", fontsize=7, color=c)
        bytes_r = part["bytes_r"].astype(float).median()
        if not math.isnan(bytes_r) and 0 <= bytes_r <= 1:
            ax.axvline(bytes_r, color=c, ls="--", lw=1)
            ax.text(bytes_r, -0.6 - 0.35 * j, f" {protocol.upper()} bytes: {bytes_r:.2f}", color=c, fontsize=7)
    ax.set_yticks(range(len(profiles)))
    ax.set_yticklabels([_profile_name(df, p) for p in profiles], fontsize=8)
    ax.set_ylim(len(profiles) - 0.4, -1.2)
    ax.set_xlim(0, 1)
    ax.set_xlabel("break-even read fraction (share of messages opened)")
    ax.set_ylabel("network profile (RTT, bandwidth down)")
    ax.grid(True, axis="x", alpha=0.25)
    handles = [Line2D([], [], marker="o", ls="none", color=PROTOCOL_COLORS[p], label=f"{p.upper()} total waiting")
               for p in protocols]
    handles += [Line2D([], [], ls="--", color=PROTOCOL_COLORS[p], label=f"{p.upper()} bytes (any network)")
                for p in protocols]
    ax.legend(handles=handles, fontsize=7.5, loc="lower right")
    for ax, (kind, frame) in zip(axes[1:], sweeps.items()):
        _breakeven_sweep(ax, frame, "rtt_s" if kind == "rtt" else "down_bps")
    titles(fig, title, conditions, interval_note(df, "waiting_r"))
    return fig


def _breakeven_sweep(ax, df, x_col: str) -> None:
    """The waiting break-even against one figure of the network, the other held fixed; points outside [0, 1]
    are drawn at the edge as open markers with "never"/"always" written beside them."""
    for protocol, part in df.groupby("protocol"):
        c = PROTOCOL_COLORS.get(protocol)
        s = summary(part, x_col, "waiting_r")
        xs = s[x_col].to_numpy(float) * (1000 if x_col == "rtt_s" else 1e-6)
        inside = (s["y"] >= 0) & (s["y"] <= 1)
        plot_series(ax, xs[inside.to_numpy()], s[inside], f"{protocol.upper()} total waiting", color=c, marker="o")
        for x, v in zip(xs[~inside.to_numpy()], s["y"][~inside]):
            edge = 0.0 if v < 0 else 1.0
            ax.plot(x, edge, marker="o", mfc="none", color=c, ls="none")
            ax.annotate("always" if v < 0 else "never", (x, edge), xytext=(0, 6 if edge == 0 else -12),
                        textcoords="offset points", fontsize=7, color=c, ha="center")
    plain_log_axes(ax, "x")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("break-even read fraction (share opened)")
    fixed = _fixed(df, "down_bps" if x_col == "rtt_s" else "rtt_s")
    ax.set_xlabel("round-trip time (ms, log)" if x_col == "rtt_s" else "bandwidth down (Mbit/s, log)")
    ax.set_title(f"RTT varied at {fixed}" if x_col == "rtt_s" else f"bandwidth varied at {fixed} RTT", fontsize=9.5)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7.5, loc="best")
