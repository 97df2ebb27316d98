"""Charts of study results, drawn with matplotlib from tidy rows; no protocol logic here.

Why: every figure in the notebooks and in ``data/figures/`` is drawn by one function here (traffic volume, one
session's exchanges, the claims), in :mod:`mailstudy.faces.latency_charts` (notebook 03) or in
:mod:`mailstudy.faces.device_charts` (notebook 04), so a chart looks the same wherever it is rebuilt and a
notebook stays a few lines long. The rules every chart keeps (one-line question as title, units on both axes,
every series visible and labelled, intervals drawn when the table has them) live in
:mod:`mailstudy.faces.chart_kit`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # headless runs fall back to the Agg backend by themselves
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from mailstudy.faces.chart_kit import (LABEL_ORDER, MIB, PROTOCOL_COLORS, STYLE, dodge, interval_note, overlap_note,
                                       overlapping, plot_series, same_across, summary, titles)
from mailstudy.outputs import data_dir, publish, tmp_beside

__all__ = ["LABEL_ORDER", "MIB", "STYLE", "save_figure", "write_figure", "bytes_per_exchange", "claims_chart", "bytes_up_and_down",
           "bytes_vs_read_fraction", "overhead_share"]


def save_figure(fig, name: str, folder: str | Path | None = None) -> Path:
    """Save ``fig`` as ``folder/name.png``, whole or not at all (:mod:`mailstudy.outputs`); ``folder`` defaults
    to ``data/figures`` under the project root, never the working directory. The figure is closed after."""
    folder = Path(folder) if folder is not None else data_dir("figures")
    folder.mkdir(parents=True, exist_ok=True)
    return write_figure(fig, folder / f"{name}.png")


def write_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` whole or not at all (a temporary file beside it, then renamed; the format
    follows the suffix, PNG when there is none) and close it, even when writing fails."""
    path = Path(path)
    tmp = tmp_beside(path)
    try:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


def plain_log_axes(ax, which: str = "xy") -> None:
    """Log axes (for lines, never bars) ticked at 1, 2, 5 x 10^k and labelled 0.5, 1, 2 rather than 10^0."""
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


def exchange_labels(commands) -> list[str]:
    """Tick labels for exchanges: the command, numbered where a command repeats ("UID FETCH #2"), so no two
    ticks read the same."""
    counts: dict[str, int] = {}
    total = {c: list(commands).count(c) for c in set(commands)}
    out = []
    for c in commands:
        counts[c] = counts.get(c, 0) + 1
        out.append(f"{c} #{counts[c]}" if total[c] > 1 else str(c))
    return out


def bytes_per_exchange(frame, title: str = "How many bytes does each exchange move?",
                conditions: str = ""):
    """Bytes down (top) and up (bottom) of each exchange of one session (a
    :func:`~mailstudy.protocol.metrics.exchanges_frame`), as bars on linear axes, one tick per exchange labelled
    with its command (numbered where one repeats); past 40 exchanges only every k-th tick is labelled."""
    import numpy as np

    question = title
    n = len(frame)
    fig, (down, up) = plt.subplots(2, 1, figsize=(max(7.0, min(16.0, 0.3 * n + 3)), 5.6), sharex=True,
                                   gridspec_kw={"height_ratios": [2, 1]})
    x = np.arange(n)
    down.bar(x, frame["bytes_down"] / 1024, width=0.7, color="#2e7d32", label="down (server → client)")
    up.bar(x, frame["bytes_up"], width=0.7, color="#1f5fa8", label="up (client → server)")
    down.set_ylabel("bytes down (KiB)")
    up.set_ylabel("bytes up (B)")
    for ax in (down, up):
        ax.grid(True, axis="y", alpha=0.25)
        ax.legend(fontsize=8, loc="upper left")
    labels = exchange_labels([str(c) for c in frame["command"]])
    step = max(1, int(np.ceil(n / 40)))
    up.set_xticks(x[::step])
    up.set_xticklabels(labels[::step], rotation=60, ha="right", fontsize=7)
    up.set_xlabel("exchange (command, in the order sent" + (f"; every {step}th labelled)" if step > 1 else ")"))
    titles(fig, question, conditions)
    return fig


VERDICT_COLORS = {"supported": "#2e7d32", "contradicted": "#c62828", "holds-only-when": "#ef6c00",
                  "not-a-protocol-property": "#757575"}


