"""What every study chart shares: one style per series, intervals over seeds, one-line titles, overlap notes.

Why a module of its own: the rules a chart keeps (issue 17 item 7) are the same in every chart, so they live
once. A chart's title is ONE line stating its question; the conditions (mailbox, seed, server, network) go in a
smaller subtitle, broken between clauses, never mid-phrase. Where a summary table carries the interval of a
metric ``X`` over seeds (the columns ``X_lo``, ``X_hi`` and ``seeds``, computed by
:mod:`mailstudy.study.intervals`), the chart draws it and says "median of N seeds, 95 % interval"; without those
columns it draws the medians as before. Series that coincide are drawn with distinct markers and a small
offset, and a note names them, so no series hides under another.
"""

from __future__ import annotations

import math

import numpy as np

MIB = 1024 * 1024
#: One colour one meaning across the study's charts: the protocol (IMAP blue, POP3 red); the strategy is the
#: line style and the marker (header-first solid and round, download-all dashed and square).
PROTOCOL_COLORS = {"imap": "#1f77b4", "pop3": "#d62728", "jmap": "#2e7d32"}
STYLE = {
    "IMAP header-first": dict(color=PROTOCOL_COLORS["imap"], linestyle="-", marker="o"),
    "IMAP download-all": dict(color=PROTOCOL_COLORS["imap"], linestyle="--", marker="s"),
    "POP3 header-first": dict(color=PROTOCOL_COLORS["pop3"], linestyle="-", marker="^", markerfacecolor="none",
                              markersize=9),
    "POP3 download-all": dict(color=PROTOCOL_COLORS["pop3"], linestyle=":", marker="D", markerfacecolor="none",
                              markersize=9),
}
LABEL_ORDER = ["IMAP header-first", "IMAP download-all", "POP3 header-first", "POP3 download-all"]
#: Markers for series that are not strategies (client profiles, variants): distinct shapes in a fixed order.
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h"]
#: Human names for the columns a chart may show (a legend never shows a raw column name).
NAMES = {"duration_s": "whole session", "time_to_list_s": "time to list", "open_median_s": "time to open a message",
         "bytes_down": "bytes down", "bytes_up": "bytes up", "waiting_r": "total waiting", "bytes_r": "bytes"}
SUBTITLE_SIZE = 8.5
TITLE_SIZE = 11


def has_interval(df, column: str) -> bool:
    """True when ``df`` carries the 95 % interval of ``column`` over seeds (``column_lo`` and ``column_hi``)."""
    return f"{column}_lo" in df.columns and f"{column}_hi" in df.columns


def summary(df, by, column: str):
    """Per group of ``by``: the median of ``column`` and, when ``df`` has them, of ``column_lo``/``column_hi``
    (a summary table has one row per group, so these are its own values) and the fewest ``seeds``. The frame
    it returns has the columns ``by``, ``y``, ``lo``, ``hi`` and ``seeds`` (``lo``/``hi``/``seeds`` NaN when
    there is no interval)."""
    cols = [column] + ([f"{column}_lo", f"{column}_hi"] if has_interval(df, column) else [])
    g = df.groupby(by, as_index=False, sort=True)
    out = g[cols].median(numeric_only=True)
    out = out.rename(columns={column: "y", f"{column}_lo": "lo", f"{column}_hi": "hi"})
    for c in ("lo", "hi"):
        if c not in out.columns:
            out[c] = np.nan
    out["seeds"] = g["seeds"].min()["seeds"].to_numpy() if "seeds" in df.columns else np.nan
    return out


def interval_note(df, columns) -> str:
    """"median of N seeds, 95 % interval" when ``df`` carries an interval for any of ``columns``; else ""."""
    columns = [columns] if isinstance(columns, str) else list(columns)
    if not any(has_interval(df, c) for c in columns):
        return ""
    if "seeds" in df.columns and df["seeds"].notna().any():
        lo, hi = int(df["seeds"].min()), int(df["seeds"].max())
        n = f"{lo}" if lo == hi else f"{lo}-{hi}"
    else:
        n = "several"
    return f"median of {n} seeds, 95 % interval"


def yerr(part):
    """The error bars of a :func:`summary` frame (None without an interval): distances below and above."""
    if part["lo"].isna().all():
        return None
    y = part["y"].to_numpy(float)
    return np.vstack([np.clip(y - part["lo"].to_numpy(float), 0, None),
                      np.clip(part["hi"].to_numpy(float) - y, 0, None)])


def plot_series(ax, x, part, label: str, scale: float = 1.0, **style):
    """One line with its interval as error bars when the frame has one; returns the line."""
    err = yerr(part)
    y = part["y"].to_numpy(float) * scale
    if err is None:
        (line,) = ax.plot(x, y, label=label, **style)
        return line
    container = ax.errorbar(x, y, yerr=err * scale, label=label, capsize=3, elinewidth=0.9, **style)
    return container.lines[0]


