"""What a session through the relay spent in its own processes, measured by the relay itself (issue 16).

Why: a session through the link is network time plus the client's and the server's own work (CPU, disk),
and ns-3 simulates only the network. On lan the work is most of a session (IMAP header-first of 20 messages:
about 7 ms of network in 60 ms) and varies from one run to the next, so comparing a relay session's duration with
ns-3 fed *another* session's work compares two runs of the machine, not the link. The relay sits between the two
processes and sees when each one answered, so it can say what this very session's work was, in the model's own
terms (:mod:`mailstudy.link.model`: c_0, o_f, g_f, and each answer's pieces as the server produced them), so the
model and ns-3 can replay this very session's work (:func:`session_of_report`) and their durations compare with
the relay's like with like; ``duration - work`` is the session's network time.

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

from mailstudy.link.model import RoundTrip, Session

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


def _delivered_at(outs: list[tuple], nbytes: int) -> tuple[float, float] | None:
    """When the ``nbytes``-th byte of a direction was delivered, and how late (``outs``: (time, size[, due])
    sends in order; without a due time, never late)."""
    total = 0
    for out in outs:
        total += out[1]
        if total >= nbytes:
            return out[0], max(0.0, out[0] - out[2]) if len(out) > 2 else 0.0
    return None


def flights_of(reads: list[tuple[float, str, int]], sent: dict[str, list[tuple[float, int]]],
               t_server: float) -> dict:
    """The session as the model and ns-3 replay it (:class:`mailstudy.link.model.Session`'s terms, JSON-ready),
    from the relay's ``reads`` ((time, direction, size), any order), its sends per direction (``sent[UP]``: to
    the server, ``sent[DOWN]``: to the client; (time, size) in order) and when it connected to the server:
    ``greeting_s`` (c_0), ``greeting_bytes``, ``late_s`` (how much later than due the relay delivered the last
    byte of each flight and answer, summed: its own delay on the session's path), and ``flights``, each ``{"pause_s": g_f, "request": [[q, u], ...],
    "answer": [[o, d], ...], "answered_at": t}`` (q from the flight's first byte read; o from the request's last
    byte delivered to the server, so the last o is o_f; t: when the answer's last byte was handed to the client,
    on the relay's clock). Module docstring for the terms."""
    counted = {UP: 0, DOWN: 0}
    out: dict = {"greeting_s": 0.0, "greeting_bytes": 0, "flights": [], "late_s": 0.0}
    request_end: float | None = None  # when the current request's last byte reached the server
    answer_end: float | None = None  # when the previous answer's last byte reached the client
    for direction, group in groupby(sorted(reads), key=lambda r: r[1]):
        group = list(group)
        counted[direction] += sum(size for _, _, size in group)
        if direction == UP:
            t0 = group[0][0]
            out["flights"].append({"pause_s": max(0.0, t0 - answer_end) if answer_end is not None else 0.0,
                                   "request": [[t - t0, n] for t, _, n in group], "answer": []})
            request_end = _ended(out, sent[UP], counted[UP])
        elif out["flights"]:
            if request_end is not None:
                out["flights"][-1]["answer"] += [[max(0.0, t - request_end), n] for t, _, n in group]
        else:  # the server spoke first: its greeting
            out.update(greeting_s=max(0.0, group[-1][0] - t_server), greeting_bytes=sum(n for _, _, n in group))
        if direction == DOWN:
            answer_end = _ended(out, sent[DOWN], counted[DOWN])
            if out["flights"]:
                out["flights"][-1]["answered_at"] = answer_end
    return out


def _ended(out: dict, sent: list[tuple], nbytes: int) -> float | None:
    """When a flight's last byte was delivered; its lateness is added to ``out["late_s"]``."""
    end = _delivered_at(sent, nbytes)
    if end is None:
        return None
    out["late_s"] += end[1]
    return end[0]


def work_of(flights: dict) -> Work:
    """The totals of :func:`flights_of`'s session: c_0, the sum of o_f (each answer's last offset) and of g_f."""
    server = sum(f["answer"][-1][0] for f in flights["flights"] if f["answer"])
    client = sum(f["pause_s"] for f in flights["flights"])
    return Work(flights["greeting_s"], server, client, len(flights["flights"]))


def session_of_report(report: dict, like=None):
    """A :class:`mailstudy.link.model.Session` from a relay's report (:meth:`mailstudy.link.relay.Link.reports`),
    for the model or ns-3 to replay this very session's work. The relay cannot tell which flights come before the
    list or fetch an opened message: with ``like`` (a Session of the same script, e.g. the baseline's, with as many
    flights) those flags and the pause before "list ready" are taken from it; without it every flight counts as
    before the list."""
    flights = report["flights"]
    same = like is not None and len(like.round_trips) == len(flights)
    trips = []
    for i, f in enumerate(flights):
        answer = tuple((o, d) for o, d in f["answer"])
        request = tuple((q, u) for q, u in f["request"])
        trips.append(RoundTrip(sum(u for _, u in request), sum(d for _, d in answer),
                               answer[-1][0] if answer else 0.0, f["pause_s"],
                               like.round_trips[i].before_list if same else True,
                               like.round_trips[i].opens if same else False, answer, request))
    return Session(report["greeting_s"], tuple(trips), like.list_pause_s if same else 0.0, report["greeting_bytes"])


class Ledger:
    """The relay's record of one connection: reads and sends per direction, from any of its threads. A ledger
    made with ``keep=False`` records nothing (a relay nobody asked for reports keeps no growing lists)."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self.reads: list[tuple[float, str, int]] = []
        self.sent: dict[str, list[tuple[float, int]]] = {UP: [], DOWN: []}
        self.t_server: float | None = None
        self.t_server_due = 0.0  # when the relay was due to connect to the server (the emulated accept)
        self.t_open = 0.0  # when the relay accepted the client

    def read(self, t: float, direction: str, size: int) -> None:
        if not self.keep:
            return
        with self._lock:
            self.reads.append((t, direction, size))

    def send(self, direction: str, size: int, due: float) -> None:
        """``size`` bytes handed to the peer now; ``due``: when the last of them was due."""
        if not self.keep:
            return
        t = time.perf_counter()
        with self._lock:
            self.sent[direction].append((t, size, due))

    def flights(self) -> dict:
        with self._lock:
            out = flights_of(list(self.reads), {k: list(v) for k, v in self.sent.items()}, self.t_server or 0.0)
        out["late_s"] += max(0.0, (self.t_server or 0.0) - self.t_server_due)  # a late connect delays the greeting
        # on the perf_counter clock, which a client's trace shares (CLOCK_MONOTONIC): when the relay accepted the
        # client and when it handed the client its last byte
        out["opened_at"] = self.t_open
        out["last_delivery_at"] = self.sent[DOWN][-1][0] if self.sent[DOWN] else None
        return out
