"""The relay's own measure of a session's work (mailstudy.link.relay_ledger): the arithmetic on a made-up
ledger, exactly, and a real relay's report on a real server-first exchange over sockets."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from mailstudy.link import Link, LinkError
from mailstudy.link.profiles import Profile
from mailstudy.link import predict
from mailstudy.link.model import RoundTrip, Session
from mailstudy.link.relay_ledger import DOWN, UP, Ledger, flights_of, session_of_report, work_of


def test_work_of_a_made_up_session_is_exact():
    # server connected at 1.0; greeting read at 1.25; delivered to the client at 1.5; the client's request
    # read at 1.75 (two reads), delivered to the server at 2.0 and 2.5; the answer read at 3.0 and 3.5,
    # delivered at 4.0 and 4.25; the next request read at 5.0, delivered at 5.5; its answer read at 6.0
    reads = [(1.25, DOWN, 10), (1.75, UP, 3), (1.8125, UP, 4), (3.0, DOWN, 100), (3.5, DOWN, 50),
             (5.0, UP, 6), (6.0, DOWN, 5)]
    sent = {DOWN: [(1.5, 10), (4.0, 100), (4.25, 50), (6.5, 5)], UP: [(2.0, 3), (2.5, 4), (5.5, 6)]}
    f = flights_of(reads, sent, 1.0)
    assert f == {"greeting_s": 0.25, "greeting_bytes": 10, "late_s": 0.0, "flights": [
        {"pause_s": 0.25, "request": [[0.0, 3], [0.0625, 4]], "answer": [[0.5, 100], [1.0, 50]], "answered_at": 4.25},
        {"pause_s": 0.75, "request": [[0.0, 6]], "answer": [[0.5, 5]], "answered_at": 6.5}]}
    w = work_of(f)
    assert w.greeting_s == 0.25
    assert w.client_s == (1.75 - 1.5) + (5.0 - 4.25)
    assert w.server_s == (3.5 - 2.5) + (6.0 - 5.5)
    assert w.flights == 2
    assert w.total_s == 0.25 + 1.0 + 1.5
    s = session_of_report(f)
    assert s.greeting_s == 0.25 and s.greeting_bytes == 10
    assert s.round_trips[0] == RoundTrip(7, 150, 1.0, 0.25, True, False, ((0.5, 100), (1.0, 50)),
                                         ((0.0, 3), (0.0625, 4)))
    like = Session(0.0, (RoundTrip(1, 1, before_list=True), RoundTrip(1, 1, before_list=False, opens=True)), 0.125)
    s = session_of_report(f, like)
    assert [(t.before_list, t.opens) for t in s.round_trips] == [(True, False), (False, True)]
    assert s.list_pause_s == 0.125
    assert predict(s, "lan")["local_s"] == w.total_s + 0.125  # the model's own split agrees on the work


def test_lateness_counts_each_flights_last_delivery():
    reads = [(1.0, DOWN, 5), (2.0, UP, 5), (3.0, DOWN, 10)]
    sent = {DOWN: [(1.5, 5, 1.25), (3.5, 4, 3.0), (4.0, 6, 3.5)], UP: [(2.5, 5, 2.5)]}
    assert flights_of(reads, sent, 0.5)["late_s"] == 0.25 + 0.0 + 0.5  # greeting, request, answer's last send


def test_a_client_that_sends_early_pauses_for_zero_not_less():
    reads = [(1.0, DOWN, 5), (1.5, UP, 5), (2.0, DOWN, 5)]
    sent = {DOWN: [(1.75, 5), (2.5, 5)], UP: [(1.6, 5)]}  # its request was read before the greeting reached it
    assert work_of(flights_of(reads, sent, 0.5)).client_s == 0.0


def test_a_ledger_that_keeps_nothing_reports_nothing():
    ledger = Ledger(keep=False)
    ledger.read(1.0, DOWN, 5)
    ledger.send(DOWN, 5, 0.0)
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
    assert len(report["flights"]) == 3 and report["upstream"] == 0 and report["connection"] == 1
    assert report["greeting_bytes"] == len(b"* hello\r\n")
    assert [sum(u for _, u in f["request"]) for f in report["flights"]] == [5, 5, 5]
    assert [sum(d for _, d in f["answer"]) for f in report["flights"]] == [8, 8, 8]
    # lower bounds only: the server slept that long at least, whatever the machine's load
    assert report["greeting_s"] >= GREETING_WORK_S
    w = work_of(report)
    assert w.server_s >= 3 * ANSWER_WORK_S
    assert report["work_s"] == pytest.approx(w.total_s)


def test_reports_need_a_link_that_reports():
    with Link(Profile("test-1ms", rtt_s=0.001), [("127.0.0.1", 9)]) as link:
        with pytest.raises(LinkError, match="report=True"):
            link.reports()
