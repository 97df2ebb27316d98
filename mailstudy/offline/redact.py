"""Overwrite the credentials in a capture so that it can be shared, and change nothing else.

Why: a capture is the evidence behind every number of the study (DESIGN.md: "a number in a chart must be
recomputable from the capture beside it"), so captures get published; the passwords in them must not. Dropping
packets or shortening lines would change the very byte counts, sequence numbers and round trips the capture is
evidence for, so redaction here is *same-length*: every credential byte becomes ``x`` (valid inside an IMAP atom,
a quoted string and base64 alike), CR/LF, quotes and literal markers stay, and the rest of the file is left
byte-identical: same record headers, same timestamps, same link layer, same IP headers (lengths do not change,
so neither does the IP header checksum). Only the TCP checksum of each modified segment is recomputed.

What counts as a credential (the parsers' own definition: :func:`mailstudy.protocol.imap.redacted_arguments` and
:func:`mailstudy.protocol.pop3.redacted_arguments` decide which commands carry one):

- IMAP ``LOGIN`` user and password, each an atom, a quoted string (the characters inside the quotes) or a
  literal (the literal's bytes, synchronizing or LITERAL+);
- IMAP ``AUTHENTICATE`` initial response (SASL-IR) and every SASL line the client sends for it;
- POP3 ``USER`` and ``PASS`` arguments, ``APOP`` name and digest, ``AUTH`` initial response and every SASL line
  the client sends for it. A SASL cancel (``*``) and an empty response (``=`` or an empty line) are not secrets
  and are left alone.

How, in stream offsets (so retransmissions and overlaps are redacted too):

1. The capture is read with :class:`mailstudy.net.pcap.PcapReader` and reassembled with
   :func:`mailstudy.net.reassembly.reassemble`, exactly as the analysis reads it; the reassembler's
   ``on_segment`` watcher hands over every client segment's stream offset (its own connection split and offset
   rule, not a copy of them).
2. Each session's chunks, in the order they became readable, go through a small scanner per protocol that finds
   the byte ranges of the credentials in the client stream. Why not the parsers themselves: they emit exchanges
   with counts, never byte offsets, and the rules forbid changing them for this; the scanners mirror their rules
   (which client line is a SASL line, which ``+`` is for a literal, refused synchronizing literals, STARTTLS)
   and reuse their regular expressions, line cutting (:class:`~mailstudy.protocol._stream.ByteStream`) and
   helpers (``redacted_arguments``, ``is_multiline``, ``_status_of``).
3. Ranges map back to sequence offsets (gaps in the client stream are skipped the way the reassembler skips
   them) and from there to *every* packet whose payload covers them: the first copy, retransmissions, overlaps.
4. The input is copied to a temporary file beside the output; the covered payload bytes are overwritten in place
   at their file offsets (the reader gives each packet's ``tcp_offset``: no second walk of the records or the
   link and IP headers) and each modified segment's TCP checksum is recomputed over the IPv4 or IPv6
   pseudo-header (:mod:`mailstudy.net.checksum`); then the temporary file replaces the output atomically. A
   segment cut by the snap length (or the first fragment of a fragmented IP packet) cannot be summed whole: its
   checksum is updated incrementally (RFC 1624), which keeps it right if it was right.

Loopback captures carry *partial* checksums (checksum offload: tshark flags nearly every packet of a loopback
capture as bad); a redacted segment gets a complete, correct checksum, every other packet keeps its bytes.

Encrypted sessions (implicit TLS, or after STARTTLS/STLS/COMPRESS) hold no readable credential after the switch
and are not scanned past it. Sessions that are neither IMAP nor POP3 (by greeting, else by port) are copied
unchanged and listed in the report.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import socket
import struct
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from mailstudy.capture.sidecar import sidecar_path
from mailstudy.net.checksum import tcp_checksum, updated_checksum
from mailstudy.net.layouts import IMAP_PORTS, POP3_PORTS, TCP, TH_FIN
from mailstudy.net.pcap import PcapError, PcapReader, PcapStats, TcpPacket
from mailstudy.net.reassembly import TcpConnection, reassemble
from mailstudy.outputs import publish, tmp_beside, write_atomically
from mailstudy.protocol._stream import ByteStream, strip_eol
from mailstudy.protocol.events import DOWN, UP
from mailstudy.protocol.imap import _CLIENT_LITERAL, _GREETING, _SERVER_LITERAL, _TAGGED
from mailstudy.protocol.imap import redacted_arguments as imap_redacted_arguments
from mailstudy.protocol.pop3 import _status_of, is_multiline
from mailstudy.protocol.pop3 import redacted_arguments as pop3_redacted_arguments

__all__ = ["FILLER", "KINDS", "RedactError", "Credential", "SessionRedaction", "RedactionReport",
           "find_credentials", "redact_pcap"]

FILLER = b"x"
KINDS = ("imap-login-user", "imap-login-password", "imap-authenticate", "imap-sasl-response",
         "pop3-user", "pop3-pass", "pop3-apop", "pop3-auth", "pop3-sasl-response")
_SUM_AT = TCP.offsets["sum"]
_SEQ_AT = TCP.offsets["seq"]
_OFF_AT = TCP.offsets["off_x2"]
_NOT_SECRET = (b"", b"*", b"=")  # SASL cancel, empty responses


class RedactError(ValueError):
    """Redaction cannot be done (unreadable input, OUT == IN, a stream that cannot be mapped); one line."""


@dataclass(frozen=True)
class Credential:
    """One credential: ``[start, end)`` in the session's client stream (gaps left out, as ``stream("up")``)."""

    kind: str
    start: int
    end: int


