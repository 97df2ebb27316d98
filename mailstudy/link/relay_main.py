"""The link's relay process: listens on 127.0.0.1, forwards each connection upstream, delays bytes by the rule.

Why a process of its own: the client's and the server's CPU work must not skew the relay's clock (docs/design.md,
"Networks"). Started by :class:`mailstudy.link.relay.Link`; argv[1] is a JSON object
``{"profile": {...}, "upstreams": [[host, port], ...], "seed": s, "report": false}``. When every listener is
bound it prints one JSON line ``{"ports": [...]}`` (the listening port for each upstream, in order) and serves
until killed. With ``"report": true`` it also prints, as each connection closes, one JSON line of that session's
own work as the relay saw it (:mod:`mailstudy.link.relay_ledger`: what ``duration - work`` leaves is the
session's network time, the part ns-3 can check).

Each direction of each connection is a reader thread (recv, stamp, schedule with
:class:`~mailstudy.link.schedule.Direction`) and a writer thread (sleep until a piece is due, send every piece
that is due in one call). Threads rather than asyncio: a blocking recv/send per direction keeps the two
directions independent (an upload never waits behind a download) and adds the least time per hop. The reader
reads without limit, so a sender is never slowed by the link's buffer; the receiver sees the emulated times.
When one side closes, the other side gets its remaining bytes (on time) and then an orderly close.

The handshake (:func:`mailstudy.link.model.connection_setup`): the kernel completes the client's connect to the
relay at once, so the relay plays the rest. It connects to the server 1.5 RTT after the client connected (when
the client's ACK would reach it: the server's accept, and a greeting, happen then, and reach the client 2 RTT
after connect), and it counts the bytes a client sends before anything has reached it from R later than it
sent them (a real client is blocked in connect() for that RTT: a TLS ClientHello leaves at R, not at 0).
"""

from __future__ import annotations

import json
import os
import queue
import socket
import struct
import sys
import threading
import time

from mailstudy.link.model import connection_setup
from mailstudy.link.profiles import get_profile
from mailstudy.link.relay_ledger import DOWN, UP, Ledger, work_of
from mailstudy.link.schedule import Direction
from mailstudy.processes import precise_timers

RECV_SIZE = 65536
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux <asm-generic/socket.h>; also the cmsg type
ANC_SIZE = socket.CMSG_SPACE(16)  # one struct timespec
RELAY_NICE = -10
_EOF = object()  # the end of a direction; not None, which the writer uses for "nothing held back"


def _kernel_clock(sock: socket.socket):
    """A ``recv`` that also says when the kernel received the bytes, on the perf_counter clock.

    Why: the relay's thread wakes some time after the bytes arrived (tens of microseconds, more on a busy
    machine); counting the delay from the wake-up would add that to every hop. Linux stamps TCP data on receipt
    (``SO_TIMESTAMPNS``, wall clock); the stamp is moved to perf_counter with an offset taken at start. Where
    the stamp is missing, the wake-up time is used."""
    clock = time.perf_counter
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        def plain(n: int):
            data = sock.recv(n)
            return data, clock()
        return plain
    offset = time.time() - clock()  # wall minus perf, good to microseconds over a session

    def stamped(n: int):
        data, anc, _flags, _addr = sock.recvmsg(n, ANC_SIZE)
        now = clock()
        for level, kind, blob in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(blob) >= 16:
                sec, nsec = struct.unpack("qq", blob[:16])
                return data, min(now, sec + nsec * 1e-9 - offset)
        return data, now
    return stamped


class _Opening:
    """One connection's setup (:func:`mailstudy.link.model.connection_setup`), shared by its two directions."""

    def __init__(self, t_open: float, rtt_s: float) -> None:
        setup = connection_setup(rtt_s)
        self.client_lag = setup.client_ready_s  # what the client's clock is ahead of a client blocked in connect
        self.t_accept = t_open + setup.server_accept_s
        self.first_down: float | None = None  # when the first byte reached the client

    def client_time(self, t_in: float) -> float:
        """When a client would have sent bytes it sent at ``t_in``: R later until anything has reached it."""
        first = self.first_down
        return t_in + self.client_lag if first is None or t_in < first else t_in


