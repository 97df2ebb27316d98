"""The embedded server (pymap IMAP + our POP3 over one store): lifecycle and POP3 behaviour, over real sockets.

The cross-server conformance suite lives elsewhere; this file pins what the embedded server itself promises.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import re
import socket

import pytest

from mailstudy.servers.base import DEFAULT_ACCOUNT, Account, ServerError
from mailstudy.servers.embedded import EmbeddedServer

USER, PASSWORD = DEFAULT_ACCOUNT.user, DEFAULT_ACCOUNT.password


def _msg(n: int, body: bytes = b"Hello.\r\n") -> bytes:
    return (b"From: sender@example.org\r\nTo: alice@example.org\r\nSubject: message %d\r\n"
            b"Message-ID: <%d@example.org>\r\n\r\n" % (n, n)) + body


MESSAGES = [
    _msg(1, b"First line.\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast\r\n"),
    _msg(2, b"Line one.\r\nLine two.\r\nLine three.\r\n"),
    _msg(3, b"No final newline, and a lone\r\n.dot"),
    b"Subject: bare LF\nFrom: x@example.org\n\nbody line\n.dot line\n",
]


def crlf(raw: bytes) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", raw)


def pop_login(server: EmbeddedServer, user: str = USER, password: str = PASSWORD) -> poplib.POP3:
    p = poplib.POP3(server.host, server.pop3_port, timeout=10)
    p.user(user)
    p.pass_(password)
    return p


def retr_bytes(p: poplib.POP3, n: int) -> bytes:
    """The message as RETR delivered it, after poplib's dot-unstuffing, with CRLF line ends restored."""
    _, lines, _ = p.retr(n)
    return b"".join(line + b"\r\n" for line in lines)


def imap_flags_and_count(server: EmbeddedServer) -> tuple[int, list[bytes]]:
    with imaplib.IMAP4(server.host, server.imap_port, timeout=10) as c:
        c.login(USER, PASSWORD)
        typ, data = c.select("INBOX")
        assert typ == "OK"
        count = int(data[0])
        flags: list[bytes] = []
        if count:
            typ, data = c.fetch("1:*", "(FLAGS)")
            flags = [d for d in data if isinstance(d, bytes)]
        c.logout()
    return count, flags


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def shared():
    """A server for tests that do not change the mailbox."""
    with EmbeddedServer(mailboxes={USER: MESSAGES}) as s:
        yield s


@pytest.fixture
def fresh():
    """A server of one's own, for tests that delete or flag messages."""
    with EmbeddedServer(mailboxes={USER: MESSAGES}) as s:
        yield s


# -- lifecycle ---------------------------------------------------------------------------------------------

def test_start_stop_leaves_no_process():
    s = EmbeddedServer()
    s.start()
    pid = s.pid
    assert pid is not None and alive(pid)
    from pymap.__about__ import __version__ as pymap_version

    from mailstudy import __version__

    assert s.version == f"mailstudy-embedded {__version__} (pymap {pymap_version})"  # in every cell's cache key
    assert s.describe()["server"] == "embedded"
    s.stop()
    assert not alive(pid)
    assert s.pid is None and not s.running
    s.stop()  # a second stop is harmless


def _listen_addresses(port: int) -> set[str]:
    """Local addresses of sockets listening on ``port``, from Linux's /proc/net/tcp{,6}."""
    found: set[str] = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, _, hexport = local.rpartition(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.add(addr)
    return found


def test_listens_on_loopback_only(shared):
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("no /proc/net/tcp on this system to list listening sockets")
    for port in (shared.imap_port, shared.pop3_port):
        assert _listen_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else


def test_port_in_use_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port}.*in use"):
            EmbeddedServer(pop3_port=port).start()
        with pytest.raises(ServerError, match=f"port {port}.*in use"):
            EmbeddedServer(imap_port=port).start()