@dataclass
class SessionRedaction:
    index: int  # TcpConnection.index
    protocol: str  # "imap" | "pop3" | "" (not a mail session: not scanned)
    client: tuple[str, int]
    server: tuple[str, int]
    credentials: list[Credential] = field(default_factory=list)
    encrypted: bool = False  # the scan stopped at TLS/COMPRESS


@dataclass
class RedactionReport:
    """What :func:`redact_pcap` did."""

    input: str
    output: str
    sessions: list[SessionRedaction] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)  # kind -> number of credentials
    bytes: int = 0  # credential bytes in the client streams (each stream byte once)
    bytes_overwritten: int = 0  # payload bytes overwritten in the file (retransmitted copies count again)
    packets: int = 0  # packets modified
    checksums_fixed: int = 0  # modified packets whose original TCP checksum did not verify (offload)
    checksums_incremental: int = 0  # modified packets cut short: checksum updated per RFC 1624
    sidecar: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fields(self) -> list[str]:
        return [k for k in KINDS if self.kinds.get(k)]

    @property
    def mail_sessions(self) -> int:
        return sum(1 for s in self.sessions if s.protocol)


# ---- scanners --------------------------------------------------------------------------------------------------
_strip_eol = strip_eol


def _tokens(data: bytes, i: int, end: int) -> list[tuple[int, int]]:
    """Ranges of the astrings in ``data[i:end]``: an atom whole, a quoted string's inside (escapes included)."""
    out = []
    while i < end:
        if data[i] in b" \t":
            i += 1
            continue
        if data[i] == 0x22:  # '"'
            j = i + 1
            while j < end and data[j] != 0x22:
                j += 2 if data[j] == 0x5C else 1  # backslash escapes the next character
            j = min(j, end)
            if j > i + 1:
                out.append((i + 1, j))
            i = j + 1
        else:
            j = i
            while j < end and data[j] not in b" \t":
                j += 1
            out.append((i, j))
            i = j
    return out