def claims_chart(ledger, title: str = "Which of the article's claims survive a measurement?",
                conditions: str = ""):
    """The ledger as a figure: one row per claim and server (no row dropped), with the server, the verdict (a
    coloured tag, not a bar), the number measured and, for holds-only-when, the condition."""
    rows = ledger.reset_index(drop=True)
    question = title
    lines = [_claim_lines(r) for _, r in rows.iterrows()]
    heights = [max(len(c), len(m)) for c, m, _ in lines]
    fig, ax = plt.subplots(figsize=(13, 0.135 * (sum(heights) + len(rows)) + 1.3))
    total = sum(heights) + len(rows)
    ax.set_ylim(total, -1.6)
    ax.set_xlim(0, 1)
    ax.axis("off")
    for x, head in ((0.0, "claim (server)"), (0.47, "verdict"), (0.62, "measured in this run; condition")):
        ax.text(x, -0.9, head, fontsize=8.5, fontweight="bold", va="center")
    y = 0.0
    for (_, r), (claim, measured, verdict), h in zip(rows.iterrows(), lines, heights):
        ax.text(0.0, y, "\n".join(claim), fontsize=7.5, va="top", linespacing=1.25)
        ax.text(0.47, y, verdict, fontsize=7.5, va="top", color="white", fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.25", fc=VERDICT_COLORS.get(r["verdict"], "#999"), ec="none"))
        ax.text(0.62, y, "\n".join(measured), fontsize=7.5, va="top", linespacing=1.25, color="#222")
        y += h + 1
        ax.axhline(y - 0.55, color="#ddd", lw=0.6)
    titles(fig, question, conditions)
    return fig


def _claim_lines(r) -> tuple[list[str], list[str], str]:
    import textwrap

    def text(key: str) -> str:
        v = r.get(key, "")
        return "" if v is None or (isinstance(v, float) and v != v) else str(v)  # NaN: a CSV's empty cell

    claim = textwrap.wrap(f"{text('claim')} ({text('server')})", 72)
    said, cond, interval = text("measured"), text("condition"), text("interval")
    said_all = said + (f" [interval {interval}]" if interval else "") + (f"; when: {cond}" if cond else "")
    return claim, textwrap.wrap(said_all, 64) or ["-"], str(r["verdict"])


def _strategy_series(ax, df, column: str, x_col: str, scale: float, xscale: float = 1.0, offset: float = 0.0):
    """One line per strategy label (interval bars when present); coinciding series get an offset of
    ``offset`` (a factor on a log x axis) and a note. Returns the groups that coincide."""
    labels = [lb for lb in LABEL_ORDER if lb in set(df["label"])] + sorted(set(df["label"]) - set(LABEL_ORDER))
    parts = {lb: summary(df[df["label"] == lb], x_col, column) for lb in labels}
    groups = overlapping({lb: p["y"].to_numpy() for lb, p in parts.items()})
    coinciding = {lb for g in groups for lb in g}
    for i, (lb, p) in enumerate(parts.items()):
        shift = (1 + offset) ** dodge(len(labels), i, 1) if lb in coinciding and offset else 1.0
        plot_series(ax, p[x_col].to_numpy(float) * xscale * shift, p, lb, 1 / scale, **STYLE.get(lb, {}))
    return groups


def bytes_up_and_down(df, title: str = "How many bytes does each strategy move as the mailbox grows?",
                      conditions: str = ""):
    """Bytes down (top) and up (bottom) of each strategy against the mailbox's size, one column per server, or
    one column when the servers give the same bytes (said in the subtitle); lines on log axes, coinciding
    strategies drawn apart by a small offset and named in a note."""
    servers = sorted(df["server"].unique())
    key = ("label", "messages")
    merged = len(servers) > 1 and all(same_across(df, "server", c, key) for c in ("bytes_down", "bytes_up"))
    columns = [(", ".join(servers), df[df["server"] == servers[0]])] if merged or len(servers) == 1 else \
        [(s, df[df["server"] == s]) for s in servers]
    fig, axes = plt.subplots(2, len(columns), figsize=(6.2 * len(columns) + 0.6, 7.6), squeeze=False, sharex=True)
    for col, (server, part) in enumerate(columns):
        for row, (column, unit, scale) in enumerate((("bytes_down", "MiB", MIB), ("bytes_up", "KiB", 1024))):
            ax = axes[row][col]
            groups = _strategy_series(ax, part, column, "mailbox_bytes", scale, 1 / MIB, offset=0.04)
            plain_log_axes(ax)
            overlap_note(ax, groups)
            ax.set_ylabel(f"{column.replace('_', ' ')} ({unit}, log)")
        axes[0][col].set_title(f"server: {server}", fontsize=10)
        axes[1][col].set_xlabel("mailbox size (MiB, log)")
    axes[0][-1].legend(fontsize=8, loc="upper left")
    same = f"{' and '.join(servers)} give the same bytes (within 2 %): one column" if merged else ""
    titles(fig, title, conditions, "; ".join(s for s in (same, interval_note(df, ["bytes_down", "bytes_up"])) if s))
    return fig


def bytes_vs_read_fraction(df, breakeven: dict,
                           title: str = "At which read fraction does header-first stop saving bytes?",
                conditions: str = ""):
    """Header-first's bytes down as the user opens more messages, against download-all's, with the measured
    break-even read fraction of each protocol marked. Download-all is one value per protocol, drawn as a
    horizontal line; when IMAP's and POP3's coincide, POP3's is drawn dotted over IMAP's dashed and a note says
    so."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    wholes = {}
    hf_series = {f"{p.upper()} header-first": summary(g[g["strategy"] == "header-first"], "read_fraction",
                                                       "bytes_down")["y"].to_numpy() for p, g in df.groupby("protocol")}
    shift = 0.006 if overlapping(hf_series) else 0.0
    for k, (protocol, part) in enumerate(df.groupby("protocol")):
        c = PROTOCOL_COLORS.get(protocol)
        name = protocol.upper()
        hf = summary(part[part["strategy"] == "header-first"], "read_fraction", "bytes_down")
        plot_series(ax, hf["read_fraction"].to_numpy(float) + dodge(2, k, shift), hf, f"{name} header-first", 1 / MIB,
                    **STYLE[f"{name} header-first"])
        whole = summary(part[part["strategy"] == "download-all"].assign(one=0), "one", "bytes_down")
        wholes[f"{name} download-all"] = whole["y"].to_numpy()
        w = float(whole["y"].iloc[0])
        ax.axhline(w / MIB, color=c, linestyle="--" if protocol == "imap" else ":", lw=2.2 if protocol == "imap"
                   else 1.6, label=f"{name} download-all")
        if not np.isnan(whole["lo"].iloc[0]):
            ax.axhspan(whole["lo"].iloc[0] / MIB, whole["hi"].iloc[0] / MIB, color=c, alpha=0.12)
        f = breakeven.get(protocol)
        if f is not None:
            ax.axvline(f, color=c, linestyle=(0, (1, 3)), alpha=0.8)
            ax.annotate(f"{name} break-even: {f:.2f}", (f, w / MIB), xytext=(6, -16 - 14 * (protocol == "pop3")),
                        textcoords="offset points", fontsize=8, color=c)
        else:
            ax.text(0.01, 0.80 - 0.06 * (protocol == "pop3"), f"{name}: header-first below download-all at every "
                    f"read fraction (break-even: never)", transform=ax.transAxes, fontsize=8, color=c, va="top")
    overlap_note(ax, overlapping(hf_series), "lower right", "offset sideways to show each")
    overlap_note(ax, overlapping(wholes), "upper left", "drawn over each other: IMAP dashed, POP3 dotted")
    ax.set_xlabel("read fraction (share of messages the user opens)")
    ax.set_ylabel("bytes down (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8, loc="center right")
    titles(fig, title, conditions, interval_note(df, "bytes_down"))
    return fig


def overhead_share(df, title: str = "How much of the bytes down is protocol, not mail?",
                conditions: str = ""):
    """Per strategy, the share of bytes down that is protocol, not mail, against the mailbox size."""
    fig, ax = plt.subplots(figsize=(8.5, 5))
    groups = _strategy_series(ax, df.assign(overhead_pct=100 * df["overhead_share"],
                                            **({"overhead_pct_lo": 100 * df["overhead_share_lo"],
                                                "overhead_pct_hi": 100 * df["overhead_share_hi"]}
                                               if "overhead_share_lo" in df.columns else {})),
                              "overhead_pct", "mailbox_bytes", 1.0, 1 / MIB, offset=0.04)
    ax.set_xscale("log")
    ax.set_xlabel("mailbox size (MiB, log)")
    ax.set_ylabel("overhead (% of bytes down)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.25)
    overlap_note(ax, groups, "upper right")
    ax.legend(fontsize=8, loc="upper left")
    titles(fig, title, conditions, interval_note(df, "overhead_share"))
    return fig
