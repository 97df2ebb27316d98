"""One conformance suite, run against every server: the embedded server must behave like Dovecot wherever the
RFCs leave no choice, and Cyrus (issue 20) too.

Where they legitimately differ, it is written down here, in LEGITIMATE_DIFFERENCES, and nowhere else. Every test
here holds on Cyrus 3.6.1 as it does on the other two (measured: none needed a skip).
"""

from __future__ import annotations

import imaplib
import poplib
import re
import socket

import pytest

from conftest import ALL_SERVER_KINDS, every_server_kind
from mailstudy.corpus.sections import header_of
from mailstudy.corpus import generate

LEGITIMATE_DIFFERENCES = {
    "greeting text": "IMAP '* OK ...' and POP3 '+OK ...' texts are the server's own (RFC 3501 7.1, RFC 1939 4)",
    "status text": "the human-readable text after OK/NO/BAD and +OK/-ERR is free-form",
    "UIDL format": "any unique printable string of 1-70 characters (RFC 1939 7)",
    "UID values": "UIDs are strictly ascending, but their first value and UIDVALIDITY are the server's choice",
    "CAPA extras": "servers may list more capabilities (IMPLEMENTATION, SASL, AUTH-RESP-CODE, STLS, ...)",
    "login delay": "a failed login may be answered after a delay of the server's choosing",
    "CAPA after login": "Dovecot drops USER and SASL from CAPA once logged in; RFC 2449 allows it",
}


@pytest.fixture(params=ALL_SERVER_KINDS)
def server_kind(request) -> str:
    """This suite runs on Cyrus as well (the shared fixture covers embedded and Dovecot)."""
    return every_server_kind(request)


@pytest.fixture
def corpus():
    c = generate(6, "fixed-5k", seed=21)
    assert any(re.search(rb"\r\n\.", m.raw) for m in c), "corpus must carry lines starting with '.'"
    return c


@pytest.fixture
def server(start_server, corpus):
    return start_server(corpus.raws())


def imap(server) -> imaplib.IMAP4:
    c = imaplib.IMAP4(server.host, server.imap_port, timeout=20)
    c.login(server.account.user, server.account.password)
    return c


def pop3(server) -> poplib.POP3:
    p = poplib.POP3(server.host, server.pop3_port, timeout=20)
    p.user(server.account.user)
    p.pass_(server.account.password)
    return p


def joined(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


# -- IMAP ------------------------------------------------------------------------------------------------------
def test_imap_login_right_and_wrong(server):
    c = imap(server)
    assert c.state == "AUTH"
    c.logout()
    bad = imaplib.IMAP4(server.host, server.imap_port, timeout=20)
    with pytest.raises(imaplib.IMAP4.error):
        bad.login(server.account.user, "not-the-password")
    bad.logout()


def test_imap_select_counts_and_uids_stable_across_sessions(server, corpus):
    uid_lists = []
    for _ in range(2):
        c = imap(server)
        typ, data = c.select("INBOX")
        assert typ == "OK" and int(data[0]) == len(corpus)
        typ, data = c.uid("SEARCH", "ALL")
        uids = [int(x) for x in data[0].split()]
        assert uids == sorted(uids) and len(uids) == len(corpus)
        uid_lists.append(uids)
        c.logout()
    assert uid_lists[0] == uid_lists[1]


def test_imap_header_fields_and_whole_header(server, corpus):
    c = imap(server)
    c.select("INBOX", readonly=True)
    typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)] BODY.PEEK[HEADER])")
    c.logout()
    literals = [item[1] for item in data if isinstance(item, tuple)]
    assert len(literals) == 2 * len(corpus)
    for msg, (fields, whole) in zip(corpus, zip(literals[0::2], literals[1::2])):
        assert whole == header_of(msg.raw)
        assert f"Message-ID: {msg.message_id}".encode() in fields or msg.message_id.encode() in fields
        assert fields.endswith(b"\r\n\r\n") and b"From:" not in fields


def test_imap_partial_fetch_returns_exactly_1024_bytes(server, corpus):
    c = imap(server)
    c.select("INBOX", readonly=True)
    typ, data = c.fetch("2", "(BODY.PEEK[]<0.1024>)")
    c.logout()
    (literal,) = [item[1] for item in data if isinstance(item, tuple)]
    assert literal == corpus[1].raw[:1024] and len(literal) == 1024


def test_imap_body_sets_seen_and_a_second_connection_sees_it(server, corpus):
    c = imap(server)
    c.select("INBOX")
    typ, data = c.fetch("3", "(BODY[])")
    (literal,) = [item[1] for item in data if isinstance(item, tuple)]
    assert literal == corpus[2].raw
    c.logout()
    d = imap(server)
    d.select("INBOX", readonly=True)
    typ, data = d.search(None, "SEEN")
    d.logout()
    assert data[0].split() == [b"3"]


def test_imap_create_rename_delete_folder(server):
    c = imap(server)
    assert c.create("Projects")[0] == "OK"
    assert c.rename("Projects", "Archive")[0] == "OK"
    names = b" ".join(c.list()[1])
    assert b"Archive" in names and b"Projects" not in names
    assert c.delete("Archive")[0] == "OK"
    assert b"Archive" not in b" ".join(c.list()[1])
    c.logout()


