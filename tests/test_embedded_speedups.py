"""The pymap speed-ups change nothing on the wire: the same IMAP commands get the same bytes with and without them.

Why: ``mailstudy.servers.pymap_speedups`` replaces pieces of pymap (lazy MIME parsing, a fast FETCH renderer,
batched writes) and leans on pymap internals. Two embedded servers start on the same mailbox, one with the
speed-ups and one with plain pymap (``speedups=False``); one list of tagged IMAP commands goes to each over a raw
socket, and every reply must be byte-identical once the values that are random or clock-based by design are
masked. The mailbox is a generated corpus (text and multipart messages) plus the edge cases where the lazy parser
must hand over to pymap's own (no blank line after the header, no final CRLF, bare LF line ends, a message that
is one line without a line end, an empty header, nested multipart with a message/rfc822 part).

Start times of both servers are logged (``-o log_cli=true`` shows them), never asserted.
"""

from __future__ import annotations

import logging
import pstats
import re
import socket
import time

import pytest

from mailstudy.corpus import generate
from mailstudy.servers import make_server
from mailstudy.servers.base import DEFAULT_ACCOUNT
from mailstudy.servers.embedded import EmbeddedServer

log = logging.getLogger(__name__)
USER, PASSWORD = DEFAULT_ACCOUNT.user, DEFAULT_ACCOUNT.password

NESTED = (
    b"From: nest@example.org\r\nTo: alice@example.org\r\nSubject: nested kangaroo\r\n"
    b"Message-ID: <nested@example.org>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
    b"preamble\r\n--outer\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Outer text, caf\xc3\xa9.\r\n"
    b"--outer\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: inner@example.org\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
    b"--inner\r\nContent-Type: text/plain\r\n\r\nInner plain kangaroo.\r\n"
    b"--inner\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<p>Inner =3D html</p>\r\n--inner--\r\n"
    b"--outer\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAwQFBgcICQ==\r\n--outer--\r\nepilogue\r\n")

EDGE_CASES = [
    b"From: a@example.org\r\nSubject: header only, no blank line, no body\r\n",
    b"From: a@example.org\r\nSubject: no blank line\r\nthis line should have been the body kangaroo\r\n",
    b"From: a@example.org\r\nSubject: no final CRLF\r\n\r\nfirst line\r\nlast line without end kangaroo",
    b"From: a@example.org\nSubject: bare LF\nMessage-ID: <lf@example.org>\n\nline one\nkangaroo line two\n",
    b"Subject: one line without a line end",
    b"\r\nno header at all, only a body\r\n",
    NESTED,
]
CORPUS = generate(60, seed=7).raws()
MAILBOX = CORPUS + EDGE_CASES
APPENDED = (b"From: later@example.org\r\nTo: alice@example.org\r\nSubject: appended kangaroo\r\n"
            b"Message-ID: <appended@example.org>\r\nIn-Reply-To: <nested@example.org>\r\n\r\nappended body\r\n")
APPEND_DATE = b'"01-Jan-2020 10:00:00 +0000"'

