"""Untagged FETCH data is charged to the command that asked for it, also when many commands are in flight.

Dovecot answers a pipelined per-message download (what mbsync sends: 30 ``UID FETCH n (BODY.PEEK[])`` in one
flight) with the FETCH data of several commands before their tagged OKs. The rule (protocol package doc):
an untagged FETCH goes to the in-flight command whose UID set (UID commands) or sequence set holds it, and
to the oldest in-flight command only when none does.
"""

from __future__ import annotations

import re

import pytest

from mailstudy.live.trace import Trace, traced_connection
from mailstudy.protocol import ImapParser, parse_session
from mailstudy.protocol.events import Exchange

N = 30


def _messages() -> list[bytes]:
    return [b"Subject: message %d\r\n\r\n" % i + b"body of %d " % i * (40 + 17 * i) + b"\r\n" for i in range(1, N + 1)]


def _read_until(sock, buf: bytearray, pattern: bytes) -> None:
    while not re.search(pattern, buf):
        data = sock.recv(65536)
        assert data, f"the server closed before {pattern!r}"
        buf += data


@pytest.mark.dovecot
def test_pipelined_uid_fetches_on_dovecot_each_get_their_own_message(dovecot_usable):  # fails under CI if missing
    from mailstudy.servers import make_server

    raws = _messages()
    server = make_server("dovecot")
    server.mailboxes[server.account.user] = list(raws)
    trace = Trace()
    with server:
        sock = traced_connection(server.host, server.imap_port, 10, trace)
        buf = bytearray()
        _read_until(sock, buf, rb"\* OK[^\n]*\n")
        sock.sendall(b"l LOGIN %s %s\r\n" % (server.account.user.encode(), server.account.password.encode()))
        _read_until(sock, buf, rb"l OK[^\n]*\n")
        sock.sendall(b"s SELECT INBOX\r\n")
        _read_until(sock, buf, rb"s OK[^\n]*\n")
        sock.sendall(b"".join(b"f%d UID FETCH %d (BODY.PEEK[])\r\n" % (n, n) for n in range(1, N + 1)))
        _read_until(sock, buf, rb"f%d OK[^\n]*\n" % N)
        sock.sendall(b"z LOGOUT\r\n")
        _read_until(sock, buf, rb"z OK[^\n]*\n")
        sock.close()
    down = trace.stream("down")
    # the situation the rule is for: FETCH data of a later command before the tagged OK of an earlier one
    first_ok = down.index(b"f1 OK")
    assert down.find(b"* 2 FETCH", 0, first_ok) > 0 or down.find(b"f2 OK") < down.find(b"* 3 FETCH"), \
        "Dovecot answered one command at a time: nothing to attribute"
    fetches = {e.tag: e for e in parse_session("imap", trace.chunks) if isinstance(e, Exchange)
               and e.command == "UID FETCH"}
    assert len(fetches) == N
    for n in range(1, N + 1):
        e = fetches[f"f{n}"]
        assert e.literals == (raws[n - 1],), f"UID FETCH {n} got {[len(x) for x in e.literals]}"
        assert len(raws[n - 1]) < e.bytes_down < len(raws[n - 1]) + 120


def test_pipelined_fetch_data_goes_to_the_command_whose_set_holds_it():
    """The same rule without a server: sequence sets, UID sets, ``*`` and the fallback to the oldest."""
    p = ImapParser()
    p.feed("down", b"* OK hi\r\n")
    p.feed("up", b"a FETCH 1:2 (FLAGS)\r\nb UID FETCH 7,9:* (BODY[])\r\nc NOOP\r\n")
    p.feed("down", b"* 3 FETCH (UID 9 BODY[] {3}\r\nabc)\r\n"  # UID 9: b
                   b"* 2 FETCH (FLAGS (\\Seen))\r\n"  # sequence 2: a
                   b"* 5 EXISTS\r\n"  # no set: the oldest, a
                   b"* 4 FETCH (UID 8 BODY[] {2}\r\nde)\r\n"  # UID 8 in no set: the oldest, a
                   b"c OK\r\nb OK\r\na OK\r\n")
    p.close()
    by_tag = {e.tag: e for e in p.events() if isinstance(e, Exchange)}
    assert by_tag["b"].literals == (b"abc",)
    assert by_tag["a"].literals == (b"de",)
    assert by_tag["c"].bytes_down == len(b"c OK\r\n")
    assert by_tag["a"].bytes_down == len(b"* 2 FETCH (FLAGS (\\Seen))\r\n* 5 EXISTS\r\n"
                                         b"* 4 FETCH (UID 8 BODY[] {2}\r\nde)\r\na OK\r\n")
