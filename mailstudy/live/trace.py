"""Record what a client's socket really sent and received, chunk by chunk, with a clock.

Why: every metric in mailstudy (bytes each way, round trips, time to list) is computed from what crossed the
client's socket, not from what the client library believes it did. A :class:`TracedSocket` wraps the real
socket under imaplib/poplib; nothing else in those libraries is patched. Times are ``time.perf_counter_ns()``.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from mailstudy.wire import (  # a Chunk here: one send() or recv(), ``t`` = perf_counter_ns()
    DOWN,
    UP,
    Chunk,
)


@dataclass
class Trace:
    """Everything one session's client socket saw: chunks in order and named milestones."""

    t_connect_ns: int = 0  # perf_counter_ns() just before connect()
    chunks: list[Chunk] = field(default_factory=list)  # t: perf_counter_ns() when the call returned
    milestones: dict[str, int] = field(default_factory=dict)
    local: tuple[str, int] | None = None
    remote: tuple[str, int] | None = None

    def mark(self, name: str) -> None:
        """Record a milestone (e.g. ``list_ready``) at the current time."""
        self.milestones[name] = time.perf_counter_ns()

    def stream(self, direction: str) -> bytes:
        """All payload bytes one way, concatenated."""
        return b"".join(c.data for c in self.chunks if c.direction == direction)

    @property
    def bytes_up(self) -> int:
        return sum(len(c.data) for c in self.chunks if c.direction == UP)

    @property
    def bytes_down(self) -> int:
        return sum(len(c.data) for c in self.chunks if c.direction == DOWN)

    @property
    def t_end_ns(self) -> int:
        return self.chunks[-1].t if self.chunks else self.t_connect_ns


class TracedSocket:
    """A socket proxy that records every chunk; imaplib/poplib use it through ``makefile`` and ``sendall``.

    Only the calls the stdlib clients make are recorded (send, sendall, recv, recv_into, makefile); any other
    attribute is passed to the real socket.
    """

    def __init__(self, sock: socket.socket, trace: Trace) -> None:
        self._sock = sock
        self._trace = trace
        try:
            trace.local = sock.getsockname()[:2]
            trace.remote = sock.getpeername()[:2]
        except OSError:
            pass

    # -- writing -------------------------------------------------------------------------------------------
    def sendall(self, data: bytes, *args) -> None:
        self._sock.sendall(data, *args)
        self._record(UP, bytes(data))

    def send(self, data: bytes, *args) -> int:
        n = self._sock.send(data, *args)
        self._record(UP, bytes(data[:n]))
        return n

    # -- reading -------------------------------------------------------------------------------------------
    def recv(self, bufsize: int, *args) -> bytes:
        data = self._sock.recv(bufsize, *args)
        if data:
            self._record(DOWN, data)
        return data

    def recv_into(self, buffer, nbytes: int = 0, *args) -> int:
        n = self._sock.recv_into(buffer, nbytes, *args)
        if n:
            self._record(DOWN, bytes(memoryview(buffer)[:n]))
        return n

    def makefile(self, mode: str = "r", buffering=None, **kwargs):
        # socket.makefile builds a SocketIO over *self*, so every read goes through recv_into above.
        return socket.socket.makefile(self, mode, buffering, **kwargs)  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:  # called by SocketIO.close()
        pass

    def _record(self, direction: str, data: bytes) -> None:
        self._trace.chunks.append(Chunk(direction, time.perf_counter_ns(), data))

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def traced_connection(host: str, port: int, timeout: float | None, trace: Trace) -> TracedSocket:
    """Connect to ``host:port`` and return a :class:`TracedSocket`; stamps ``trace.t_connect_ns`` first."""
    trace.t_connect_ns = time.perf_counter_ns()
    sock = socket.create_connection((host, port), timeout)
    return TracedSocket(sock, trace)


def perf_to_epoch_offset_ns() -> int:
    """``time.time_ns() - time.perf_counter_ns()``, from the sample with the narrowest bracket of five."""
    best = None
    for _ in range(5):
        a = time.perf_counter_ns()
        wall = time.time_ns()
        b = time.perf_counter_ns()
        cand = (b - a, wall - (a + b) // 2)
        if best is None or cand[0] < best[0]:
            best = cand
    return best[1]
