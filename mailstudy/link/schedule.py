"""When each byte through one direction of the link reaches its peer: the link's one rule, as pure arithmetic.

Why a module of its own: the relay (which sleeps until these times) and the tests (which check them without a
socket) must share one rule. Per direction, for bytes handed to the link at time ``t_in``:

- serialization: a byte leaves no earlier than the byte before it plus its own transmission time (8 / bit/s);
  bytes are cut into pieces of at most one MSS (a packet), each due when its *last* byte has been serialized,
  so no byte is ever early (toxiproxy instead delays whole buffered chunks of up to ~32 KB);
- propagation: one way is RTT/2, plus a seeded jitter drawn per piece (normal, sd = ``jitter_s``, never making
  the delay negative); a piece never arrives before the piece ahead of it, so jitter never reorders bytes;
- the handshake: no byte either way reaches its peer earlier than one RTT after the connection opened (a real
  three-way handshake costs one RTT before data can flow);
- optional slow start: a first window of 10 x 1448 B per RTT, doubling each RTT until a window fills the
  bandwidth-delay product (then the link is full and only serialization limits). Off by default.
"""

from __future__ import annotations

import random

from mailstudy.link.profiles import INITIAL_WINDOW, MSS, Profile


class Direction:
    """The schedule of one direction of one connection opened at ``t_open`` (seconds, any monotonic clock)."""

    def __init__(self, profile: Profile, down: bool, t_open: float, seed: str | int = 0) -> None:
        self.bps = profile.down_bps if down else profile.up_bps
        self.rtt = profile.rtt_s
        self.one_way = profile.rtt_s / 2
        self.jitter = profile.jitter_s
        self.rng = random.Random(f"link:{seed}:{'down' if down else 'up'}")
        self.earliest = t_open + profile.rtt_s  # the handshake
        self.free_at = t_open  # when the previous byte finished serializing
        self.last_arrival = t_open
        self.window = INITIAL_WINDOW * MSS
        self.used = 0  # bytes sent in the current slow-start round
        self.round_start: float | None = None
        self.full = not profile.slow_start or not self.bps or not self.rtt or self._fills()

    def _fills(self) -> bool:
        return self.window * 8 >= self.bps * self.rtt

    def schedule(self, t_in: float, nbytes: int) -> list[tuple[float, int]]:
        """``(t_due, size)`` pieces for ``nbytes`` handed to the link at ``t_in``, in order (none for none)."""
        if nbytes <= 0:
            return []
        step = nbytes if not self.bps else MSS  # unlimited bandwidth: nothing to serialize, one piece
        out = []
        for offset in range(0, nbytes, step):
            size = min(step, nbytes - offset)
            start = max(t_in, self.free_at)
            if not self.full:
                start = self._slow_start(start, size)
            done = start + (size * 8 / self.bps if self.bps else 0.0)
            self.free_at = done
            delay = self.one_way
            if self.jitter:
                delay = max(0.0, delay + self.rng.gauss(0.0, self.jitter))
            arrival = max(done + delay, self.last_arrival, self.earliest)
            self.last_arrival = arrival
            out.append((arrival, size))
        return out

    def _slow_start(self, start: float, size: int) -> float:
        if self.round_start is None:
            self.round_start = start
        if self.used + size > self.window:  # this window is spent: the next may go one RTT after the last began
            self.round_start = max(self.round_start + self.rtt, start)
            self.window *= 2
            self.used = 0
            self.full = self._fills()
        self.used += size
        return max(start, self.round_start)