# (tag, command) sent in this order to both servers. The state changes (\Seen from BODY[], STORE, EXPUNGE,
# APPEND) happen in the same order on both, so every reply must match.
COMMANDS: list[tuple[bytes, bytes]] = [
    (b"a01", b"LOGIN %b %b" % (USER.encode(), PASSWORD.encode())),
    (b"a02", b"CAPABILITY"),
    (b"a03", b"SELECT INBOX"),
    (b"a04", b"UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER])"),
    (b"a05", b"UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[])"),
    (b"a06", b"FETCH 1:* (BODYSTRUCTURE)"),
    (b"a07", b"FETCH 1:* (BODY)"),
    (b"a08", b"FETCH 1:* (ENVELOPE)"),
    (b"a09", b"FETCH 1:* (BODY.PEEK[]<0.100>)"),
    (b"a10", b"FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"),
    (b"a11", b"FETCH 1:* (BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)])"),
    (b"a12", b"FETCH 1:* (BODY.PEEK[1])"),
    (b"a13", b"FETCH 1:* (BODY.PEEK[TEXT] BODY.PEEK[1.MIME])"),
    (b"a14", b"FETCH 1:* (BINARY.PEEK[1] BINARY.SIZE[1])"),
    (b"a15", b"FETCH 1:* (RFC822.HEADER)"),
    (b"a16", b"FETCH 1:* (UID FLAGS BODY.PEEK[HEADER] BODY.PEEK[HEADER] RFC822.SIZE)"),
    (b"a17", b"FETCH 1:* (EMAILID THREADID)"),
    (b"a18", b"FETCH %d (BODY.PEEK[2] BINARY.PEEK[2] BODY.PEEK[2.1] BODY.PEEK[2.1.2] BINARY.PEEK[3])"
             % len(MAILBOX)),
    (b"a19", b"FETCH 3 (RFC822)"),
    (b"a20", b"FETCH 5 (BODY[1])"),
    (b"a21", b"FETCH 6:9 (BODY[])"),
    (b"a22", b"FETCH 61:* (UID BODY[])"),
    (b"a23", b"FETCH 10 (RFC822.TEXT)"),
    (b"a24", b"STORE 2 +FLAGS (\\Flagged)"),
    (b"a25", b"STORE 3:4 +FLAGS.SILENT (\\Answered)"),
    (b"a26", b"STORE 6 -FLAGS (\\Seen)"),
    (b"a27", b"FETCH 1:12 (FLAGS)"),
    (b"a28", b"SEARCH TEXT kangaroo"),
    (b"a29", b"SEARCH TEXT latency"),
    (b"a30", b"UID SEARCH BODY friday"),
    (b"a31", b"SEARCH SEEN"),
    (b"a32", b"STORE 7:8 +FLAGS (\\Deleted)"),
    (b"a33", b"EXPUNGE"),
    (b"a34", b"APPEND INBOX (\\Seen) %b {%d}" % (APPEND_DATE, len(APPENDED))),
    (b"a35", b"FETCH * (UID FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE ENVELOPE BODY.PEEK[])"),
    (b"a36", b"UID FETCH 68 (UID FLAGS BODY.PEEK[HEADER] EMAILID THREADID)"),
    (b"a37", b"NOOP"),
    (b"a38", b"LOGOUT"),
]
APPEND_LITERALS = {b"a34": APPENDED}

# Values pymap makes random or clock-based by design; everything else must match byte for byte. Each value is
# replaced by its order of first appearance in that transcript, so "the same id twice" (threads, a re-appended
# message) must still match too.
MASKS = [
    re.compile(rb"\[UIDVALIDITY (\d+)\]"),          # the mailbox's creation time (as Dovecot does)
    re.compile(rb"\[MAILBOXID \(([^)]+)\)\]"),      # ObjectId.random_mailbox_id()
    re.compile(rb"\[APPENDUID (\d+) \d+\]"),        # the UIDVALIDITY again
    re.compile(rb"EMAILID \(([^)]+)\)"),            # ObjectId.random_email_id()
    re.compile(rb"THREADID \(([^)]+)\)"),           # ObjectId.random_thread_id()
]
_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n$")


def mask(data: bytes) -> bytes:
    seen: dict[bytes, int] = {}

    def repl(m: re.Match) -> bytes:
        n = seen.setdefault(m.group(1), len(seen))
        return m.group(0)[:m.start(1) - m.start(0)] + b"<masked %d>" % n + m.group(0)[m.end(1) - m.start(0):]

    for pattern in MASKS:
        data = pattern.sub(repl, data)
    return data