def titles(fig, question: str, conditions: str = "", note: str = "") -> None:
    """The figure's title: ``question`` on ONE line (shrunk to fit the figure's width rather than wrapped), and
    below it a smaller subtitle of ``conditions`` and ``note`` broken between clauses where it must."""
    width_pt = fig.get_figwidth() * 72
    size = TITLE_SIZE
    while size > 7 and len(question) * 0.55 * size > width_pt * 0.96:
        size -= 0.5
    sub = "; ".join(s for s in (conditions, note) if s)
    lines = clause_lines(sub, int(width_pt * 0.96 / (0.52 * SUBTITLE_SIZE))) if sub else []
    top = 1 - (0.32 + 0.15 * len(lines)) / fig.get_figheight()
    fig.suptitle(question, fontsize=size, fontweight="bold", y=0.995, va="top")
    if lines:
        fig.text(0.5, 0.995 - 0.28 / fig.get_figheight(), "\n".join(lines), ha="center", va="top",
                 fontsize=SUBTITLE_SIZE, color="#333")
    fig.tight_layout(rect=(0, 0, 1, top))


def clause_lines(text: str, width: int) -> list[str]:
    """``text`` broken into lines of at most about ``width`` characters, between clauses ("; " or ", ") where
    it can, so no line ends mid-phrase."""
    lines: list[str] = []
    current = ""
    for clause in _clauses(text):
        if current and len(current) + len(clause) > width:
            lines.append(current.rstrip())
            current = clause.lstrip()
        else:
            current += clause
    if current.strip():
        lines.append(current.rstrip())
    return lines


def _clauses(text: str) -> list[str]:
    """``text`` cut after each "; " (and after ", " inside a long clause), keeping the separators."""
    out = []
    for part in text.split("; "):
        out.append(part + "; ")
    out[-1] = out[-1][:-2]
    fine = []
    for clause in out:
        if len(clause) > 70:
            bits = clause.split(", ")
            fine += [b + ", " for b in bits[:-1]] + [bits[-1]]
        else:
            fine.append(clause)
    return fine


def overlapping(series: dict[str, np.ndarray], rel: float = 0.02) -> list[list[str]]:
    """Groups of series (name -> values at the same x) that lie within ``rel`` of each other at every point:
    drawn one over another they would look like one line."""
    names = list(series)
    groups: list[list[str]] = []
    seen: set[str] = set()
    for i, a in enumerate(names):
        if a in seen:
            continue
        group = [a]
        for b in names[i + 1:]:
            if b not in seen and close(series[a], series[b], rel):
                group.append(b)
        if len(group) > 1:
            seen.update(group)
            groups.append(group)
    return groups


def close(a, b, rel: float = 0.02) -> bool:
    """True when ``a`` and ``b`` have the same length and lie within ``rel`` of each other everywhere."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or not len(a):
        return False
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-12)
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(both_nan | (np.abs(a - b) <= rel * scale)))


def overlap_note(ax, groups: list[list[str]], where: str = "lower right",
                 how: str = "offset to show each") -> None:
    """Say, inside the axes, which series coincide and ``how`` each is still shown (distinct markers and a small
    offset by default)."""
    if not groups:
        return
    text = "\n".join(f"{' = '.join(g)} (within 2 %; {how})" for g in groups)
    x, ha = (0.99, "right") if "right" in where else (0.01, "left")
    y, va = (0.02, "bottom") if "lower" in where else (0.98, "top")
    ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=7, color="#444",
            bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="#ccc", alpha=0.9))


def same_across(df, by: str, column: str, key=("clients", "devices")) -> bool:
    """True when every value of ``by`` (the servers) gives ``column`` within 2 % of the others."""
    values = {v: g.groupby(list(key))[column].median() for v, g in df.groupby(by)}
    first = next(iter(values.values()))
    return all(v.index.equals(first.index) and close(v.to_numpy(float), first.to_numpy(float))
               for v in values.values())


def dodge(n: int, i: int, step: float) -> float:
    """The offset of series ``i`` of ``n`` drawn side by side, ``step`` apart, centred on zero."""
    return (i - (n - 1) / 2) * step


def fmt_rate(bps) -> str:
    """``21.3e6`` -> ``"21.3 Mbit/s"`` (:func:`mailstudy.link.profiles.format_rate`; NaN, as a CSV gives a
    missing rate, is "unlimited")."""
    from mailstudy.link.profiles import format_rate

    return format_rate(None if bps is None or (isinstance(bps, float) and math.isnan(bps)) else bps)


def fmt_ms(seconds) -> str:
    """``0.055`` -> ``"55 ms"`` (:func:`mailstudy.link.profiles.format_duration`)."""
    from mailstudy.link.profiles import format_duration

    return format_duration(float(seconds))