def test_child_failing_during_start_reports_its_stderr():
    s = EmbeddedServer(mailboxes={USER: ["not bytes: a str cannot be parsed as a message"]})
    with pytest.raises(ServerError, match="exited during start.*Error"):
        s.start()
    assert s.pid is None and not s.running


def test_start_timeout_does_not_hang():
    s = EmbeddedServer(start_timeout=0.01)  # far less than a Python process needs to start
    with pytest.raises(ServerError, match="did not get ready within"):
        s.start()
    assert s.pid is None and not s.running


def test_two_accounts_are_separate():
    bob = Account("bob", "builder-7")
    with EmbeddedServer([DEFAULT_ACCOUNT, bob], {USER: MESSAGES, "bob": [_msg(9)]}) as s:
        assert pop_login(s).stat()[0] == len(MESSAGES)
        p = pop_login(s, "bob", "builder-7")
        assert p.stat()[0] == 1
        p.quit()


# -- login -------------------------------------------------------------------------------------------------

def test_login_ok_and_wrong(shared):
    p = poplib.POP3(shared.host, shared.pop3_port, timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    p.user(USER)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        p.pass_("wrong")
    p.user(USER)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()
    p = poplib.POP3(shared.host, shared.pop3_port, timeout=10)
    p.user("nobody")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        p.pass_(PASSWORD)
    p.quit()
    with imaplib.IMAP4(shared.host, shared.imap_port, timeout=10) as c:
        with pytest.raises(imaplib.IMAP4.error):
            c.login(USER, "wrong")
        assert c.login(USER, PASSWORD)[0] == "OK"
        c.logout()


def test_sasl_mechanisms_are_looked_up_once_per_process(monkeypatch):
    """pysasl scans every installed distribution's entry points on each lookup (10 ms a greeting in our venv);
    the embedded server's config asks once, however many connections it serves, and still offers both."""
    import pysasl

    from mailstudy.servers import embedded_main

    calls = []
    real = pysasl.entry_points
    monkeypatch.setattr(pysasl, "entry_points", lambda **kw: calls.append(kw) or real(**kw))
    embedded_main._sasl_mechanisms.cache_clear()
    configs = [embedded_main.EmbeddedConfig(embedded_main._args("127.0.0.1", 0), demo_data=False, demo_user="",
                                            demo_password="", host="127.0.0.1", port=0, tls_enabled=False)
               for _ in range(3)]
    auths = [c.initial_auth for c in configs for _ in range(2)]  # what pymap asks on every connection
    assert len(calls) == 1
    assert [m.name for m in auths[-1].server_mechanisms] == [b"PLAIN", b"LOGIN"]


def test_capa_lists_capabilities(shared):
    p = poplib.POP3(shared.host, shared.pop3_port, timeout=10)
    caps = p.capa()
    assert {"TOP", "UIDL", "USER", "PIPELINING", "RESP-CODES", "IMPLEMENTATION"} <= set(caps)
    p.quit()


# -- reading -----------------------------------------------------------------------------------------------

def test_list_octets_equal_retr_bytes_and_retr_equals_original(shared):
    p = pop_login(shared)
    count, total = p.stat()
    assert count == len(MESSAGES)
    _, listing, _ = p.list()
    sizes = [int(line.split()[1]) for line in listing]
    assert sizes == [len(crlf(m)) for m in MESSAGES]
    assert total == sum(sizes)
    for n, raw in enumerate(MESSAGES, 1):
        got = retr_bytes(p, n)
        want = crlf(raw)
        if want.endswith(b"\r\n"):
            assert got == want
            assert len(got) == sizes[n - 1]
        else:  # the server adds CRLF before the terminator; the size counts the message without it
            assert got == want + b"\r\n"
            assert len(got) - 2 == sizes[n - 1]
        assert p.list(n) == b"+OK %d %d" % (n, sizes[n - 1])
    p.quit()


def test_retr_is_dot_stuffed_on_the_wire(shared):
    with socket.create_connection((shared.host, shared.pop3_port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"USER %s\r\nPASS %s\r\nRETR 1\r\n" % (USER.encode(), PASSWORD.encode()))
        assert f.readline().startswith(b"+OK")
        assert f.readline().startswith(b"+OK")
        status = f.readline()
        size = int(status.split()[1])
        body = b""
        while not body.endswith(b"\r\n.\r\n"):
            body += f.readline()
        sock.sendall(b"QUIT\r\n")
    assert b"\r\n..starts with a dot\r\n...two dots\r\n..\r\nlast\r\n.\r\n" in body
    assert size == len(MESSAGES[0])


def test_top_zero_is_the_header(shared):
    p = pop_login(shared)
    for n, raw in enumerate(MESSAGES, 1):
        _, lines, _ = p.top(n, 0)
        header = crlf(raw).split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        assert b"".join(line + b"\r\n" for line in lines) == header
    _, lines, _ = p.top(2, 2)
    assert lines[-2:] == [b"Line one.", b"Line two."]
    p.quit()


def test_uidl_is_unique_and_stable_across_sessions(shared):
    p = pop_login(shared)
    _, first, _ = p.uidl()
    assert p.uidl(2).split()[1:] == first[1].split()
    p.quit()
    p = pop_login(shared)
    _, second, _ = p.uidl()
    p.quit()
    assert first == second
    uids = [line.split()[1] for line in first]
    assert len(set(uids)) == len(MESSAGES)
    assert all(re.fullmatch(rb"[0-9a-f]{16}", u) for u in uids)


def test_imap_sees_the_initial_messages_in_order_with_uids_from_1(shared):
    with imaplib.IMAP4(shared.host, shared.imap_port, timeout=10) as c:
        c.login(USER, PASSWORD)
        c.select("INBOX", readonly=True)
        typ, uids = c.uid("SEARCH", "ALL")
        assert typ == "OK"
        typ, data = c.fetch("1:*", "(BODY.PEEK[])")
        c.logout()
    assert typ == "OK"
    assert [int(u) for u in uids[0].split()] == list(range(1, len(MESSAGES) + 1))
    assert [d[1] for d in data if isinstance(d, tuple)] == MESSAGES  # IMAP serves the bytes as delivered


def test_errors(shared):
    with socket.create_connection((shared.host, shared.pop3_port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()

        def ask(line: bytes) -> bytes:
            sock.sendall(line + b"\r\n")
            return f.readline()

        assert ask(b"STAT").startswith(b"-ERR")            # wrong state
        assert ask(b"PASS x").startswith(b"-ERR")          # PASS without USER
        assert ask(b"FROB").startswith(b"-ERR")            # unknown
        assert ask(b"user " + USER.encode()).startswith(b"+OK")   # case-insensitive
        assert ask(b"pAsS " + PASSWORD.encode()).startswith(b"+OK")
        assert ask(b"USER x").startswith(b"-ERR")          # wrong state
        assert ask(b"RETR").startswith(b"-ERR")
        assert ask(b"RETR x").startswith(b"-ERR")
        assert ask(b"RETR 0").startswith(b"-ERR")
        assert ask(b"RETR 99").startswith(b"-ERR")
        assert ask(b"TOP 1").startswith(b"-ERR")
        assert ask(b"LIST 1 2").startswith(b"-ERR")
        assert ask(b"noop") == b"+OK\r\n"
        assert ask(b"QUIT").startswith(b"+OK")


def test_pipelined_commands_are_answered_in_order(shared):
    p = pop_login(shared)
    _, listing, _ = p.list()
    _, uidls, _ = p.uidl()
    p.quit()
    with socket.create_connection((shared.host, shared.pop3_port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nUIDL\r\nNOOP\r\nQUIT\r\n"
                     % (USER.encode(), PASSWORD.encode()))
        data = f.read()  # the server closes after QUIT
    lines = data.split(b"\r\n")
    n = len(MESSAGES)
    assert lines[0] == b"+OK" and lines[1] == b"+OK Logged in."
    assert lines[2].startswith(b"+OK %d " % n)
    assert lines[3].startswith(b"+OK") and lines[4:4 + n] == listing and lines[4 + n] == b"."
    k = 5 + n
    assert lines[k] == b"+OK" and lines[k + 1:k + 1 + n] == uidls and lines[k + 1 + n] == b"."
    assert lines[k + 2 + n] == b"+OK"
    assert lines[k + 3 + n].startswith(b"+OK Logging out")


# -- changing the mailbox ----------------------------------------------------------------------------------

def test_dele_then_rset_keeps(fresh):
    p = pop_login(fresh)
    p.dele(1)
    with pytest.raises(poplib.error_proto):
        p.retr(1)
    with pytest.raises(poplib.error_proto):
        p.dele(1)
    assert p.stat()[0] == len(MESSAGES) - 1
    p.rset()
    assert p.stat()[0] == len(MESSAGES)
    p.quit()
    assert pop_login(fresh).stat()[0] == len(MESSAGES)
    assert imap_flags_and_count(fresh)[0] == len(MESSAGES)


def test_dele_then_quit_removes_everywhere(fresh):
    p = pop_login(fresh)
    _, before, _ = p.uidl()
    p.dele(2)
    p.quit()
    count, _ = imap_flags_and_count(fresh)
    assert count == len(MESSAGES) - 1
    p = pop_login(fresh)
    _, after, _ = p.uidl()
    p.quit()
    assert [u.split()[1] for u in after] == [u.split()[1] for i, u in enumerate(before) if i != 1]


def test_dele_then_dropped_connection_removes_nothing(fresh):
    p = pop_login(fresh)
    assert p.dele(1).startswith(b"+OK")
    p.sock.close()  # no QUIT: no UPDATE state
    p.file.close()
    p = pop_login(fresh)
    assert p.stat()[0] == len(MESSAGES)
    p.quit()
    assert imap_flags_and_count(fresh)[0] == len(MESSAGES)


def test_retr_sets_seen_top_does_not(fresh):
    _, flags = imap_flags_and_count(fresh)
    assert not any(b"\\Seen" in f for f in flags)
    p = pop_login(fresh)
    p.retr(1)
    p.top(2, 0)
    p.quit()
    _, flags = imap_flags_and_count(fresh)
    assert b"\\Seen" in flags[0]
    assert not any(b"\\Seen" in f for f in flags[1:])


def test_deliver_is_seen_by_the_next_pop3_session(fresh):
    early = pop_login(fresh)
    new = _msg(42, b"Delivered while running.\r\n")
    fresh.deliver(USER, new)
    assert early.stat()[0] == len(MESSAGES)  # the open session's snapshot is fixed
    early.quit()
    p = pop_login(fresh)
    assert p.stat()[0] == len(MESSAGES) + 1
    assert retr_bytes(p, len(MESSAGES) + 1) == new
    p.quit()


# -- disabled capabilities ---------------------------------------------------------------------------------

def test_disabled_capabilities_are_not_listed_and_refused():
    with EmbeddedServer(mailboxes={USER: MESSAGES}, disabled={"uidl", "TOP", "PIPELINING"}) as s:
        p = pop_login(s)
        caps = p.capa()
        assert "UIDL" not in caps and "TOP" not in caps and "PIPELINING" not in caps
        assert "USER" in caps
        with pytest.raises(poplib.error_proto, match="-ERR"):
            p.uidl()
        with pytest.raises(poplib.error_proto, match="-ERR"):
            p.top(1, 0)
        assert p.retr(1)[0].startswith(b"+OK")
        p.quit()


def test_disabled_resp_codes_drops_the_auth_code():
    with EmbeddedServer(disabled={"RESP-CODES"}) as s:
        p = poplib.POP3(s.host, s.pop3_port, timeout=10)
        assert "RESP-CODES" not in p.capa()
        p.user(USER)
        with pytest.raises(poplib.error_proto) as err:
            p.pass_("wrong")
        assert err.value.args[0] == b"-ERR Authentication failed."
        p.quit()