class RawIMAP:
    """Tagged commands over a plain socket; each reply read up to its tagged line, literals read by count."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self._line()

    def _line(self) -> bytes:
        line = self.file.readline()
        if not line:
            raise AssertionError("server closed the connection")
        return line

    def _read_until(self, stop) -> bytes:
        out = []
        while True:
            line = self._line()
            out.append(line)
            while (m := _LITERAL.search(line)):
                out.append(self.file.read(int(m.group(1))))
                line = self._line()
                out.append(line)
            if stop(line):
                return b"".join(out)

    def command(self, tag: bytes, text: bytes, literal: bytes | None = None) -> bytes:
        self.sock.sendall(tag + b" " + text + b"\r\n")
        if literal is None:
            return self._read_until(lambda line: line.startswith(tag + b" "))
        head = self._read_until(lambda line: line.startswith(b"+") or line.startswith(tag + b" "))
        if not head.startswith(b"+"):
            return head
        self.sock.sendall(literal + b"\r\n")
        return head + self._read_until(lambda line: line.startswith(tag + b" "))

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def transcript(server: EmbeddedServer) -> list[bytes]:
    """The greeting, then the whole reply to each of :data:`COMMANDS`, masked."""
    conn = RawIMAP(server.imap_port)
    try:
        out = [conn.greeting]
        out += [conn.command(tag, text, APPEND_LITERALS.get(tag)) for tag, text in COMMANDS]
    finally:
        conn.close()
    return [mask(reply) for reply in out]


def _started(speedups: bool) -> tuple[EmbeddedServer, float]:
    server = make_server("embedded", speedups=speedups, mailboxes={USER: MAILBOX})
    t0 = time.perf_counter()
    server.start()
    return server, time.perf_counter() - t0


@pytest.fixture(scope="module")
def transcripts():
    """(with speed-ups, plain pymap) transcripts of the same commands on the same mailbox."""
    fast, fast_s = _started(True)
    try:
        slow, slow_s = _started(False)
        try:
            log.info("start of %d messages (%d bytes): %.3f s with speed-ups, %.3f s plain pymap",
                     len(MAILBOX), sum(map(len, MAILBOX)), fast_s, slow_s)
            assert "speed-ups off" in slow.version and "speed-ups off" not in fast.version
            return transcript(fast), transcript(slow)
        finally:
            slow.stop()
    finally:
        fast.stop()


def _first_difference(a: bytes, b: bytes) -> str:
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return (f"lengths {len(a)} vs {len(b)}, first difference at byte {i}: "
            f"{a[max(0, i - 80):i + 80]!r} vs {b[max(0, i - 80):i + 80]!r}")


@pytest.mark.parametrize("index", range(len(COMMANDS) + 1),
                         ids=["greeting"] + [f"{tag.decode()} {text.split(b' (')[0].decode()}"
                                             for tag, text in COMMANDS])
def test_same_bytes_with_and_without_speedups(transcripts, index):
    fast, slow = transcripts
    assert fast[index] == slow[index], _first_difference(fast[index], slow[index])


def test_the_commands_did_what_the_comparison_relies_on(transcripts):
    """Guards against comparing two identical failures: the commands worked and touched every message."""
    fast, _ = transcripts
    replies = dict(zip([b"greeting"] + [tag for tag, _ in COMMANDS], fast))
    for tag, _ in COMMANDS:
        assert re.search(rb"(?m)^%b OK " % tag, replies[tag]), (tag, replies[tag][-200:])
    assert b"* %d EXISTS\r\n" % len(MAILBOX) in replies[b"a03"]
    whole = replies[b"a05"]
    for raw in MAILBOX:  # every message goes out whole, byte for byte, with or without the speed-ups (pymap
        # alone drops the last LF when no line is blank: pymap_speedups.parse_whole keeps it, as Dovecot does)
        assert b"BODY[] {%d}\r\n%b)\r\n" % (len(raw), raw) in whole
    assert whole.count(b" FETCH (") == len(MAILBOX)
    assert b"FLAGS (\\Recent \\Seen)" in replies[b"a21"]      # BODY[] set \Seen, folded into the FETCH
    assert b"* 1 FETCH (BINARY.PEEK[1] ~{" in replies[b"a14"]  # pymap echoes .PEEK (RFC 3516: BINARY[1])
    assert replies[b"a06"].count(b" FETCH (BODYSTRUCTURE (") == len(MAILBOX)
    assert b" 63 64 67\r\n" in replies[b"a28"]   # found in bodies; 67's only in its nested message/rfc822 part
    assert b"* 8 EXPUNGE\r\n* 7 EXPUNGE\r\n" in replies[b"a33"]
    assert b"[APPENDUID <masked 0> 68]" in replies[b"a34"]
    assert b"BODY[] {%d}\r\n%b)" % (len(APPENDED), APPENDED) in replies[b"a35"]
    assert b"EMAILID (<masked " in replies[b"a36"]


def test_the_switch_reaches_the_child(tmp_path, monkeypatch):
    """The child runs the speed-up classes only when asked: its own profile (MAILSTUDY_EMBEDDED_PROFILE) says
    which code answered a FETCH."""
    used = {}
    for speedups in (True, False):
        path = tmp_path / f"profile-{speedups}"
        monkeypatch.setenv("MAILSTUDY_EMBEDDED_PROFILE", str(path))
        with EmbeddedServer(speedups=speedups, mailboxes={USER: [MAILBOX[0], EDGE_CASES[0]]}) as server:
            conn = RawIMAP(server.imap_port)
            try:
                for tag, text in COMMANDS[:5]:
                    assert re.search(rb"(?m)^%b OK " % tag, conn.command(tag, text))
            finally:
                conn.close()
        stats = pstats.Stats(str(path)).stats  # written when the child exits
        used[speedups] = {name for (filename, _line, name) in stats if filename.endswith("pymap_speedups.py")}
    assert {"do_fetch", "parse_lazily", "_write_chunked"} <= used[True]
    assert not used[False] & {"do_fetch", "parse_lazily", "_write_chunked", "__call__"}
