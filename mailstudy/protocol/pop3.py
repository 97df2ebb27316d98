"""A sans-IO POP3 parser: client and server bytes in, greeting and exchanges out (RFC 1939, 2449, 5034, 2595).

Why: the same definition of a POP3 command, its reply and its bytes must serve live traces and pcaps; RETR's
unstuffed payload is also how callers check that a message came back byte for byte.

Rules (the whole state machine in one place):

  * The server's first line is the greeting (``+OK ...`` or ``-ERR ...``).
  * Each client line is a command (``VERB [args]``; the verb is upper-cased, arguments kept as sent, even
    USER/PASS: use :func:`redacted_arguments` to show them). Commands wait in a FIFO: POP3 answers in order, so
    pipelined commands (RFC 2449 PIPELINING) are matched to replies in the order sent.
  * A reply line ``+OK``/``-ERR`` answers the oldest waiting command. It is multi-line iff the status is +OK and
    the command is CAPA, TOP, RETR, or LIST/UIDL/AUTH with no argument. Multi-line data ends at the line ``.``;
    a leading ``.`` of any other line is removed (dot-unstuffing); the unstuffed payload, CRLF line ends kept,
    without the final ``.`` line, is ``Exchange.data``.
  * AUTH (RFC 5034): a server line ``+ ...`` is a SASL challenge for the waiting AUTH; each challenge allows one
    client line (a response, or ``*`` to cancel) that belongs to the AUTH exchange and is not a command; the
    exchange ends with +OK/-ERR.
  * STLS answered +OK: an :class:`Encrypted` event follows its exchange and bytes are only counted
    (``parser.tls``). Bytes starting with a TLS record header (0x16 0x03) in either direction are implicit TLS.
  * Every byte fed ends in exactly one place: the greeting, an exchange, ``parser.unattributed`` or
    ``parser.tls``. Nothing raises: bad input gives ParseWarnings. A stream that ends with commands waiting
    (or inside multi-line data) yields them with status None.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from mailstudy.protocol._stream import (
    MAX_LINE,
    ParserBase,
    PendingBase,
    Segment,
    new_segment,
    new_exchange,
    redact_by,
    strip_eol,
    text_of,
)
from mailstudy.protocol.events import DOWN, UP, Exchange, Greeting, Span
from mailstudy.protocol.imap_lexer import lex

PROTOCOL = "pop3"

_ALWAYS_MULTILINE = {"CAPA", "TOP", "RETR"}
_SPAN_COMMANDS = {"USER", "PASS", "APOP", "AUTH"}
_REDACT = {"USER": "line", "PASS": "line", "APOP": "words", "AUTH": "sasl"}  # how redacted_arguments hides each
_MULTILINE_WITHOUT_ARGS = {"LIST", "UIDL", "AUTH"}

_text, _strip_eol = text_of, strip_eol  # short local names for the hot paths


def is_multiline(command: str, arguments: str) -> bool:
    """Whether a +OK reply to this command carries multi-line data."""
    command = command.upper()
    if command in _ALWAYS_MULTILINE:
        return True
    return command in _MULTILINE_WITHOUT_ARGS and not arguments.strip()


def redacted_arguments(command: str, arguments: str) -> str:
    """``arguments`` with credentials replaced by ``***``: USER, PASS, APOP, AUTH initial response."""
    return redact_by(_REDACT, command, arguments)


def _status_of(line: bytes) -> str | None:
    head = line[:4].upper()
    if head.startswith(b"+OK") and (len(line) == 3 or line[3:4] in (b" ", b"\r", b"\n", b"\t")):
        return "+OK"
    if head == b"-ERR":
        return "-ERR"
    return None


class _Pending(PendingBase):
    """An exchange being built (mutable until its status line and data are read); SASL fields serve AUTH."""

    __slots__ = ("arguments", "status", "status_text", "data")

    def __init__(self, index: int, command: str, arguments: str, t_sent: Any, bytes_up: int = 0) -> None:
        super().__init__(index, command, t_sent, bytes_up)
        self.arguments = arguments
        self.status: str | None = None
        self.status_text = ""
        self.data: bytearray | None = None  # multi-line payload being collected (stays empty without keep_payloads)

    def to_exchange(self, status: str | None, t_done: Any) -> Exchange:
        return new_exchange(PROTOCOL, self.index, None, self.command, self.arguments, status, self.status_text,
                            self.t_sent, self.t_first_response, t_done, self.bytes_up, self.bytes_down, (),
                            bytes(self.data) if self.data else b"", self.data is not None, self.missing)


class Pop3Parser(ParserBase):
    """Feed both directions of one POP3 session; read :class:`Greeting`, :class:`Exchange`, ... events.

    Speed: whole lines are cut with ``ByteStream.line``; multi-line data is scanned with ``bytes.find`` for the
    next line that starts with a dot (the end, or a stuffed line), never line by line, and without
    ``keep_payloads`` it is only counted. Runaway lines take the general ``read_line`` path.
    """

    protocol = PROTOCOL

    def __init__(self, max_line: int = MAX_LINE, keep_payloads: bool = True, spans: bool = False) -> None:
        super().__init__(max_line, keep_payloads, spans)
        self._fifo: deque[_Pending] = deque()
        self._multi: _Pending | None = None  # the exchange whose multi-line data is being read
        self._line_start = True  # in multi-line data: at the start of a line
        self._down_skip_target: _Pending | None = None
        # after a capture gap (see ParserBase.gap)
        self._up_drop = False  # drop client bytes to the next newline (the rest of a cut command line)
        self._lossy = False  # the multi-line data being read lost bytes: read it line by line
        self._after_gap = False  # ... and the next byte is the first after the gap
        self._resyncing = False  # no reply being read: looking for a status line or a "." line
        self._resync_line_start = False

    # -- client -------------------------------------------------------------------------------------------
    def _process_up(self) -> None:
        s = self._streams[UP]
        buf = s.buf
        while buf and not self._opaque:
            if self._up_drop:  # the rest of a command line a gap cut: it goes to that command
                i = buf.find(b"\n")
                n = s.skip(len(buf) if i < 0 else i + 1)
                if self._fifo:
                    self._fifo[-1].bytes_up += n
                else:
                    self.unattributed[UP] += n
                self._up_drop = i < 0
                continue
            # repeated in each line loop on purpose: a helper could not return or continue for this hot loop
            start = s.base
            line = s.line()
            if line is None:
                if not self._runaway_up(s):
                    return
                continue
            self._process_line_up(line, start)

    def _process_line_up(self, line: bytes, start: int) -> None:
        """One client line: a SASL response of a waiting AUTH, else a command."""
        if self._sasl_reply(self._fifo, "AUTH", line, start):
            return
        verb, _, args = _text(_strip_eol(line)).partition(" ")
        t = self._streams[UP].t_at(start)
        p = _Pending(self._next_index, verb.upper(), args, t, len(line))
        self._next_index += 1
        self._fifo.append(p)
        if not verb:
            self._warn(UP, t, "empty command line", start)
        if p.command in _SPAN_COMMANDS and args:
            self._command_spans(p, line, start)

    def _runaway_up(self, s) -> bool:
        """No whole line buffered: count a runaway line's pieces as unattributed; False when more bytes are needed."""
        seg = s.read_line()
        if seg is None:
            return False
        if seg.kind == "overflow":
            self._warn(UP, seg.t_start, f"client line longer than {s.max_line} bytes: cut and skipped", seg.start)
        self._unattributed(UP, seg, "runaway client line")
        return True

    # -- spans: where the credentials sit in the client stream ---------------------------------------------
    def _command_spans(self, p: _Pending, line: bytes, start: int) -> None:
        body = _strip_eol(line)
        pos = body.find(b" ") + 1
        if p.command in ("USER", "PASS"):  # the whole rest of the line: a password may hold spaces
            self._emit(Span(f"pop3-{p.command.lower()}", start + pos, start + len(body), p.index, "line"))
        elif p.command == "APOP":
            for tok in lex(body, pos):
                a = tok.start  # APOP has no quoting: a quote belongs to the name
                self._emit(Span("pop3-apop", start + a, start + tok.end, p.index, "atom"))
        else:  # AUTH mechanism [initial-response]
            self._sasl_start(p, body, lex(body, pos), start, "pop3-auth")

    def _tail_spans(self, data: bytes, start: int) -> None:
        p = next((x for x in self._fifo if x.sasl_turns > 0 and x.command == "AUTH"), None)
        if p is not None:
            self._sasl_span(p, data, start)
            return
        verb, _, args = _text(data).partition(" ")
        if verb.upper() in _SPAN_COMMANDS and args:
            self._command_spans(_Pending(-1, verb.upper(), args, None), data, start)

    # -- server -------------------------------------------------------------------------------------------
    def _process_down(self) -> None:
        s = self._streams[DOWN]
        buf = s.buf
        while buf and not self._opaque:
            if self._multi is not None:
                if not (self._read_multiline_lossy() if self._lossy else self._read_multiline()):
                    return
                continue
            if self._resyncing:
                if not self._resync_step(s):
                    return
                continue
            # repeated in each line loop on purpose: a helper could not return or continue for this hot loop
            start = s.base
            line = s.line()
            if line is None:
                if not self._runaway_down(s):
                    return
                continue
            end = start + len(line) - 1
            self._reply_line(new_segment(("line", line, start, s.t_at(start), s.t_at(end))))

    def _runaway_down(self, s) -> bool:
        """No whole line buffered: count a runaway line's pieces on the exchange it cut into (the first waiting
        when it began); False when more bytes are needed."""
        seg = s.read_line()
        if seg is None:
            return False
        if seg.kind == "overflow":
            self._down_skip_target = self._fifo[0] if self._fifo else None
            self._warn(DOWN, seg.t_start, f"server line longer than {s.max_line} bytes: cut and skipped", seg.start)
        self._add_down(self._down_skip_target, seg, "runaway server line")
        return True

    def _add_down(self, p: _Pending | None, seg: Segment, why: str) -> None:
        if p is None:
            self._unattributed(DOWN, seg, why)
            return
        p.bytes_down += len(seg.data)
        if p.t_first_response is None:
            p.t_first_response = seg.t_start

    def _reply_line(self, seg: Segment) -> None:
        line = seg.data
        status = _status_of(line)
        if not self._greeted:
            self._greeted = True
            if status is not None:
                text = _text(_strip_eol(line)[len(status) :].lstrip(b" "))
                self.greeting = Greeting(status, text, seg.t_start, len(line))
                self._emit(self.greeting)
                return
            self._warn(DOWN, seg.t_start, "the server's first line is not a greeting", seg.start)
        p = self._fifo[0] if self._fifo else None
        if p is None:
            self._unattributed(DOWN, seg, "reply with no command waiting")
            return
        self._add_down(p, seg, "")
        if status is None:
            if line.startswith(b"+"):
                self.continuations += 1
            if line.startswith(b"+") and p.command == "AUTH":
                p.sasl_turns += 1
            else:
                self._warn(DOWN, seg.t_start, f"unrecognized reply line {_text(line[:60])!r} to {p.command}", seg.start)
            return
        p.status = status
        p.status_text = _text(_strip_eol(line)[len(status) :].lstrip(b" "))
        p.sasl_turns = 0
        if status == "+OK" and is_multiline(p.command, p.arguments):
            p.data = bytearray()
            self._multi = p
            self._line_start = True
            return
        self._complete(p, seg.t_end)

    def _read_multiline(self) -> bool:
        """Consume multi-line data; True when the terminating line was read, False when more bytes are needed.

        One pass over the buffer: ``find`` jumps to each line that starts with a dot (the end line ``.``, or a
        stuffed line whose first dot is dropped); the data between is copied only with ``keep_payloads``.
        """
        s = self._streams[DOWN]
        p = self._multi
        buf = s.buf
        keep = self.keep_payloads
        data = p.data
        n = len(buf)
        pos = 0
        line_start = self._line_start
        end = -1  # offset just past the terminating line, once found
        while pos < n:
            if line_start and buf[pos] == 46:  # "."
                rest = n - pos
                if rest >= 2 and buf[pos + 1] == 10:
                    end = pos + 2
                    break
                if rest >= 3 and buf[pos + 1] == 13 and buf[pos + 2] == 10:
                    end = pos + 3
                    break
                if rest == 1 or (rest == 2 and buf[pos + 1] == 13):
                    break  # cannot tell the end line from a stuffed line yet
                pos += 1  # dot-unstuffing: drop one leading dot
                line_start = False
                continue
            i = buf.find(b"\n.", pos)
            if i < 0:
                if keep:
                    data += buf[pos:]
                line_start = buf[n - 1] == 10
                pos = n
                break
            i += 1
            if keep:
                data += buf[pos:i]
            pos = i
            line_start = True
        if end < 0:
            p.bytes_down += s.skip(pos)
            self._line_start = line_start
            return False
        t_end = s.t_at(s.base + end - 1)
        p.bytes_down += s.skip(end)
        self._multi = None
        self._complete(p, t_end)
        return True

    def _complete(self, p: _Pending, t_done: Any) -> None:
        self.completed += 1
        if self._fifo and self._fifo[0] is p:
            self._fifo.popleft()
        self._emit(p.to_exchange(p.status, t_done))
        if p.status == "+OK" and p.command == "STLS":
            self._go_opaque("tls", t_done, "STLS accepted")

    # -- capture gaps (ParserBase.gap) ---------------------------------------------------------------------
    def _gap(self, direction: str, nbytes: int, t: Any) -> None:
        s = self._streams[direction]
        if direction == UP:
            if len(s.buf):  # a command line was cut: what came before the gap still names the command
                start = s.base
                partial = s.take_bytes(len(s.buf))
                self._process_line_up(partial, start)
                p = self._fifo[-1] if self._fifo else None
                if p is not None:
                    p.missing += nbytes
                self._up_drop = True
                what = p.command if p is not None else "a client line"
                self._gap_warning(UP, t, nbytes, f"inside the command line of {what}",
                                  "the rest of the line goes to that command")
            else:
                self._gap_warning(UP, t, nbytes, "between client lines", "commands in it cannot be counted")
            return
        p = self._multi
        if p is not None:  # inside multi-line data (a RETR body): the reply still ends at its "." line
            p.bytes_down += s.skip(len(s.buf))  # at most the 1-2 bytes of a line that may be the end line
            p.missing += nbytes
            self._lossy = True
            self._after_gap = True
            self._gap_warning(DOWN, t, nbytes, f"inside the multi-line reply to {p.command}",
                              "the reply ends at its '.' line, or at the next status line when a later command "
                              "waits")
            return
        p = self._fifo[0] if self._fifo else None
        if p is not None:
            p.missing += nbytes
        self._resyncing = True
        self._resync_line_start = not len(s.buf)  # nothing half read: the gap began at a line start
        what = f"the reply to {p.command}" if p is not None else "server bytes with no command waiting"
        self._gap_warning(DOWN, t, nbytes, f"inside {what}",
                          "bytes up to the next status line (or '.' line) go to that command")

    def _resume(self, direction: str, t: Any) -> None:
        if direction == DOWN and self._multi is None:
            self._resyncing = True
            self._resync_line_start = True  # a capture starts at a segment: most likely a line start

    def _drop_down(self, n: int) -> None:
        """``n`` server bytes after a gap that no reply line can take: the waiting command's, else nobody's."""
        s = self._streams[DOWN]
        start = s.base
        s.skip(n)
        p = self._fifo[0] if self._fifo else None
        if p is None:
            self.unattributed[DOWN] += n
        else:
            p.bytes_down += n
            if p.t_first_response is None:
                p.t_first_response = s.t_at(start)

    def _resync_step(self, s) -> bool:
        """One step of looking for a line to resume at after a gap; False when more bytes are needed."""
        buf = s.buf
        if not self._resync_line_start:
            i = buf.find(b"\n")
            self._drop_down(len(buf) if i < 0 else i + 1)
            self._resync_line_start = i >= 0
            return i >= 0
        i = buf.find(b"\n", 0, s.max_line)
        if i < 0:
            if len(buf) < s.max_line:
                return False
            self._drop_down(len(buf))
            self._resync_line_start = False
            return True
        line = bytes(buf[:min(i + 1, 5)])
        if _status_of(line) is not None:
            self._resyncing = False  # a status line: read as normal
            return True
        end_line = line in (b".\r\n", b".\n")
        self._drop_down(i + 1)
        if end_line and self._fifo and is_multiline(self._fifo[0].command, self._fifo[0].arguments):
            # the end of multi-line data whose status line was lost: that reply ends here, status unknown
            p = self._fifo[0]
            self._resyncing = False
            self._complete(p, s.t_at(s.base - 1))
        return True

    def _read_multiline_lossy(self) -> bool:
        """``_read_multiline`` line by line for a reply that lost bytes: the position right after the gap is
        taken for a line start only if the end line, or a status line while a later command waits, is there;
        such a status line ends the reply (its end line was lost too). True when the reply ended, False when more bytes are needed."""
        s = self._streams[DOWN]
        p = self._multi
        keep = self.keep_payloads
        while True:
            buf = s.buf
            if self._after_gap:
                if len(buf) < 3 and buf.find(b"\n") < 0:
                    return False
                self._after_gap = False
                self._line_start = (buf[:3] == b".\r\n" or buf[:2] == b".\n"
                                    or (len(self._fifo) > 1 and _status_of(bytes(buf[:5])) is not None))
            i = buf.find(b"\n")
            if i < 0:
                if len(buf) < s.max_line:
                    return False
                i = len(buf) - 1
            line = buf[:i + 1]
            if self._line_start:
                if line in (b".\r\n", b".\n"):
                    p.bytes_down += s.skip(i + 1)
                    break
                if len(self._fifo) > 1 and _status_of(bytes(line[:5])) is not None:
                    break  # this answers the next command: the end line was lost
                if line[:1] == b".":
                    line = line[1:]
            if keep:
                p.data += line
            p.bytes_down += s.skip(i + 1)
            self._line_start = line.endswith(b"\n")
        t_end = s.t_at(s.base - 1)
        self._multi = None
        self._lossy = False
        self._complete(p, t_end)
        return True

    # -- end of stream ------------------------------------------------------------------------------------
    def _finish(self, t: Any) -> None:
        self._lossy = self._resyncing = False
        if self._multi is not None:
            self._warn(DOWN, t, f"stream ended inside the multi-line reply to {self._multi.command}")
        if self._fifo:
            self._warn(UP, t, f"stream ended with {len(self._fifo)} commands waiting for a complete reply")
        self._multi = None
        while self._fifo:
            p = self._fifo.popleft()
            self.completed += 1
            self._emit(p.to_exchange(None, None))

    def _settled(self) -> bool:
        return not self._fifo and self._multi is None