def _reader(src: socket.socket, direction: Direction, out: queue.SimpleQueue, ledger: Ledger,
            opening: _Opening | None = None) -> None:
    recv = _kernel_clock(src)
    side = UP if opening is not None else DOWN
    try:
        while True:
            data, t_in = recv(RECV_SIZE)
            if not data:
                break
            ledger.read(t_in, side, len(data))
            if opening is not None:
                t_in = opening.client_time(t_in)
            offset = 0
            for due, size in direction.schedule(t_in, len(data)):
                out.put((due, data[offset:offset + size]))
                offset += size
    except OSError:
        pass  # reset by the peer: forward what we have, then close
    out.put(_EOF)


SPIN_S = 0.0003  # the last stretch of every delay is waited awake: a sleeping core wakes late, more so after long sleeps
SPIN_RT_S = 0.00005  # the same under SCHED_FIFO, which wakes the relay at once: awake only briefly, for its 50 us
#: The relay's real-time priority (SCHED_FIFO, root only): the lowest, above every ordinary process.
RT_PRIORITY = 1


def _real_time() -> None:
    """Run the relay's threads under SCHED_FIFO when allowed (root), so they wake when a piece is due and not
    when the loaded machine gets round to them: the relay stands in for the network, which never waits for the
    CPU that the client and the server share. Measured (bench/reference.py, lan, 5-7 sessions per cell, load
    average 7-9 on 2 cores): with nice -10 alone the relay delivered each flight's last byte 6-66 ms late per
    session in all, network time 16-68 % above ns-3's (medians per cell); under SCHED_FIFO 0.2-1.1 ms, 1-5 %. Threads
    inherit it, so it is set before any starts; the spin then shrinks to SPIN_RT_S, since a spinning real-time
    thread holds its core from the client and the server. Where not allowed, nice -10 (and the usual spin)."""
    global SPIN_S
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except (OSError, AttributeError):
        return
    SPIN_S = SPIN_RT_S


def _sleep_until(due: float, clock) -> None:
    wait = due - clock()
    if wait > SPIN_S:
        time.sleep(wait - SPIN_S)  # precise_timers() set the slack at start
    while clock() < due:
        time.sleep(0)  # awake but yielding the GIL each turn, so the other direction's threads keep running


def _writer(dst: socket.socket, inbox: queue.SimpleQueue, done: threading.Event, ledger: Ledger,
            opening: _Opening | None = None) -> None:
    clock = time.perf_counter
    side = DOWN if opening is not None else UP
    pending = None
    try:
        while True:
            item = pending if pending is not None else inbox.get()
            pending = None
            if item is _EOF:
                break
            due, data = item
            _sleep_until(due, clock)
            parts = [data]
            last_due = due
            while True:  # everything else already due goes in the same send
                try:
                    nxt = inbox.get_nowait()
                except queue.Empty:
                    break
                if nxt is _EOF or nxt[0] > clock():
                    pending = nxt
                    break
                parts.append(nxt[1])
                last_due = nxt[0]
            if opening is not None and opening.first_down is None:
                # before the send: once it is sent the client may answer at once, and an answer read while this
                # was still unset would be held an RTT as if it had been sent before anything arrived
                opening.first_down = due
            chunk = parts[0] if len(parts) == 1 else b"".join(parts)
            ledger.send(side, len(chunk), last_due)
            dst.sendall(chunk)
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    except OSError:
        pass  # the receiver went away; the reader on its side sees that too
    finally:
        done.set()


