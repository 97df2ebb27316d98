"""A ladder (sequence) diagram of one mail session: what the client sent, what the server answered, in order.

Why: a student's first question about IMAP or POP3 is "what actually crosses the wire, and in how many trips?".
A ladder answers it at a glance: two lifelines (client left, server right), time flowing down, one slanted arrow
per *flight* (a maximal run of bytes one way, not interrupted by bytes the other way: the same flights that
``round_trips`` counts, see docs/design.md, "Words"). A client arrow is labelled with the command(s) that start in it
(credentials replaced by ``***`` with the protocol modules' ``redacted_arguments``) and its bytes; a server
arrow with the status of the exchange(s) it completes and its bytes, e.g. ``OK · 12,345 B``.

Rows, not a true time scale: on loopback a whole session lasts a few milliseconds and most flights are
microseconds apart, so arrows drawn at their true times would sit on top of each other. Each flight gets its own
row; the time of its first byte (ms since connect()) is printed on the left, so time still flows down and the
numbers are true. Long sessions keep their first and last rows and replace the middle with one note,
"… N exchanges …", so the figure stays readable (``max_rows``).

Sources: a live :class:`~mailstudy.live.access.SessionResult` (``.trace`` chunks stamped with ``perf_counter_ns``)
or a :class:`~mailstudy.offline.analyze.SessionAnalysis` from a pcap (``.connection.chunks`` stamped in float seconds).
No protocol logic lives here: exchanges come from the one parser, flights from the chunks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

from mailstudy.errors import MailstudyError
from mailstudy.protocol import imap as _imap
from mailstudy.protocol import pop3 as _pop3
from mailstudy.wire import DOWN, UP
from mailstudy.wire import flights as wire_flights

__all__ = ["Arrow", "LadderError", "flights", "ladder", "ladder_on", "ladder_to_scale", "replayed", "save_ladder"]

X_CLIENT, X_SERVER = 0.0, 1.0
SLANT = 0.55  # rows an arrow descends while it crosses: the travel it stands for
LABEL_MAX = 58  # characters of a command label before it is shortened
COLORS = {UP: "#1f5fa8", DOWN: "#2e7d32", "fail": "#d9480f", "tls": "#6d6d6d"}
FAILED = {"NO", "BAD", "-ERR", "BYE"}
TLS_CONTENT = {0x14: "TLS change cipher spec", 0x15: "TLS alert", 0x16: "TLS handshake", 0x17: "TLS data"}


class LadderError(MailstudyError, ValueError):
    """The thing handed to :func:`ladder` is not a session it can draw; the message says what it expects."""


@dataclass
class Arrow:
    """One arrow of the ladder: a flight (:class:`mailstudy.wire.Flight`) with what it starts and completes.
    Times are seconds since connect()."""

    direction: str
    t_start: float
    t_end: float
    nbytes: int = 0
    first: bytes = b""  # the first few bytes (to recognise TLS records)
    starts: list = field(default_factory=list)  # exchanges whose command's first byte is in this flight
    completes: list = field(default_factory=list)  # exchanges whose response ends in this flight
    index: int = 0


@dataclass
class _Session:
    protocol: str
    client: str
    server: str
    chunks: list  # (direction, t_raw, nbytes, first bytes)
    exchanges: list
    t0: Any
    scale: float  # raw time units -> seconds
    encrypted: bool = False


def _endpoint(addr) -> str:
    if not addr:
        return "?"
    host, port = addr[0], addr[1]
    return f"{host}:{port}"


def _session(source: Any) -> _Session:
    """Normalise a live SessionResult or a pcap SessionAnalysis into one shape."""
    if hasattr(source, "trace") and hasattr(source, "exchanges"):  # access.SessionResult
        tr = source.trace
        protocol = getattr(getattr(source, "spec", None), "protocol", None) or \
            (source.exchanges[0].protocol if source.exchanges else "imap")
        chunks = [(c.direction, c.t, len(c.data), c.data[:8]) for c in tr.chunks]
        t0 = tr.t_connect_ns or (tr.chunks[0].t if tr.chunks else 0)
        return _Session(protocol, _endpoint(tr.local), _endpoint(tr.remote), chunks, list(source.exchanges), t0,
                        1e-9)
    conn = getattr(source, "connection", None)
    if conn is not None and hasattr(conn, "chunks") and hasattr(source, "exchanges"):  # analyze.SessionAnalysis
        chunks = [(c.direction, c.t, len(c.data), c.data[:8]) for c in conn.chunks]
        t0 = conn.t_syn if getattr(conn, "t_syn", None) is not None else conn.t_first
        return _Session(getattr(source, "protocol", "imap"), _endpoint(conn.client), _endpoint(conn.server),
                        chunks, list(source.exchanges), t0, 1.0, bool(getattr(source, "encrypted", False)))
    raise LadderError(f"ladder() draws a SessionResult (from run_session) or a SessionAnalysis (from "
                      f"analyze_pcap(...).sessions), not {type(source).__name__}")


def flights(source: Any) -> list[Arrow]:
    """The session's flights in order (:func:`mailstudy.wire.flights`), each as an arrow with the exchanges that
    start and complete in it."""
    s = _session(source)
    sent = [c for c in s.chunks if c[2]]
    heads = [c[3] for i, c in enumerate(sent) if i == 0 or sent[i - 1][0] != c[0]]  # each flight's first chunk
    runs = wire_flights((d, t, n) for d, t, n, _ in sent)
    out = [Arrow(f.direction, (f.t_start - s.t0) * s.scale, (f.t_end - s.t0) * s.scale, f.nbytes, bytes(head),
                 index=i) for i, (f, head) in enumerate(zip(runs, heads))]
    raw_ranges = [(f.t_start, f.t_end) for f in runs]

    def home(t: Any, direction: str) -> Arrow | None:
        """The flight of ``direction`` whose chunks span ``t`` (else the last one that started before it)."""
        best = None
        for f, (a, b) in zip(out, raw_ranges):
            if f.direction != direction:
                continue
            if a <= t <= b:
                return f
            if a <= t:
                best = f
        return best

    for e in sorted(s.exchanges, key=lambda e: e.index):
        if e.t_sent is not None:
            f = home(e.t_sent, UP)
            if f is not None:
                f.starts.append(e)
        if e.t_done is not None and e.status is not None:
            f = home(e.t_done, DOWN)
            if f is not None:
                f.completes.append(e)
    return out


def _redacted(e) -> str:
    module = _pop3 if e.protocol == "pop3" else _imap
    return module.redacted_arguments(e.command, e.arguments)


def _shorten(text: str, limit: int = LABEL_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _command_text(e) -> str:
    args = _redacted(e)
    parts = [p for p in (e.tag, e.command, args) if p]
    return _shorten(" ".join(parts))


def _tls_kind(f: Arrow) -> str | None:
    if len(f.first) >= 2 and f.first[0] in TLS_CONTENT and f.first[1] == 3:
        return TLS_CONTENT[f.first[0]]
    return None


def label(f: Arrow, greeting: bool = False) -> tuple[str, str]:
    """(text, colour key) for one flight's arrow."""
    size = f"{f.nbytes:,} B"
    tls = _tls_kind(f)
    if f.direction == UP:
        if f.starts:
            first = _command_text(f.starts[0])
            if len(f.starts) == 1:
                return f"{first} · {size}", UP
            last = _command_text(f.starts[-1])
            return (f"{_shorten(first, 24)} … {_shorten(last, 24)} · {len(f.starts)} commands in one flight"
                    f" · {size}"), UP
        if tls:
            return f"{tls} · {size}", "tls"
        return f"(rest of a command: literal or SASL line) · {size}", UP
    if f.completes:
        statuses = [e.status for e in f.completes]
        failed = any(s in FAILED for s in statuses)
        if len(set(statuses)) == 1:
            text = statuses[0] if len(statuses) == 1 else f"{len(statuses)}× {statuses[0]}"
        else:
            text = ", ".join(statuses)
        verbs = {e.command for e in f.completes}
        if len(verbs) == 1 and f.completes[0].command:
            text = f"{text} ({f.completes[0].command})"
        return f"{text} · {size}", "fail" if failed else DOWN
    if tls:
        return f"{tls} · {size}", "tls"
    if greeting:
        return f"greeting · {size}", DOWN
    return f"response data (continues) · {size}", DOWN


