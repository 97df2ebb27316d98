"""The one definition of each session metric (bytes, commands, round trips, durations), for traces and pcaps.

Why: a number in a chart must mean the same whether it came from a live socket trace or from a capture, so
both paths reduce to the same inputs here: flights of ``(direction, t, nbytes)`` chunks and the parsers' exchanges.
The nouns (:class:`~mailstudy.wire.Flight`, :class:`~mailstudy.wire.SessionMetrics` and its key list) live in
:mod:`mailstudy.wire`.
Pure functions; no clock, no I/O. Times are whatever the caller recorded, multiplied by ``time_scale`` to get
seconds (1e-9 for ``perf_counter_ns`` integers, 1.0 for float seconds from a pcap).
"""

from __future__ import annotations

import math
from functools import partial
from itertools import compress, repeat
from operator import eq, is_not
from typing import Any, Iterable, Sequence

from mailstudy.protocol import imap, pop3
from mailstudy.protocol.events import Exchange
from mailstudy.wire import UP, Flight, SessionMetrics, flights

FRAME_COLUMNS = [
    "index",
    "tag",
    "command",
    "arguments",
    "status",
    "t_sent_s",
    "t_first_response_s",
    "t_done_s",
    "latency_s",
    "bytes_up",
    "bytes_down",
    "missing",  # bytes a capture gap lost inside the exchange (0: complete)
]


def _as_flights(chunks: Sequence[Any]) -> list[Flight]:
    """Flights of ``chunks``: Flights already, :class:`~mailstudy.wire.Chunk` objects, or tuples in Chunk's
    field order, ``(direction, t, data or nbytes)``."""
    if chunks and chunks[0].__class__ is Flight:
        return list(chunks)
    return flights(chunks)


def round_trips(directions_with_sizes: Iterable[tuple[str, Any]]) -> int:
    """Client flights: maximal runs of client payload (size > 0) not interrupted by server payload (size > 0).

    Equals the number of commands when the client waits for each reply before sending again; pipelining makes
    it smaller. Empty chunks (pure ACKs in a pcap) neither start nor end a flight.
    """
    return sum(1 for f in flights((d, None, n) for d, n in directions_with_sizes) if f.direction == UP)


def session_metrics(
    chunks: Sequence[Any],
    exchanges: Sequence[Exchange],
    t_start: Any,
    t_list_ready: Any = None,
    time_scale: float = 1e-9,
    wire: Sequence[Any] | None = None,
    compressed: Sequence[Any] | None = None,
) -> SessionMetrics:
    """One session's numbers: bytes each way, commands, round trips, duration, time to list, failed exchanges.

    ``chunks`` in the order seen: the session's flights (:class:`~mailstudy.wire.Flight`), its
    :class:`~mailstudy.wire.Chunk` objects or ``(direction, t, nbytes)`` tuples (Chunk's field order);
    ``t_start`` is the client's connect() (the SYN in a pcap); ``duration_s`` runs from it to the last payload;
    ``time_to_list_s`` to ``t_list_ready`` (None if not given). ``exchanges_failed`` counts exchanges whose
    status is not OK/+OK (including None: never answered). Round trips are the client's flights.

    ``wire``: with TLS, the chunks as they crossed the socket (the records; ``chunks`` are then the protocol's
    bytes inside): the ``wire_*`` and ``tls_*`` numbers come from the two, and the duration runs to the last
    record. Without it the wire is ``chunks`` and TLS added nothing.

    ``compressed``: with COMPRESS=DEFLATE, the stream under the protocol (clear start, then deflated; TLS's
    payload, or the wire itself without TLS): the ``compressed_*`` numbers, and TLS's share is the wire less it.
    """
    fl = _as_flights(chunks)
    up, down, round_trips, t_end = _totals(fl)
    if wire is None:
        wire_up, wire_down, wire_trips = up, down, round_trips
    else:  # the duration runs to the last record
        wire_up, wire_down, wire_trips, t_end = _totals(_as_flights(wire))
    t_end = t_start if t_end is None else t_end
    if compressed is None:
        z_up, z_down = up, down
    else:
        z_up, z_down, _, _ = _totals(_as_flights(compressed))
    return SessionMetrics(
        bytes_up=up,
        bytes_down=down,
        commands=len(exchanges),
        round_trips=round_trips,
        duration_s=(t_end - t_start) * time_scale,
        time_to_list_s=None if t_list_ready is None else (t_list_ready - t_start) * time_scale,
        exchanges_failed=sum(1 for e in exchanges if not e.ok),
        wire_bytes_up=wire_up,
        wire_bytes_down=wire_down,
        tls_bytes_up=wire_up - z_up,
        tls_bytes_down=wire_down - z_down,
        tls_round_trips=wire_trips - round_trips,
        compressed_bytes_up=z_up,
        compressed_bytes_down=z_down,
    )


