"""Step 5 of a replay, offline: cut the captured client stream into flights (maximal runs of client bytes not
interrupted by server bytes), each with the point the server had reached before the next one, and cut the
rewritten stream into the same flights.

Why a module of its own: this is what keeps the replay's pipelining and round trips those of the original;
it needs no socket and is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailstudy.offline.replay.rewrite import Edit
from mailstudy.protocol import make_parser
from mailstudy.protocol.events import UP, Progress
from mailstudy.wire import flights


@dataclass(frozen=True)
class Target:
    """How far the server had got when the client sent its next flight (or closed)."""

    greeted: bool
    completed: int  # exchanges complete
    continuations: int  # continuation requests / SASL challenges seen
    replied: bool  # the server sent bytes after this flight

    def reached(self, now: Progress) -> bool:
        """Whether the replay's parser got as far (``now``: its ``progress()``); also True when the new server
        has answered every command sent (it answered differently from the original server: waiting longer
        would only time out)."""
        if self.greeted and not now.greeted:
            return False
        if now.completed > self.completed:
            return True  # e.g. a refused literal or login: the exchange ended instead of a "+"
        if now.completed >= self.completed and now.continuations >= self.continuations:
            return True
        return now.greeted and now.settled


def _state(p, replied: bool) -> Target:
    now = p.progress()
    return Target(now.greeted, now.completed, now.continuations, replied)


@dataclass
class ReplayFlight:
    """One client flight (:class:`mailstudy.wire.Flight`) to send again: its offsets in the client stream and
    where the server must get before the next."""

    start: int
    end: int
    target: Target
    data: bytes = b""  # after rewriting


def client_flights(session) -> tuple[Target, list[ReplayFlight]]:
    """The original session's client flights and, before the first one, what the client waited for (the
    greeting). The flights are :func:`mailstudy.wire.flights`; the parser is fed the chunks of each flight in
    turn, and its progress at the end of the server's answer is the flight's target."""
    chunks = [c for c in session.connection.chunks if c.data]
    p = make_parser(session.protocol)
    out: list[ReplayFlight] = []
    initial = Target(False, 0, 0, False)
    i = off = 0
    for f in flights(chunks):
        n = 0
        while n < f.nbytes:
            c = chunks[i]
            p.feed(c.direction, c.data, c.t)
            n += len(c.data)
            i += 1
        if f.direction == UP:
            out.append(ReplayFlight(off, off + f.nbytes, _state(p, False)))
            off += f.nbytes
        elif out:
            out[-1].target = _state(p, True)
        else:
            initial = _state(p, True)
    return initial, out


def apply_edits(up: bytes, flights: list[ReplayFlight], edits: list[Edit]) -> None:
    """Cut the rewritten stream into the same flights (an edit belongs to the flight where it starts)."""
    edits = sorted(edits)
    k = 0
    cursor = 0
    for f in flights:
        pos = max(f.start, cursor)
        out = bytearray()
        while k < len(edits) and edits[k][0] < f.end:
            s, e, new = edits[k]
            if s >= pos:
                out += up[pos:s] + new
                pos = e
            k += 1
        if pos < f.end:
            out += up[pos:f.end]
        cursor = max(pos, f.end)
        f.data = bytes(out)
