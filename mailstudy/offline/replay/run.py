"""Step 5 of a replay, live: send each flight with one ``sendall`` on a traced socket and read the server's
replies until the replay has got as far as the original had (or it stalls, or the server closes).

Why a module of its own: it is the only part that talks to a server; everything it sends was prepared by
the other modules and everything it measures is in the :class:`~mailstudy.live.trace.Trace` it fills.
"""

from __future__ import annotations

import socket
import time

from mailstudy.live.trace import Trace, traced_connection
from mailstudy.offline.replay.flights import ReplayFlight, Target
from mailstudy.protocol import make_parser
from mailstudy.protocol.events import DOWN, UP

DEFAULT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0


class _Stall(Exception):
    pass


def _pump(sock, p, target: Target, need_bytes: bool, timeout: float) -> bool:
    """Read until ``target`` is reached (True) or the server closes (False); _Stall on timeout."""
    got = 0
    deadline = time.monotonic() + timeout
    while not (target.reached(p.progress()) and (got or not need_bytes)):
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Stall()
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            raise _Stall() from None
        if not data:
            return False
        got += len(data)
        p.feed(DOWN, data)
    return True


def _read_to_close(sock, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return
    except OSError:
        return


def run_flights(host: str, port: int, protocol: str, initial: Target, flights: list[ReplayFlight],
                last_command: str, timeout: float, trace: Trace, warnings: list[str]) -> None:
    """Step 5, live: send each flight on a traced socket to ``host:port`` and read until the server reaches the
    flight's target; what goes wrong is appended to ``warnings`` (the rest is then not replayed)."""
    sock = traced_connection(host, port, timeout, trace)
    p = make_parser(protocol)
    k = -1  # the flight being replayed (-1: waiting for the greeting)
    try:
        try:
            if not _pump(sock, p, initial, initial.replied, timeout):
                warnings.append("the server closed the connection before the first flight")
                return
            for k, f in enumerate(flights):
                if not f.data:
                    continue
                sock.sendall(f.data)
                p.feed(UP, f.data)
                if not _pump(sock, p, f.target, f.target.replied, timeout):
                    if k < len(flights) - 1:
                        warnings.append(f"the server closed the connection after flight {k + 1} of "
                                        f"{len(flights)}; the rest was not replayed")
                    return
        except _Stall:
            where = f"flight {k + 1} of {len(flights)}" if k >= 0 else "the greeting"
            warnings.append(f"{where}: the server did not get as far as in the capture within {timeout:g} s; "
                            f"the rest was not replayed")
            return
        except OSError as exc:
            warnings.append(f"connection error during the replay: {exc}")
            return
        if last_command in ("LOGOUT", "QUIT"):
            _read_to_close(sock, CLOSE_TIMEOUT_S)
    finally:
        try:
            sock.close()
        except OSError:
            pass