class _Connection:
    """One accepted connection: what its threads share (the profile, the schedule's seed, the setup, the
    client's queue toward the server, the ledger) and where its work is reported when it closes (or nowhere)."""

    def __init__(self, client: socket.socket, upstream: tuple[str, int], profile, seed: str, report) -> None:
        self.client, self.upstream, self.profile, self.seed, self.report = client, upstream, profile, seed, report
        self.t_open = time.perf_counter()
        self.opening = _Opening(self.t_open, profile.rtt_s)
        self.up_q: queue.SimpleQueue = queue.SimpleQueue()
        self.ledger = Ledger(keep=report is not None)
        self.ledger.t_open = self.t_open

    def direction(self, down: bool) -> Direction:
        return Direction(self.profile, down, self.t_open, self.seed)


def _serve_connection(conn: _Connection) -> None:
    """Relay one accepted connection: the client's bytes are read (and timed) at once, the server is connected
    when its accept() would happen on the emulated link (1.5 RTT after the client's connect)."""
    conn.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=_reader, args=(conn.client, conn.direction(False), conn.up_q, conn.ledger, conn.opening),
                     daemon=True).start()
    threading.Thread(target=_connect_upstream, args=(conn,), daemon=True).start()


def _connect_upstream(conn: _Connection) -> None:
    client = conn.client
    _sleep_until(conn.opening.t_accept, time.perf_counter)
    try:
        server = socket.create_connection(conn.upstream, timeout=10)
        server.settimeout(None)
    except OSError:
        try:
            client.shutdown(socket.SHUT_RDWR)  # upstream is gone: the client sees the connection close at once
        except OSError:
            pass
        client.close()
        return
    conn.ledger.t_server, conn.ledger.t_server_due = time.perf_counter(), conn.opening.t_accept
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    finished = [threading.Event(), threading.Event()]
    down_q: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_writer, args=(server, conn.up_q, finished[0], conn.ledger), daemon=True).start()
    threading.Thread(target=_reader, args=(server, conn.direction(True), down_q, conn.ledger), daemon=True).start()
    threading.Thread(target=_writer, args=(client, down_q, finished[1], conn.ledger, conn.opening),
                     daemon=True).start()

    def closer() -> None:
        for d in finished:
            d.wait()
        for s in (client, server):
            s.close()
        if conn.report is not None:
            conn.report(conn.ledger.flights())

    threading.Thread(target=closer, daemon=True).start()


def _listen(listener: socket.socket, upstream: tuple[str, int], profile, seed: int, index: int, report) -> None:
    n = 0
    while True:
        client, _ = listener.accept()
        n += 1
        say = None
        if report is not None:
            def say(flights, index=index, n=n):
                report({"upstream": index, "connection": n, "work_s": work_of(flights).total_s, **flights})
        _serve_connection(_Connection(client, upstream, profile, f"{seed}:{index}:{n}", say))


def _reporter():
    """Writes one JSON line per closed connection on stdout (``"report": true`` in the config)."""
    lock = threading.Lock()

    def report(obj: dict) -> None:
        with lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()
    return report


def _warm_up(profile, upstreams: list[tuple[str, int]]) -> None:
    """Pay the first-call costs before the first session does: the resolver (a process's first getaddrinfo
    loads its configuration: milliseconds, measured), a thread start, the jitter generator."""
    for host, port in upstreams:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    t = threading.Thread(target=Direction(profile, True, 0.0).schedule, args=(0.0, 1))
    t.start()
    t.join()


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    precise_timers()
    try:  # the relay stands in for the network: it should wake before the processes it measures (root only)
        os.setpriority(os.PRIO_PROCESS, 0, RELAY_NICE)
    except OSError:
        pass
    _real_time()
    profile = get_profile(config["profile"])
    listeners = []
    for host, port in config["upstreams"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))  # loopback only, like the servers
        s.listen(64)
        listeners.append((s, (host, int(port))))
    _warm_up(profile, [u for _, u in listeners])
    report = _reporter() if config.get("report") else None
    for i, (s, upstream) in enumerate(listeners):
        threading.Thread(target=_listen, args=(s, upstream, profile, config.get("seed", 0), i, report),
                         daemon=True).start()
    print(json.dumps({"ports": [s.getsockname()[1] for s, _ in listeners]}), flush=True)
    threading.Event().wait()  # serve until killed
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