class _Scanner:
    """Both directions of one session in the order they became readable; collects :class:`Credential`."""

    def __init__(self) -> None:
        self.up = ByteStream()
        self.down = ByteStream()
        self.found: list[Credential] = []
        self.opaque = False
        self._checked = {UP: False, DOWN: False}

    def feed(self, direction: str, data: bytes) -> None:
        if self.opaque or not data:
            return
        s = self.up if direction == UP else self.down
        s.append(data, None)
        if not self._checked[direction]:
            if s.base == 0 and len(s) < 2 and s.peek(1) == b"\x16":
                return  # may start a TLS record: wait for the next byte
            self._checked[direction] = True
            if s.base == 0 and s.peek(2) == b"\x16\x03":
                self.opaque = True  # implicit TLS: nothing readable
                return
        if direction == UP:
            self._up()
        else:
            self._down()

    def close(self) -> None:
        """End of stream: an unterminated last client line may still hold a credential (a capture cut short)."""
        if not self.opaque and len(self.up):
            self._last_line(self.up.take_all())

    def _found(self, kind: str, start: int, end: int) -> None:
        if end > start:
            self.found.append(Credential(kind, start, end))

    def _sasl(self, kind: str, seg) -> None:
        body = _strip_eol(seg.data)
        if body.strip() not in _NOT_SECRET:
            self._found(kind, seg.start, seg.start + len(body))

    def _up(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _down(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _last_line(self, seg) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(eq=False)  # identity: two commands may carry the same tag
class _ImapCmd:
    tag: bytes
    command: str
    sasl_turns: int = 0
    args_seen: int = 0  # LOGIN: astrings seen so far (0: user next, 1+: password)
    idle_done: bool = False


class _ImapScanner(_Scanner):
    """Mirrors :class:`mailstudy.protocol.imap.ImapParser`'s rules for lines, literals, ``+`` and tags."""

    def __init__(self) -> None:
        super().__init__()
        self.outstanding: list[_ImapCmd] = []
        self.cur: _ImapCmd | None = None  # command whose line continues after a literal
        self.up_literal = 0
        self.up_literal_size = 0
        self.up_literal_sync = False
        self.up_literal_kind: str | None = None
        self.down_literal = 0
        self.resp_first: bytes | None = None
        self.resp_junk = False
        self.greeted = False

    # -- client
    def _up(self) -> None:
        s = self.up
        while len(s) and not self.opaque:
            if self.up_literal:
                seg = s.take(self.up_literal)
                self.up_literal -= len(seg.data)
                if self.up_literal_kind:
                    self._found(self.up_literal_kind, seg.start, seg.start + len(seg.data))
                continue
            seg = s.read_line()
            if seg is None:
                return
            if seg.kind == "overflow":
                continue  # a runaway line (> 1 MiB) is no credential; the parser skips it too
            if seg.kind == "skip":
                if seg.ends_line:
                    self.cur = None
                continue
            if self.cur is not None:
                self._continues(self.cur, seg.data, seg.start)
            else:
                self._line(seg)

    def _last_line(self, seg) -> None:
        if self.cur is not None:
            self._continues(self.cur, seg.data, seg.start)
        else:
            self._line(seg)
        self.up_literal = 0

    def _line(self, seg) -> None:
        line = seg.data
        auth = next((c for c in self.outstanding if c.command == "AUTHENTICATE" and c.sasl_turns > 0), None)
        if auth is not None:
            auth.sasl_turns -= 1
            self._sasl("imap-sasl-response", seg)
            return
        body = _strip_eol(line)
        if body.strip().upper() == b"DONE":
            idle = next((c for c in self.outstanding if c.command == "IDLE" and not c.idle_done), None)
            if idle is not None:
                idle.idle_done = True
                return
        tag, _, rest = body.partition(b" ")
        if not tag:
            return
        verb, _, args = rest.partition(b" ")
        command = verb.decode("utf-8", "replace").upper()
        c = _ImapCmd(tag, command)
        self.outstanding.append(c)
        pos = len(tag) + 1 + len(verb) + 1  # where args start in the line
        text = args.decode("utf-8", "replace")
        if command in ("LOGIN", "AUTHENTICATE") and imap_redacted_arguments(command, text) != text:
            if command == "LOGIN":
                self._continues(c, line, seg.start, pos)
                return
            i = pos
            while i < len(body) and body[i] in b" \t":
                i += 1
            while i < len(body) and body[i] not in b" \t":  # the mechanism
                i += 1
            while i < len(body) and body[i] in b" \t":
                i += 1
            if body[i:].strip() not in _NOT_SECRET:
                self._found("imap-authenticate", seg.start + i, seg.start + len(body.rstrip()))
        self._after(c, _CLIENT_LITERAL.search(line), secret_literal=False)

    def _continues(self, c: _ImapCmd, line: bytes, start: int, pos: int = 0) -> None:
        """A LOGIN line (from ``pos``) or the rest of a command line after a literal."""
        m = _CLIENT_LITERAL.search(line)
        end = m.start() if m else len(_strip_eol(line))
        login = c.command == "LOGIN"
        if login:
            for a, b in _tokens(line, pos, end):
                self._found("imap-login-user" if c.args_seen == 0 else "imap-login-password", start + a, start + b)
                c.args_seen += 1
        self._after(c, m, secret_literal=login)

    def _after(self, c: _ImapCmd, m, secret_literal: bool) -> None:
        if m is None:
            self.cur = None
            return
        self.cur = c
        self.up_literal = self.up_literal_size = int(m.group(1))
        self.up_literal_sync = not m.group(2)
        self.up_literal_kind = None
        if secret_literal:
            self.up_literal_kind = "imap-login-user" if c.args_seen == 0 else "imap-login-password"
            c.args_seen += 1

    # -- server
    def _down(self) -> None:
        s = self.down
        while len(s) and not self.opaque:
            if self.down_literal:
                seg = s.take(self.down_literal)
                self.down_literal -= len(seg.data)
                continue
            seg = s.read_line()
            if seg is None:
                return
            if self.resp_first is None:
                self.resp_first = seg.data if seg.kind == "line" else seg.data[:64]
                self.resp_junk = False
            if seg.kind == "overflow":
                self.resp_junk = True
                continue
            if seg.kind == "skip":
                if seg.ends_line:
                    self._response()
                continue
            if not self.resp_junk and self.resp_first.startswith(b"*"):
                m = _SERVER_LITERAL.search(seg.data)
                if m is not None:
                    self.down_literal = int(m.group(1))
                    continue
            self._response()

    def _response(self) -> None:
        first, self.resp_first = self.resp_first, None
        if not self.greeted:
            self.greeted = True
            if not self.resp_junk and _GREETING.match(first):
                return
        if self.resp_junk or first.startswith(b"*"):
            return
        if first.startswith(b"+"):
            target = self._continuation_target()
            if target is not None and target.command == "AUTHENTICATE" and target is not self.cur:
                target.sasl_turns += 1
            return
        m = _TAGGED.match(first)
        if m is None:
            return
        c = next((x for x in self.outstanding if x.tag == m.group(1)), None)
        if c is None:
            return
        self.outstanding.remove(c)
        if c is self.cur and self.up_literal and self.up_literal_sync and self.up_literal == self.up_literal_size:
            self.cur = None  # a refused synchronizing literal is never sent
            self.up_literal = 0
        if m.group(2).upper() == b"OK" and c.command in ("STARTTLS", "COMPRESS"):
            self.opaque = True

    def _continuation_target(self) -> _ImapCmd | None:
        if self.cur is not None and self.cur in self.outstanding:
            return self.cur
        for command in ("AUTHENTICATE", "IDLE"):
            c = next((x for x in self.outstanding if x.command == command), None)
            if c is not None:
                return c
        return self.outstanding[0] if self.outstanding else None


@dataclass(eq=False)
class _Pop3Cmd:
    command: str
    arguments: str
    sasl_turns: int = 0


class _Pop3Scanner(_Scanner):
    """Mirrors :class:`mailstudy.protocol.pop3.Pop3Parser`: FIFO replies, multi-line data, AUTH challenges."""

    def __init__(self) -> None:
        super().__init__()
        self.fifo: list[_Pop3Cmd] = []
        self.multi = False
        self.line_start = True  # in multi-line data: at the start of a line
        self.greeted = False

    def _up(self) -> None:
        s = self.up
        while len(s) and not self.opaque:
            seg = s.read_line()
            if seg is None:
                return
            if seg.kind == "line":
                self._last_line(seg)

    def _last_line(self, seg) -> None:
        auth = next((c for c in self.fifo if c.command == "AUTH" and c.sasl_turns > 0), None)
        if auth is not None:
            auth.sasl_turns -= 1
            self._sasl("pop3-sasl-response", seg)
            return
        body = _strip_eol(seg.data)
        verb, _, args = body.partition(b" ")
        command = verb.decode("utf-8", "replace").upper()
        text = args.decode("utf-8", "replace")
        self.fifo.append(_Pop3Cmd(command, text))
        if pop3_redacted_arguments(command, text) == text:
            return
        pos = len(verb) + 1
        start = seg.start
        if command in ("USER", "PASS"):  # the whole rest of the line: a password may hold spaces
            self._found(f"pop3-{command.lower()}", start + pos, start + len(body))
        elif command == "APOP":
            for a, b in _tokens(body, pos, len(body)):
                if body[a - 1:a] == b'"':
                    a -= 1  # APOP has no quoting: a leading quote belongs to the name
                self._found("pop3-apop", start + a, start + b)
        elif command == "AUTH":
            toks = _tokens(body, pos, len(body))
            if len(toks) > 1:
                a, b = toks[1][0], len(body.rstrip())
                if body[a:b].strip() not in _NOT_SECRET:
                    self._found("pop3-auth", start + a, start + b)

    def _down(self) -> None:
        s = self.down
        while len(s) and not self.opaque:
            if self.multi:
                if not self._multiline():
                    return
                continue
            seg = s.read_line()
            if seg is None:
                return
            if seg.kind != "line":
                continue
            line = seg.data
            status = _status_of(line)
            if not self.greeted:
                self.greeted = True
                if status is not None:
                    continue
            c = self.fifo[0] if self.fifo else None
            if c is None:
                continue
            if status is None:
                if line.startswith(b"+") and c.command == "AUTH":
                    c.sasl_turns += 1
                continue
            c.sasl_turns = 0
            self.fifo.pop(0)
            if status == "+OK" and is_multiline(c.command, c.arguments):
                self.multi = self.line_start = True
            elif status == "+OK" and c.command == "STLS":
                self.opaque = True


    def _multiline(self) -> bool:
        """Skip multi-line data up to its ``.`` line, as Pop3Parser._read_multiline does; True when it ended."""
        s = self.down
        while len(s):
            if self.line_start and s.peek(1) == b".":
                head = s.peek(3)
                if head == b".\r\n" or head[:2] == b".\n":
                    s.take(3 if head == b".\r\n" else 2)
                    self.multi = False
                    return True
                if head in (b".", b".\r"):
                    return False  # cannot tell the end line from a stuffed line yet
                s.take(1)
                self.line_start = False
                continue
            i = s.find(b"\n.")
            data = s.take(i + 1 if i >= 0 else len(s)).data
            self.line_start = data.endswith(b"\n")
        return False


_SCANNERS = {"imap": _ImapScanner, "pop3": _Pop3Scanner}


def find_credentials(protocol: str, chunks: Iterable) -> tuple[list[Credential], bool]:
    """Credentials in one session: ``chunks`` are ``StreamChunk``s (or ``(direction, data)`` pairs) in order.

    Returns the credentials (offsets in the client stream) and whether the scan stopped at encryption.
    """
    try:
        scanner = _SCANNERS[protocol]()
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}: expected 'imap' or 'pop3'") from None
    for ch in chunks:
        direction, data = (ch.direction, ch.data) if hasattr(ch, "direction") else (ch[0], ch[1])
        scanner.feed(direction, data)
    scanner.close()
    return scanner.found, scanner.opaque


def _protocol_of(conn: TcpConnection) -> str:
    """IMAP or POP3 by the server's first bytes (the greeting), else by the server's port; "" if neither."""
    first = next((c.data for c in conn.chunks if c.direction == DOWN), b"")
    if first[:4] in (b"* OK", b"* PR", b"* BY"):
        return "imap"
    if first[:3] == b"+OK" or first[:4] == b"-ERR":
        return "pop3"
    port = conn.server[1]
    return "imap" if port in IMAP_PORTS else "pop3" if port in POP3_PORTS else ""


# ---- pass 1: where every client segment sits in its stream -------------------------------------------------------
class _UpState:
    """One client stream's segments as the reassembler placed them: ``(offset, length, packet)``, and its FIN."""

    __slots__ = ("fin", "segs")

    def __init__(self) -> None:
        self.fin: int | None = None
        self.segs: list[tuple[int, int, TcpPacket]] = []


def _watcher(ups: dict[int, _UpState]):
    """A :func:`~mailstudy.net.reassembly.reassemble` ``on_segment`` watcher that notes every client segment."""

    def on_segment(conn: int, direction: int, off: int, p: TcpPacket) -> None:
        if direction != 0:
            return
        st = ups.get(conn)
        if st is None:
            st = ups[conn] = _UpState()
        n = len(p.payload)
        if n:
            st.segs.append((off, n, p))
        if p.flags & TH_FIN and st.fin is None:
            st.fin = off + n

    return on_segment


def _coverage(st: _UpState) -> list[tuple[int, int]]:
    """Merged ``[a, b)`` sequence-offset intervals the capture holds of one client stream (>= 0, before FIN)."""
    spans = []
    for off, n, _p in st.segs:
        a, b = max(off, 0), off + n
        if st.fin is not None:
            b = min(b, st.fin)
        if b > a:
            spans.append((a, b))
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _to_seq(cover: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """Stream range (gaps left out) -> sequence-offset ranges."""
    out = []
    pos = 0
    for a, b in cover:
        n = b - a
        lo, hi = max(start, pos), min(end, pos + n)
        if lo < hi:
            out.append((a + lo - pos, a + hi - pos))
        pos += n
        if pos >= end:
            break
    return out


# ---- pass 2: the packets' bytes, at the file offsets the reader gave --------------------------------------------
def _patch_one(mm, p: TcpPacket, ranges: list[tuple[int, int]], report: RedactionReport) -> None:
    """Overwrite ``ranges`` of packet ``p``'s payload in ``mm`` and make its TCP checksum right again."""
    tcp = p.tcp_offset
    if tcp < 0 or struct.unpack_from("!I", mm, tcp + _SEQ_AT)[0] != p.seq:
        raise RedactError(f"record #{p.index}: the file changed under the redaction; nothing written")
    ps = tcp + ((mm[tcp + _OFF_AT] >> 4) << 2)
    end = ps + len(p.payload)
    old = bytes(mm[tcp:end])
    for a, b in ranges:
        mm[ps + a:ps + b] = FILLER * (b - a)
        report.bytes_overwritten += b - a
    new = bytes(mm[tcp:end])
    stored = struct.unpack_from("!H", mm, tcp + _SUM_AT)[0]
    if not p.truncated:
        src, dst = (socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip) for ip in (p.src, p.dst))
        if tcp_checksum(src, dst, old) != stored:
            report.checksums_fixed += 1
        csum = tcp_checksum(src, dst, new)
    else:  # cut short: update over the changed 16-bit words only
        report.checksums_incremental += 1
        lo = (min(a for a, _ in ranges) + ps - tcp) & ~1
        hi = max(b for _, b in ranges) + ps - tcp
        hi += hi & 1
        csum = updated_checksum(stored, old[lo:hi], new[lo:hi])
    struct.pack_into("!H", mm, tcp + _SUM_AT, csum)
    report.packets += 1


# ---- the whole job -----------------------------------------------------------------------------------------------
def _same_file(a: str, b: str) -> bool:
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def redact_pcap(src: str | os.PathLike, dst: str | os.PathLike) -> RedactionReport:
    """Write ``dst``: ``src`` with every IMAP/POP3 credential overwritten (see the module doc); returns a report.

    Raises :class:`RedactError` (one line) when ``src`` cannot be read as a capture, ``dst`` is ``src``, or a
    client stream cannot be mapped back to its packets (then nothing is written).
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if _same_file(src, dst):
        raise RedactError(f"the output must not be the input ({os.path.basename(dst)}): redaction never edits "
                          f"the original capture")
    out_dir = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(out_dir):
        raise RedactError(f"cannot write {dst}: folder {out_dir} does not exist")
    report = RedactionReport(src, dst)
    stats = PcapStats()
    ups: dict[int, _UpState] = {}
    try:
        conns = reassemble(PcapReader(src, stats), on_segment=_watcher(ups))
    except PcapError as e:
        raise RedactError(str(e)) from None
    except OSError as e:
        raise RedactError(f"cannot read {src}: {e.strerror or e}") from None
    report.warnings.extend(stats.warnings)

    # which bytes of which packet: record index -> (packet, [(a, b) in the payload])
    patches: dict[int, tuple[TcpPacket, list[tuple[int, int]]]] = {}
    for conn in conns:
        proto = _protocol_of(conn)
        sr = SessionRedaction(conn.index, proto, conn.client, conn.server)
        report.sessions.append(sr)
        if not proto:
            if conn.bytes_up:
                report.warnings.append(f"session {conn.index} ({conn.client[0]}:{conn.client[1]} -> "
                                       f"{conn.server[0]}:{conn.server[1]}) is neither IMAP nor POP3: not scanned")
            continue
        creds, sr.encrypted = find_credentials(proto, conn.chunks)
        sr.credentials = creds
        if not creds:
            continue
        st = ups.get(conn.index)
        cover = _coverage(st) if st else []
        if sum(b - a for a, b in cover) != conn.bytes_up:
            raise RedactError(f"session {conn.index}: cannot map its client stream back to the packets "
                              f"({conn.bytes_up} bytes reassembled, {sum(b - a for a, b in cover)} found); "
                              f"nothing written")
        if conn.gaps:
            report.warnings.append(f"session {conn.index}: the capture has gaps; credentials in missing bytes "
                                   f"were never captured, those after a gap may be missed")
        segs = sorted(st.segs, key=lambda seg: seg[:2])
        starts = [s[0] for s in segs]
        longest = max(s[1] for s in segs)
        for cred in creds:
            report.kinds[cred.kind] = report.kinds.get(cred.kind, 0) + 1
            report.bytes += cred.end - cred.start
            for a, b in _to_seq(cover, cred.start, cred.end):
                i = max(0, bisect_right(starts, a - longest) - 1)
                for off, n, p in segs[i:]:
                    if off >= b:
                        break
                    lo, hi = max(a, off), min(b, off + n)
                    if lo < hi:
                        patches.setdefault(p.index, (p, []))[1].append((lo - off, hi - off))
    _write(src, dst, patches, report)
    side = sidecar_path(src)
    if side.is_file():
        out = _copy_sidecar(side, dst, report)
        report.sidecar = str(out) if out else None
    return report


def _write(src: str, dst: str, patches: dict, report: RedactionReport) -> None:
    tmp = tmp_beside(Path(dst))
    try:
        try:
            shutil.copyfile(src, tmp)
        except OSError as e:
            raise RedactError(f"cannot copy {src} to {dst}: {e.strerror or e}") from None
        if patches:
            with open(tmp, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as mm:
                for _index, (p, ranges) in sorted(patches.items()):
                    _patch_one(mm, p, ranges, report)
                mm.flush()
        publish(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _copy_sidecar(side: Path, dst: str, report: RedactionReport) -> Path | None:
    try:
        doc = json.loads(side.read_text())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        report.warnings.append(f"sidecar {side.name} is not readable JSON ({e}); not copied")
        return None
    if "pcap" in doc:
        doc["pcap"] = os.path.basename(dst)
    doc["redaction"] = {"done": True, "fields": report.fields, "bytes": report.bytes}
    return write_atomically(sidecar_path(dst), json.dumps(doc, indent=2, default=str) + "\n")
