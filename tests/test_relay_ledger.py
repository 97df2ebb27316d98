"""The relay's own measure of a session's work (mailstudy.link.relay_ledger): the arithmetic on a made-up
ledger, exactly, and a real relay's report on a real server-first exchange over sockets."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from mailstudy.link import Link, LinkError
from mailstudy.link.profiles import Profile
from mailstudy.link.relay_ledger import DOWN, UP, Ledger, work_of


def test_work_of_a_made_up_session_is_exact():
    # server connected at 1.0; greeting read at 1.25; delivered to the client at 1.5; the client's request
    # read at 1.75 (two reads), delivered to the server at 2.0 and 2.5; the answer read at 3.0 and 3.5,
    # delivered at 4.0 and 4.25; the next request read at 5.0, delivered at 5.5; its answer read at 6.0
    reads = [(1.25, DOWN, 10), (1.75, UP, 3), (1.8125, UP, 4), (3.0, DOWN, 100), (3.5, DOWN, 50),
             (5.0, UP, 6), (6.0, DOWN, 5)]
    sent = {DOWN: [(1.5, 10), (4.0, 100), (4.25, 50), (6.5, 5)], UP: [(2.0, 3), (2.5, 4), (5.5, 6)]}
    w = work_of(reads, sent, 1.0)
    assert w.greeting_s == 0.25
    assert w.client_s == (1.75 - 1.5) + (5.0 - 4.25)
    assert w.server_s == (3.5 - 2.5) + (6.0 - 5.5)
    assert w.flights == 2
    assert w.total_s == 0.25 + 1.0 + 1.5
    assert w.to_dict()["work_s"] == w.total_s


def test_a_client_that_sends_early_pauses_for_zero_not_less():
    reads = [(1.0, DOWN, 5), (1.5, UP, 5), (2.0, DOWN, 5)]
    sent = {DOWN: [(1.75, 5), (2.5, 5)], UP: [(1.6, 5)]}  # its request was read before the greeting reached it
    assert work_of(reads, sent, 0.5).client_s == 0.0


def test_a_ledger_that_keeps_nothing_reports_nothing():
    ledger = Ledger(keep=False)
    ledger.read(1.0, DOWN, 5)
    ledger.send(DOWN, 5)
    assert ledger.reads == [] and ledger.sent == {UP: [], DOWN: []}


GREETING_WORK_S, ANSWER_WORK_S = 0.03, 0.02


def _server_first(srv: socket.socket) -> None:
    """Greets after GREETING_WORK_S; answers each line after ANSWER_WORK_S; stops after 'bye'."""
    c, _ = srv.accept()
    with c, c.makefile("rb") as f:
        time.sleep(GREETING_WORK_S)
        c.sendall(b"* hello\r\n")
        for line in f:
            time.sleep(ANSWER_WORK_S)
            c.sendall(b"ok " + line)
            if line.startswith(b"bye"):
                return


def test_a_real_relay_reports_the_sessions_own_work():
    srv = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_server_first, args=(srv,), daemon=True).start()
    profile = Profile("test-2ms", rtt_s=0.002)
    with srv, Link(profile, [srv.getsockname()], report=True) as link:
        with socket.create_connection((link.host, link.ports[0])) as c, c.makefile("rb") as f:
            assert f.readline() == b"* hello\r\n"
            for word in (b"one", b"two", b"bye"):
                c.sendall(word + b"\r\n")
                assert f.readline() == b"ok " + word + b"\r\n"
        (report,) = link.reports(1, timeout=10)
    assert report["flights"] == 3 and report["upstream"] == 0 and report["connection"] == 1
    # lower bounds only: the server slept that long at least, whatever the machine's load
    assert report["greeting_s"] >= GREETING_WORK_S
    assert report["server_s"] >= 3 * ANSWER_WORK_S
    assert report["work_s"] == pytest.approx(report["greeting_s"] + report["server_s"] + report["client_s"])


def test_reports_need_a_link_that_reports():
    with Link(Profile("test-1ms", rtt_s=0.001), [("127.0.0.1", 9)]) as link:
        with pytest.raises(LinkError, match="report=True"):
            link.reports()
