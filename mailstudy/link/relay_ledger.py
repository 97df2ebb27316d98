"""What a session through the relay spent in its own processes, measured by the relay itself (issue 16).

Why: a session through the link is network time plus the client's and the server's own work (CPU, disk),
and ns-3 simulates only the network. On lan the work is most of a session (IMAP header-first of 20 messages:
about 7 ms of network in 60 ms) and varies from one run to the next, so comparing a relay session's duration with
ns-3 fed *another* session's work compares two runs of the machine, not the link. The relay sits between the two
processes and sees when each one answered, so it can say what this very session's work was, in the model's own
terms (:mod:`mailstudy.link.model`: c_0, o_f, g_f), and ``duration - work`` is the network time of the same
session, comparable with ns-3's ``duration - work`` of the session ns-3 replayed.

The terms, from the relay's clock (reads stamped by the kernel on receipt, writes when sent):

- flights: the bytes read, in time order, grouped by who sent them (a change of sender starts a new flight);
- c_0, the greeting's work: from the relay's connect to the server to the last byte of the server's first flight;
- o_f, the server's work on flight f: from the relay's delivery of the request's last byte to the server to the
  last byte of the answer read from the server;
- g_f, the client's pause before flight f: from the relay's delivery of the previous answer's last byte to the
  client to the first byte of the request read from the client (never below 0: a client may send early).

The loopback hops between the relay and each process fall in the work (they are the processes' side of the
relay); what the relay adds by waking late stays in the network time, where it belongs. Pure: no socket.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from itertools import groupby

UP, DOWN = "up", "down"  # the client's bytes to the server, the server's to the client


@dataclass(frozen=True)
class Work:
    """A session's own work as the relay saw it: ``greeting_s`` (c_0) plus each flight's o_f and g_f."""

    greeting_s: float
    server_s: float  # sum of o_f
    client_s: float  # sum of g_f
    flights: int  # client flights seen

    @property
    def total_s(self) -> float:
        return self.greeting_s + self.server_s + self.client_s

    def to_dict(self) -> dict:
        return {"work_s": self.total_s, "greeting_s": self.greeting_s, "server_s": self.server_s,
                "client_s": self.client_s, "flights": self.flights}


def _delivered_at(outs: list[tuple[float, int]], nbytes: int) -> float | None:
    """When the ``nbytes``-th byte of a direction was delivered (``outs``: (time, size) sends in order)."""
    total = 0
    for t, size in outs:
        total += size
        if total >= nbytes:
            return t
    return None


def work_of(reads: list[tuple[float, str, int]], sent: dict[str, list[tuple[float, int]]],
            t_server: float) -> Work:
    """The session's work from the relay's ``reads`` ((time, direction, size), any order), its sends per
    direction (``sent[UP]``: to the server; ``sent[DOWN]``: to the client; (time, size) in order) and the time
    its connection to the server was made. Module docstring for the terms."""
    counted = {UP: 0, DOWN: 0}
    greeting = server = client = 0.0
    flights = 0
    request_end: float | None = None  # when the current request's last byte reached the server
    answer_end: float | None = None  # when the previous answer's last byte reached the client
    first = True
    for direction, group in groupby(sorted(reads), key=lambda r: r[1]):
        group = list(group)
        counted[direction] += sum(size for _, _, size in group)
        if direction == DOWN:
            if first:
                greeting = max(0.0, group[-1][0] - t_server)
            elif request_end is not None:
                server += max(0.0, group[-1][0] - request_end)
            answer_end = _delivered_at(sent[DOWN], counted[DOWN])
        else:
            flights += 1
            if answer_end is not None:
                client += max(0.0, group[0][0] - answer_end)
            request_end = _delivered_at(sent[UP], counted[UP])
        first = False
    return Work(greeting, server, client, flights)


class Ledger:
    """The relay's record of one connection: reads and sends per direction, from any of its threads. A ledger
    made with ``keep=False`` records nothing (a relay nobody asked for reports keeps no growing lists)."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self.reads: list[tuple[float, str, int]] = []
        self.sent: dict[str, list[tuple[float, int]]] = {UP: [], DOWN: []}
        self.t_server: float | None = None

    def read(self, t: float, direction: str, size: int) -> None:
        if not self.keep:
            return
        with self._lock:
            self.reads.append((t, direction, size))

    def send(self, direction: str, size: int) -> None:
        if not self.keep:
            return
        t = time.perf_counter()
        with self._lock:
            self.sent[direction].append((t, size))

    def work(self) -> Work:
        with self._lock:
            return work_of(list(self.reads), {k: list(v) for k, v in self.sent.items()}, self.t_server or 0.0)