def _totals(fl: list) -> tuple[int, int, int, Any]:
    """(bytes up, bytes down, client flights, latest flight end or None) of flights, each column read once at C
    speed: an attribute read per flight and pass was most of the metrics' time (a session of 124 flights, as the
    bench capture's: 31 -> 17 us)."""
    if not fl:
        return 0, 0, 0, None
    columns = list(zip(*fl))
    sizes = columns[1]
    up = list(compress(sizes, map(eq, columns[0], repeat(UP))))
    ends = list(filter(partial(is_not, None), columns[3]))
    return sum(up), sum(sizes) - sum(up), len(up), max(ends) if ends else None


#: What a capture's gaps cost a session (pcaps only: a live trace loses nothing), see :func:`loss_counts`.
LOSS_KEYS = ("exchanges_incomplete", "bytes_missing")


def loss_counts(exchanges: Sequence[Exchange], bytes_missing: int) -> dict[str, int]:
    """``exchanges_incomplete``: exchanges that lost bytes to a capture gap (``Exchange.missing``; they are
    flagged, not failed: their status may well be OK); ``bytes_missing``: the payload bytes the capture lost
    (reassembly's gaps, both ways)."""
    return {"exchanges_incomplete": sum(1 for e in exchanges if e.missing), "bytes_missing": bytes_missing}


#: Commands that fetch a message (or part of one): after the list is ready, each is a click the user waits for.
#: JMAP (HTTP method names): a blob GET or an Email/get POST after the list is a message being opened
OPEN_COMMANDS = frozenset({"FETCH", "UID FETCH", "RETR", "TOP", "GET", "POST"})


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def open_waits(exchanges: Sequence[Exchange], t_list_ready: Any, time_scale: float = 1e-9) -> dict:
    """What the user waits for on each click: the latency (command sent to response complete) of every message
    fetched after the list was ready. ``opens``, ``open_median_s`` and ``open_p95_s`` (None without opens)."""
    waits = [] if t_list_ready is None else [
        (e.t_done - e.t_sent) * time_scale for e in sorted(exchanges, key=lambda e: e.index)
        if e.command in OPEN_COMMANDS and e.t_sent is not None and e.t_done is not None
        and e.t_sent >= t_list_ready]
    return {"opens": len(waits), "open_median_s": percentile(waits, 50), "open_p95_s": percentile(waits, 95)}


def redacted(exchange: Exchange) -> str:
    """The exchange's arguments with credentials replaced by ``***``."""
    module = pop3 if exchange.protocol == "pop3" else imap
    return module.redacted_arguments(exchange.command, exchange.arguments)


def exchange_rows(exchanges: Iterable[Exchange], time_scale: float = 1e-9, t_start: Any = None) -> list[dict]:
    """One dict per exchange in the order sent, keys :data:`FRAME_COLUMNS`; times in seconds (from ``t_start``
    if given), arguments with credentials redacted. What :func:`exchanges_frame` tabulates (and a Parquet
    writer streams without pandas)."""
    t0 = 0 if t_start is None else t_start

    def secs(t: Any) -> float | None:
        return None if t is None else (t - t0) * time_scale

    rows = []
    for e in sorted(exchanges, key=lambda e: e.index):
        latency = None if e.t_done is None or e.t_sent is None else (e.t_done - e.t_sent) * time_scale
        rows.append(
            {
                "index": e.index,
                "tag": e.tag,
                "command": e.command,
                "arguments": redacted(e),
                "status": e.status,
                "t_sent_s": secs(e.t_sent),
                "t_first_response_s": secs(e.t_first_response),
                "t_done_s": secs(e.t_done),
                "latency_s": latency,
                "bytes_up": e.bytes_up,
                "bytes_down": e.bytes_down,
                "missing": e.missing,
            }
        )
    return rows


def exchanges_frame(exchanges: Iterable[Exchange], time_scale: float = 1e-9, t_start: Any = None):
    """A pandas DataFrame, one row per exchange in the order sent; times in seconds (from ``t_start`` if given)."""
    import pandas as pd

    frame = pd.DataFrame(exchange_rows(exchanges, time_scale, t_start), columns=FRAME_COLUMNS)
    for col in ("t_sent_s", "t_first_response_s", "t_done_s", "latency_s"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame
