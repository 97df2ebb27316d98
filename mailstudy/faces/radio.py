"""The radio's states over time, drawn under a session's ladder: where the joules of a mail session go.

Why: the ledger's table says that an LTE radio spends most of a short session's energy in its tail; the picture
shows it. The top panel is the session's ladder (:mod:`mailstudy.faces.ladder`: rows, one per flight, times in
ms since connect); the bottom panel is the radio on a true time scale: one band per state (promotion, transfer,
tail, idle) and the power it draws, with each state's joules in the legend. No energy logic lives here: the
segments come from :func:`mailstudy.energy.ledger.ledger`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from mailstudy.energy.ledger import CATEGORIES, Ledger
from mailstudy.faces.plots import write_figure

COLORS = {"promotion": "#d9480f", "transfer": "#1f5fa8", "tail": "#f2a541", "idle": "#c8c8c8"}


def radio_states(led: Ledger, ax, title: str | None = None) -> None:
    """Draw ``led``'s segments on ``ax``: the power each state draws over time (seconds), filled by state."""
    if not led.segments:
        ax.text(0.5, 0.5, "no segments kept (keep_segments=False)", ha="center", transform=ax.transAxes)
        return
    seen = set()
    for s in led.segments:
        width = s.t1 - s.t0
        power = s.joules / width if width > 0 else 0.0
        label = None
        if s.category not in seen:
            seen.add(s.category)
            label = f"{s.category}: {led.joules[s.category]:.3g} J in {led.seconds[s.category]:.3g} s"
        ax.fill_between([s.t0, s.t1], 0, power, step="pre", color=COLORS[s.category], alpha=0.85, linewidth=0,
                        label=label)
        if width > 0:
            ax.plot([s.t0, s.t1], [power, power], color="#333333", linewidth=0.6)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: CATEGORIES.index(labels[i].split(":")[0]))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8, loc="upper right")
    ax.set_xlim(led.start, led.end)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds since the first packet")
    ax.set_ylabel("radio power (W)")
    ax.set_title(title or f"{led.model}: {led.total_j:.3g} J, tail {led.tail_share:.0%} of it", fontsize=10,
                 loc="left")


def radio_figure(led: Ledger, session: Any = None, title: str | None = None, max_rows: int = 30) -> Figure:
    """A figure with ``session``'s ladder on top (a SessionResult or a SessionAnalysis; none: states only) and
    the radio states of ``led`` under it."""
    from mailstudy.faces.ladder import ladder

    if session is None:
        fig, ax = plt.subplots(figsize=(10, 3.2))
        radio_states(led, ax, title)
        fig.tight_layout()
        return fig
    fig = plt.figure(figsize=(10, 11))
    top = fig.add_axes([0.12, 0.36, 0.80, 0.58])
    ladder(session, ax=top, max_rows=max_rows)
    bottom = fig.add_axes([0.08, 0.05, 0.86, 0.22])
    radio_states(led, bottom, title)
    return fig


def save_radio_figure(led: Ledger, path: str | os.PathLike, session: Any = None, title: str | None = None,
                      dpi: int = 110) -> Path:
    """Draw :func:`radio_figure` and write it to ``path`` whole or not at all (the format follows the suffix)."""
    return write_figure(radio_figure(led, session, title), path, dpi=dpi)