def _rows(fl: list[Arrow], max_rows: int) -> tuple[list[Arrow], list[Arrow], list[Arrow]]:
    """(head, elided, tail): all flights fit in ``max_rows`` rows, or the middle gives way to one note row."""
    if len(fl) <= max_rows:
        return fl, [], []
    keep = max(2, max_rows - 1)
    n_head = (keep + 1) // 2
    n_tail = keep - n_head
    # Cut between a reply and the next command, so no command loses its reply to the note (and vice versa).
    if n_head > 1 and fl[n_head].direction == DOWN:
        n_head -= 1
    if n_tail > 1 and fl[len(fl) - n_tail].direction == DOWN:
        n_tail -= 1
    return fl[:n_head], fl[n_head:len(fl) - n_tail], fl[len(fl) - n_tail:]


def ladder(source: Any, ax=None, max_rows: int = 60, title: str | None = None) -> Figure:
    """Draw ``source`` (a SessionResult or a SessionAnalysis) as a ladder diagram; returns the Figure.

    One arrow (an annotation artist) per flight shown; label texts are separate text artists. ``max_rows``
    bounds the rows drawn: beyond it the middle flights are replaced by a note "… N exchanges …".
    """
    import matplotlib.pyplot as plt  # here: flights and labels need none (static page)

    if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 3:
        raise LadderError(f"max_rows must be a whole number >= 3, not {max_rows!r}")
    s = _session(source)
    fl = flights(source)
    head, elided, tail = _rows(fl, max_rows)
    n_rows = len(head) + (1 if elided else 0) + len(tail)
    if ax is None:
        height = 1.5 + 0.42 * max(n_rows, 2)
        fig = plt.figure(figsize=(10, height))
        ax = fig.add_axes([0.12, 0.02, 0.80, 0.98 - 0.9 / height])
    else:
        fig = ax.figure
    bottom = n_rows + SLANT - 0.2
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(bottom + 0.3, -1.3)
    for x, name, who in ((X_CLIENT, "client", s.client), (X_SERVER, "server", s.server)):
        ax.plot([x, x], [-0.6, bottom], color="#444444", linewidth=1.6, zorder=1)
        ax.text(x, -0.75, f"{name}\n{who}", ha="center", va="bottom", fontsize=9, fontweight="bold")
    first_down = next((f for f in fl if f.direction == DOWN), None)
    greeting_flight = first_down if first_down is not None and first_down.index == 0 else None

    tls_from = next((f for f in fl if f.index > 0 and _tls_kind(f)), None)
    if tls_from is not None and _tls_kind(fl[0]):
        tls_from = None  # TLS from the first byte: nothing was plaintext
    ticks, tick_labels = [], []
    row = 0
    for part in (head, None, tail):
        if part is None:
            if elided:
                n_ex = sum(len(f.starts) for f in elided)
                up = sum(f.nbytes for f in elided if f.direction == UP)
                down = sum(f.nbytes for f in elided if f.direction == DOWN)
                ax.text(0.5, row + SLANT / 2, f"… {n_ex} exchanges …\n({len(elided)} flights, {up:,} B up, "
                        f"{down:,} B down)", ha="center", va="center", fontsize=9, style="italic",
                        color="#555555", bbox=dict(boxstyle="round", fc="#f4f4f4", ec="#bbbbbb"))
                ticks.append(row)
                tick_labels.append("…")
                row += 1
            continue
        for f in part:
            if f is tls_from:  # plaintext first (STARTTLS/STLS), TLS records from this flight on
                ax.axhline(row - 0.2, color=COLORS["tls"], linestyle="--", linewidth=1.0, zorder=2)
                ax.text(1.04, row - 0.25, "encrypted from here (TLS) ▼", ha="right", va="bottom", fontsize=8.5,
                        color=COLORS["tls"], zorder=4)
            text, colour = label(f, greeting=f is greeting_flight)
            start, end = ((X_CLIENT, X_SERVER) if f.direction == UP else (X_SERVER, X_CLIENT))
            ax.annotate("", xy=(end, row + SLANT), xytext=(start, row),
                        arrowprops=dict(arrowstyle="-|>", color=COLORS[colour], linewidth=1.4,
                                        shrinkA=0, shrinkB=0), zorder=3)
            ax.text(0.5, row + SLANT / 2 - 0.08, text, ha="center", va="bottom", fontsize=8.5,
                    family="monospace", color=COLORS[colour], rotation=0,
                    bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.85), zorder=4)
            ticks.append(row)
            tick_labels.append(f"{f.t_start * 1e3:,.3f} ms")
            row += 1
    ax.set_yticks(ticks)
    ax.set_yticklabels(tick_labels, fontsize=8, family="monospace")
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    if title is None:
        n_ex = len(s.exchanges)
        ups = sum(n for d, _, n, _ in s.chunks if d == UP)
        downs = sum(n for d, _, n, _ in s.chunks if d == DOWN)
        client_flights = sum(1 for f in fl if f.direction == UP)
        what = f"{n_ex} exchanges" if n_ex or not s.encrypted else "commands hidden by TLS"
        tls = " (decrypted from TLS with a key log)" if getattr(source, "decrypted", False) else " (encrypted)"
        title = (f"{s.protocol.upper()}{tls if s.encrypted else ''}: {what}, "
                 f"{client_flights} client flights, {ups:,} B up, {downs:,} B down "
                 f"(time = first byte, ms since connect)")
    ax.set_title(title, fontsize=10, loc="left", pad=30)
    return fig


def save_ladder(source: Any, path: str | os.PathLike, max_rows: int = 60, title: str | None = None,
                dpi: int = 110) -> str:
    """Draw :func:`ladder` and write it to ``path`` (the format follows the suffix: .png, .svg, .pdf)."""
    import matplotlib.pyplot as plt  # here: flights and labels need none (static page)

    fig = ladder(source, max_rows=max_rows, title=title)
    try:
        fig.savefig(os.fspath(path), dpi=dpi)
    finally:
        plt.close(fig)
    return os.fspath(path)


def ladder_to_scale(sources: list, titles: list[str] | None = None, label_gap: float = 0.035) -> Figure:
    """Ladders of one or more sessions side by side, drawn to scale on one time axis (ms since connect).

    Where :func:`ladder` gives each flight its own row, here an arrow leaves its side at the flight's first byte
    and reaches the other at its last, so what takes long looks long and two sessions compare at a glance. A
    label is written only where it does not overlap the one above it (``label_gap``: the share of the axis
    between two labels); the row ladder keeps every label.
    """
    if not sources:
        raise LadderError("ladder_to_scale() needs at least one session")
    titles = list(titles or [""] * len(sources))
    drawn = [(_session(src), flights(src)) for src in sources]
    return _draw_to_scale(drawn, titles, label_gap)


def replayed(source: Any, profile: Any) -> list[Arrow]:
    """The session's flights as they would go on ``profile`` (a name or a
    :class:`~mailstudy.link.profiles.Profile`), replayed through the model (:func:`mailstudy.link.model.predict`).

    The model gives when each answer's last byte reaches the client (``predict`` of the first k round trips); a
    request leaves its pause after the answer before it. Where the request reaches the server is drawn as ours:
    half the round trip plus its bytes over the upload rate after it leaves (the model's slow start and queueing
    of requests are not drawn). A capture taken on a real network keeps that network's delays in the work the
    model replays, so it can only look slower than the profile alone."""
    from mailstudy.link import model
    from mailstudy.link.profiles import get_profile

    p = profile if hasattr(profile, "rtt_s") else get_profile(profile)
    s = _session(source)
    chunks = [(d, t, b"\0" * n) for d, t, n, _ in s.chunks if n]
    ex = s.exchanges
    msession = model.session_from_chunks(chunks, s.t0, exchanges=ex, time_scale=s.scale)
    arrows = [Arrow(a.direction, a.t_start, a.t_end, a.nbytes, a.first, a.starts, a.completes, a.index)
              for a in flights(source)]

    def answer_at(k: int) -> float:
        part = model.Session(msession.greeting_s, msession.round_trips[:k], 0.0, msession.greeting_bytes)
        return model.predict(part, p)["duration_s"]

    done = answer_at(0)
    k = 0
    i = 0
    if arrows and arrows[0].direction == DOWN:  # the greeting
        arrows[0].t_start, arrows[0].t_end = max(0.0, done - p.rtt_s / 2), done
        i = 1
    while i < len(arrows) and k < len(msession.round_trips):
        trip = msession.round_trips[k]
        sent = done + trip.pause_s
        up = arrows[i]
        arrive = sent + p.rtt_s / 2 + (up.nbytes * 8 / p.up_bps if p.up_bps else 0.0)
        up.t_start, up.t_end = sent, arrive
        done = answer_at(k + 1)
        if i + 1 < len(arrows) and arrows[i + 1].direction == DOWN:
            arrows[i + 1].t_start, arrows[i + 1].t_end = max(arrive, done - p.rtt_s / 2), done
            i += 1
        i += 1
        k += 1
    return arrows


