"""The nouns every layer shares, defined once: a direction, a chunk of bytes, a flight, a session's metrics.

Why a module of its own: the live trace, TCP reassembly, the parsers, the metrics, the replay and the ladder all
speak of "bytes one way at a time t" and of "a run of bytes one way"; when each defined its own (``t_ns`` here,
``t`` there, four kinds of flight) every consumer needed ``hasattr`` checks and the metric key list was written
four times. Pure: no I/O, no clock.

* :data:`UP` (client to server) and :data:`DOWN` (server to client) are the two directions.
* :class:`Chunk` is bytes that crossed one way at ``t``: one ``send``/``recv`` of a traced socket
  (``t`` = ``perf_counter_ns``) or bytes reassembly made readable (``t`` = float seconds of the capture).
  Where a layer takes plain tuples instead, they are in the same field order, ``(direction, t, data)``
  (:func:`chunk_parts` reads either; a ``(direction, data)`` pair is a chunk without a time).
* :class:`Flight` is a maximal run of payload one way, not interrupted by payload the other way (docs/design.md,
  "Words": client flights are the round trips). :func:`flights` cuts chunks into flights.
* :class:`SessionMetrics` is one session's numbers (the one definition is
  :func:`mailstudy.protocol.metrics.session_metrics`); :data:`METRIC_KEYS` is their one key list, and
  ``as_row()`` the dict a table or pandas wants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal, NamedTuple

UP = "up"  # client -> server
DOWN = "down"  # server -> client
Direction = Literal["up", "down"]
DIRECTIONS = (UP, DOWN)


def check_direction(direction: str) -> None:
    """ValueError unless ``direction`` is UP or DOWN."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be {UP!r} or {DOWN!r}, not {direction!r}")


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes that crossed one way at time ``t`` (the caller's clock: perf_counter_ns or capture seconds)."""

    direction: str  # UP or DOWN
    t: Any
    data: bytes


def chunk_parts(chunk: Any) -> tuple[str, Any, Any]:
    """``(direction, t, data)`` of a :class:`Chunk`, of a tuple in Chunk's field order, or of a
    ``(direction, data)`` pair (``t`` None): the one order of a chunk's fields for every layer that takes tuples."""
    if chunk.__class__ is Chunk:
        return chunk.direction, chunk.t, chunk.data
    if len(chunk) == 2:
        return chunk[0], None, chunk[1]
    return chunk[0], chunk[1], chunk[2]


class Flight(NamedTuple):
    """A maximal run of payload one way: its bytes and the times of its first and last chunk (and, when
    :func:`flights` is asked for them, ``pieces``: each chunk's ``(t, bytes)``)."""

    direction: str
    nbytes: int
    t_start: Any
    t_end: Any
    pieces: tuple[tuple[Any, int], ...] = ()


def flights(chunks: Iterable[Any], with_pieces: bool = False) -> list[Flight]:
    """The flights of ``chunks`` in order: :class:`Chunk` objects or ``(direction, t, data)`` tuples (``data``
    may be a byte count). Empty chunks (a pure ACK) neither start nor end a flight. ``with_pieces`` keeps each
    chunk's time and size in its flight (the latency model replays them; off, nothing is kept per chunk)."""
    out: list[Flight] = []
    cur_dir = None
    nbytes = 0
    t_start = t_end = None
    pieces: list[tuple[Any, int]] = []
    for c in chunks:
        direction, t, data = (c.direction, c.t, c.data) if c.__class__ is Chunk else c
        n = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else int(data)
        if n <= 0:
            if direction not in DIRECTIONS:
                check_direction(direction)
            continue
        if direction != cur_dir:
            check_direction(direction)
            if cur_dir is not None:
                out.append(Flight(cur_dir, nbytes, t_start, t_end, tuple(pieces)))
                pieces.clear()
            cur_dir, nbytes, t_start = direction, 0, t
        nbytes += n
        t_end = t
        if with_pieces:
            pieces.append((t, n))
    if cur_dir is not None:
        out.append(Flight(cur_dir, nbytes, t_start, t_end, tuple(pieces)))
    return out


@dataclass(frozen=True, slots=True)
class SessionMetrics:
    """One session's numbers (docs/design.md, "Words", defines each)."""

    bytes_up: int
    bytes_down: int
    commands: int
    round_trips: int
    duration_s: float
    time_to_list_s: float | None
    exchanges_failed: int
    #: TCP payload each way: the TLS records with TLS; in clear text equal to ``bytes_up``/``bytes_down``, which
    #: are always the protocol's own bytes (inside TLS when there is TLS)
    wire_bytes_up: int = 0
    wire_bytes_down: int = 0
    #: what TLS adds on the wire, ``wire_bytes_* - compressed_bytes_*``: handshakes, tickets, record headers and
    #: MACs (``wire_bytes_* - bytes_*`` without COMPRESS)
    tls_bytes_up: int = 0
    tls_bytes_down: int = 0
    #: the client flights TLS adds: the wire's client flights less the protocol's (``round_trips``)
    tls_round_trips: int = 0
    #: the stream under the protocol with COMPRESS=DEFLATE (its clear start, then deflated): TLS's payload, or
    #: the TCP payload without TLS; without COMPRESS equal to ``bytes_up``/``bytes_down``
    compressed_bytes_up: int = 0
    compressed_bytes_down: int = 0

    def as_row(self) -> dict[str, Any]:
        """The numbers as a dict in :data:`METRIC_KEYS` order (a table row, a JSON object, a pandas record)."""
        return {k: getattr(self, k) for k in METRIC_KEYS}


METRIC_KEYS: tuple[str, ...] = tuple(f.name for f in fields(SessionMetrics))
