r"""The model: a session's times on a network, predicted from its flights and a profile.

Why: a sweep of 4 strategies x 7 profiles x many mailbox sizes cannot wait for every session through the link.
Counts come from real loopback sessions, times from this model, and the model is checked against the link
(``bench/link.py`` prints the error on the acceptance grid; ``tests/test_link.py`` asserts a coarse version).
Pure: no clock, no socket.

The formula (the one place it is written). A session is a greeting then client flights f = 1..F, each with
u_f bytes up and d_f bytes down (the server's bytes until the next flight). From the loopback session it also
takes c_f, the flight's own time on loopback (first byte up to last byte down: the server's and the client's
work), g_f, the client's pause before the flight, and c_0, the time from connect to the end of the greeting::

    T_0 = max(RTT, c_0 + RTT / 2)                                      (handshake: connect, greeting in)
    t_f = g_f + RTT + u_f / B_up + max(d_f / B_down, c_f) + S_f         (one flight)
    duration_s     = T_0 + sum over all flights of t_f
    time_to_list_s = T_0 + sum over the flights before the list is ready of t_f + g_list
    open wait      = t_f - g_f, for each flight that fetches a message the user opened (FETCH, RETR, TOP)

T_0 is what the link does: the server greets c_0 after connect (on loopback; for a freshly started embedded
server mostly its warm-up, 0.3-60 ms measured), the greeting travels RTT/2, and no byte arrives before one RTT.
B_up/B_down are the profile's rates in bytes/s (unlimited: the term is 0). The work term is max(...) rather
than a sum because a server streams while the link serializes. S_f is the slow-start term, 0 unless the
profile turns slow start on: starting from a window W = 10 x 1448 B (carried across flights, each direction on
its own), every time a flight's bytes overrun W within the same flight, the sender waits
max(0, RTT - 8 W / B) and W doubles, until W x 8 >= B x RTT (the link is full). Jitter is not modelled (mean 0).

Break-even (:func:`breakeven`, closed form). Header-first with read fraction r moves H_0 + r (H_1 - H_0) bytes,
where H_0 and H_1 are its bytes with nobody reading (r = 0) and with everything read (r = 1); download-all moves
D. So bytes break even at r* = (D - H_0) / (H_1 - H_0). The user waits L_hf + r W_1 with header-first (the list,
then each open: W_1 is the sum of open waits at r = 1) and L_da with download-all, so waiting breaks even at
r* = (L_da - L_hf) / W_1. Above r*, header-first costs more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mailstudy.link.profiles import INITIAL_WINDOW, MSS, Profile, get_profile
from mailstudy.protocol.metrics import OPEN_COMMANDS, percentile
from mailstudy.wire import DOWN, UP, flights


@dataclass(frozen=True)
class RoundTrip:
    """One client flight and the server's answer to it. Times are seconds on the link the counts came from."""

    bytes_up: int
    bytes_down: int
    work_s: float = 0.0  # c_f: first byte up to last byte down
    pause_s: float = 0.0  # g_f: the client's time before sending it
    before_list: bool = True  # part of the time to list
    opens: bool = False  # fetches a message the user opened (its wait is what a click costs)


@dataclass(frozen=True)
class Session:
    """What the model needs from a session: the greeting's time and its round trips."""

    greeting_s: float
    round_trips: tuple[RoundTrip, ...]
    list_pause_s: float = 0.0  # the client's time from the last listing round trip to "list ready"


def session_from_chunks(chunks: Iterable[Any], t_connect: Any, t_list_ready: Any = None,
                        exchanges: Sequence[Any] = (), time_scale: float = 1e-9) -> Session:
    """A :class:`Session` from a session's chunks (:class:`mailstudy.wire.Chunk` or ``(direction, t, data)``),
    cut by :func:`mailstudy.wire.flights`: each client flight with the server flight after it.

    ``exchanges`` (the parsers' Exchange events) mark the round trips that open a message: those sent after the
    list was ready whose command fetches (FETCH, UID FETCH, RETR, TOP)."""
    def sec(t):
        return (t - t_connect) * time_scale

    t_list = None if t_list_ready is None else sec(t_list_ready)
    opens_at = sorted(sec(e.t_sent) for e in exchanges
                      if e.command in OPEN_COMMANDS and e.t_sent is not None
                      and t_list is not None and sec(e.t_sent) >= t_list)
    runs = flights(chunks)
    greeting_end = sec(runs[0].t_end) if runs and runs[0].direction == DOWN else 0.0
    trips = []
    prev_end = greeting_end
    list_pause = 0.0
    k = 0
    for i, run in enumerate(runs):
        if run.direction != UP:
            continue
        answer = runs[i + 1] if i + 1 < len(runs) else None
        t_first, t_last = sec(run.t_start), sec((answer or run).t_end)
        before = t_list is None or t_first < t_list
        opens = False
        while k < len(opens_at) and opens_at[k] <= t_last:
            opens = opens or opens_at[k] >= t_first
            k += 1
        trips.append(RoundTrip(run.nbytes, answer.nbytes if answer else 0, max(0.0, t_last - t_first),
                               max(0.0, t_first - prev_end), before, opens))
        if before and t_list is not None:
            list_pause = max(0.0, t_list - t_last)
        prev_end = t_last
    return Session(greeting_end, tuple(trips), list_pause)