def ladder_on(source: Any, profiles: list, title: str = "", replays: list | None = None) -> Figure:
    """The session as captured beside the same session replayed on each of ``profiles`` (:func:`replayed`, or
    the arrows given in ``replays``), to scale on one time axis."""
    s = _session(source)
    replays = replays if replays is not None else [replayed(source, p) for p in profiles]
    drawn = [(s, flights(source))] + [(s, r) for r in replays]
    names = [f"{title} as captured"] + [f"on {getattr(p, 'name', p)} (model)" for p in profiles]
    return _draw_to_scale(drawn, names, 0.035)


def _draw_to_scale(drawn: list, titles: list, label_gap: float) -> Figure:
    """Draw ``(session, arrows)`` pairs side by side on one time axis (ms)."""
    import matplotlib.pyplot as plt  # here: flights and labels need none (static page)

    t_max = max((f.t_end for _, fl in drawn for f in fl), default=0.0) * 1e3 or 1.0
    fig, axes = plt.subplots(1, len(drawn), figsize=(5.2 * len(drawn), 7.5), sharey=True, squeeze=False)
    for ax, (s, fl), title in zip(axes[0], drawn, titles):
        for x, name in ((X_CLIENT, "client"), (X_SERVER, "server")):
            ax.plot([x, x], [0, t_max * 1.02], color="#444444", linewidth=1.4, zorder=1)
            ax.text(x, -0.02 * t_max, name, ha="center", va="bottom", fontsize=9, fontweight="bold")
        last_label = -1e9
        first_down = next((f for f in fl if f.direction == DOWN), None)
        for f in fl:
            a, b = f.t_start * 1e3, max(f.t_end * 1e3, f.t_start * 1e3 + t_max * 0.004)
            start, end = (X_CLIENT, X_SERVER) if f.direction == UP else (X_SERVER, X_CLIENT)
            text, colour = label(f, greeting=f is first_down and f.index == 0)
            ax.annotate("", xy=(end, b), xytext=(start, a),
                        arrowprops=dict(arrowstyle="-|>", color=COLORS[colour], linewidth=1.0, shrinkA=0,
                                        shrinkB=0), zorder=3)
            if a - last_label >= label_gap * t_max:
                ax.text(0.5, (a + b) / 2, _shorten(text, 34), ha="center", va="center", fontsize=7,
                        family="monospace", color=COLORS[colour],
                        bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.85), zorder=4)
                last_label = a
        ax.set_xlim(-0.08, 1.08)
        ax.set_xticks([])
        ups = sum(n for d, _, n, _ in s.chunks if d == UP)
        downs = sum(n for d, _, n, _ in s.chunks if d == DOWN)
        n_up = sum(1 for f in fl if f.direction == UP)
        ax.set_title(f"{title}\n{n_up} client flights, {ups:,} B up, {downs:,} B down", fontsize=9, loc="left")
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
    axes[0][0].set_ylim(t_max * 1.04, -0.06 * t_max)
    axes[0][0].set_ylabel("time since connect (ms)")
    fig.tight_layout()
    return fig