def test_imap_append_to_sent(server, corpus):
    c = imap(server)
    names = b" ".join(c.list()[1])
    if b"Sent" not in names:
        assert c.create("Sent")[0] == "OK"
    typ, _ = c.append("Sent", "(\\Seen)", None, corpus[0].raw)
    assert typ == "OK"
    typ, data = c.select("Sent")
    assert int(data[0]) >= 1
    typ, data = c.fetch(data[0].decode(), "(BODY.PEEK[])")
    c.logout()
    (literal,) = [item[1] for item in data if isinstance(item, tuple)]
    assert literal == corpus[0].raw


# -- POP3 ------------------------------------------------------------------------------------------------------
def test_pop3_login_right_and_wrong(server):
    p = pop3(server)
    p.quit()
    q = poplib.POP3(server.host, server.pop3_port, timeout=20)
    q.user(server.account.user)
    with pytest.raises(poplib.error_proto):
        q.pass_("not-the-password")
    q.close()


def test_pop3_stat_list_retr_are_byte_exact(server, corpus):
    p = pop3(server)
    count, total = p.stat()
    assert count == len(corpus)
    _, lines, _ = p.list()
    sizes = [int(line.split()[1]) for line in lines]
    assert sum(sizes) == total
    for i, msg in enumerate(corpus, 1):
        resp, body, octets = p.retr(i)
        assert joined(body) == msg.raw  # byte-exact after poplib un-stuffs the dots
        assert sizes[i - 1] == len(msg.raw)  # LIST octets are the message's size as RETR sends it (CRLF)
    p.quit()


def test_pop3_retr_carries_dot_lines_on_the_wire(server, corpus):
    """Read RETR raw from a socket: lines starting with '.' are stuffed, and un-stuffing restores the message."""
    idx = next(i for i, m in enumerate(corpus) if re.search(rb"\r\n\.", m.raw))
    with socket.create_connection((server.host, server.pop3_port), timeout=20) as s:
        f = s.makefile("rb")
        f.readline()
        for line in (f"USER {server.account.user}", f"PASS {server.account.password}", f"RETR {idx + 1}"):
            s.sendall(line.encode() + b"\r\n")
            status = f.readline()
            assert status.startswith(b"+OK"), status
        wire = b""
        while not wire.endswith(b"\r\n.\r\n"):
            wire += f.readline()
        s.sendall(b"QUIT\r\n")
    body = wire[: -len(b".\r\n")]
    unstuffed = b"".join(line[1:] if line.startswith(b".") else line for line in body.splitlines(keepends=True))
    assert unstuffed == corpus[idx].raw
    assert b"\r\n.." in body


def test_pop3_uidl_stable_and_top_zero_is_the_header(server, corpus):
    p = pop3(server)
    first = p.uidl()[1]
    _, top, _ = p.top(2, 0)
    assert joined(top) == header_of(corpus[1].raw)
    p.quit()
    p = pop3(server)
    assert p.uidl()[1] == first and len(set(first)) == len(corpus)
    p.quit()


def test_pop3_dele_then_rset_keeps_everything(server, corpus):
    p = pop3(server)
    p.dele(1)
    with pytest.raises(poplib.error_proto):
        p.retr(1)  # a deleted message cannot be read
    p.rset()
    assert joined(p.retr(1)[1]) == corpus[0].raw
    p.quit()
    p = pop3(server)
    assert p.stat()[0] == len(corpus)
    p.quit()


def test_pop3_dele_then_quit_removes_for_pop3_and_imap(server, corpus):
    p = pop3(server)
    p.dele(2)
    p.quit()
    p = pop3(server)
    assert p.stat()[0] == len(corpus) - 1
    p.quit()
    c = imap(server)
    typ, data = c.select("INBOX")
    assert int(data[0]) == len(corpus) - 1
    typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER])")
    c.logout()
    headers = [item[1] for item in data if isinstance(item, tuple)]
    assert header_of(corpus[1].raw) not in headers and header_of(corpus[0].raw) in headers


def test_pop3_dropped_connection_removes_nothing(server, corpus):
    p = pop3(server)
    p.dele(1)
    p.dele(2)
    p.sock.close()  # no QUIT: the session never reaches the UPDATE state
    p = pop3(server)
    assert p.stat()[0] == len(corpus)
    p.quit()


def test_pop3_capa_lists_what_the_study_uses(server):
    """CAPA before login lists USER; after login a server may drop login-only entries (RFC 2449 5)."""
    p = poplib.POP3(server.host, server.pop3_port, timeout=20)
    before = p.capa()
    for cap in ("TOP", "UIDL", "USER", "PIPELINING", "RESP-CODES"):
        assert cap in before, cap
    p.user(server.account.user)
    p.pass_(server.account.password)
    after = p.capa()
    p.quit()
    for cap in ("TOP", "UIDL", "PIPELINING"):
        assert cap in after, cap


def test_pop3_pipelined_commands_are_answered_in_order(server, corpus):
    with socket.create_connection((server.host, server.pop3_port), timeout=20) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(f"USER {server.account.user}\r\nPASS {server.account.password}\r\nSTAT\r\nLIST 1\r\n"
                  f"NOOP\r\nQUIT\r\n".encode())
        replies = [f.readline() for _ in range(6)]
    assert all(r.startswith(b"+OK") for r in replies), replies
    assert replies[2].split()[1] == str(len(corpus)).encode()
    assert replies[3].split()[1:3] == [b"1", str(len(corpus[0].raw)).encode()]