def session_of(x: Any) -> Session:
    """A :class:`Session` from one, from a list of :class:`RoundTrip`, or from a live session result (anything with
    ``trace`` and ``exchanges``, as :class:`mailstudy.live.access.SessionResult` has)."""
    if isinstance(x, Session):
        return x
    if hasattr(x, "trace") and hasattr(x, "exchanges"):
        tr = x.trace
        return session_from_chunks(tr.chunks, tr.t_connect_ns, tr.milestones.get("list_ready"), x.exchanges, 1e-9)
    return Session(0.0, tuple(x))


class _Window:
    """The slow-start window of one direction (see the module formula)."""

    def __init__(self, bps: float | None, rtt: float, on: bool) -> None:
        self.bps, self.rtt, self.w, self.used = bps, rtt, INITIAL_WINDOW * MSS, 0
        self.full = not on or not bps or not rtt or self.w * 8 >= bps * rtt

    def stall(self, nbytes: int) -> float:
        extra, rem, first = 0.0, nbytes, True
        while not self.full and self.used + rem > self.w:
            rem -= self.w - self.used
            if not first:
                extra += max(0.0, self.rtt - self.w * 8 / self.bps)
            first = False
            self.w *= 2
            self.used = 0
            self.full = self.w * 8 >= self.bps * self.rtt
        self.used += rem
        return extra


def _serial(nbytes: int, bps: float | None) -> float:
    return nbytes * 8 / bps if bps else 0.0


def predict(session_or_flights: Any, profile: str | Profile) -> dict:
    """The model's times for a session on ``profile``: ``duration_s``, ``time_to_list_s``, ``open_waits_s``
    (one per opened message, in order), ``open_median_s`` and ``open_p95_s``."""
    s = session_of(session_or_flights)
    p = get_profile(profile)
    up = _Window(p.up_bps, p.rtt_s, p.slow_start)
    down = _Window(p.down_bps, p.rtt_s, p.slow_start)
    t = max(p.rtt_s, s.greeting_s + p.rtt_s / 2)
    t_list = None
    opens = []
    for f in s.round_trips:
        wait = (p.rtt_s + _serial(f.bytes_up, p.up_bps) + max(_serial(f.bytes_down, p.down_bps), f.work_s)
                + up.stall(f.bytes_up) + down.stall(f.bytes_down))
        t += f.pause_s + wait
        if f.before_list:
            t_list = t + s.list_pause_s
        if f.opens:
            opens.append(wait)
    return {"duration_s": t, "time_to_list_s": t_list, "open_waits_s": opens,
            "open_median_s": percentile(opens, 50), "open_p95_s": percentile(opens, 95)}


def total_bytes(session_or_flights: Any) -> int:
    s = session_of(session_or_flights)
    return sum(f.bytes_up + f.bytes_down for f in s.round_trips)


def breakeven(header_first_none: Any, header_first_all: Any, download_all: Any,
              profile: str | Profile) -> dict:
    """The read fractions above which header-first costs more than download-all (module formula).

    Arguments are sessions (or lists of round trips) of header-first with read fraction 0 and 1, and of download-all, on the
    same mailbox. Returns ``bytes_r`` and ``waiting_r`` (may fall outside [0, 1]: then one strategy wins at every
    read fraction; None when header-first's cost does not grow with r) with the terms they come from."""
    h0, h1, d = (total_bytes(x) for x in (header_first_none, header_first_all, download_all))
    m0, m1, md = (predict(x, profile) for x in (header_first_none, header_first_all, download_all))
    w1 = sum(m1["open_waits_s"])
    return {"profile": get_profile(profile).name,
            "bytes_r": (d - h0) / (h1 - h0) if h1 > h0 else None,
            "waiting_r": (md["time_to_list_s"] - m0["time_to_list_s"]) / w1 if w1 > 0 else None,
            "bytes_header_first_r0": h0, "bytes_header_first_r1": h1, "bytes_download_all": d,
            "list_wait_header_first_s": m0["time_to_list_s"], "list_wait_download_all_s": md["time_to_list_s"],
            "open_waits_all_s": w1}
