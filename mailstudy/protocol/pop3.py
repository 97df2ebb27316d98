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
from dataclasses import dataclass
from typing import Any

from mailstudy.protocol._stream import MAX_LINE, ParserBase, Segment
from mailstudy.protocol.events import DOWN, UP, Exchange, Greeting

PROTOCOL = "pop3"

_ALWAYS_MULTILINE = {"CAPA", "TOP", "RETR"}
_MULTILINE_WITHOUT_ARGS = {"LIST", "UIDL", "AUTH"}


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(b"\n") else line


def is_multiline(command: str, arguments: str) -> bool:
    """Whether a +OK reply to this command carries multi-line data."""
    command = command.upper()
    if command in _ALWAYS_MULTILINE:
        return True
    return command in _MULTILINE_WITHOUT_ARGS and not arguments.strip()


def redacted_arguments(command: str, arguments: str) -> str:
    """``arguments`` with credentials replaced by ``***``: USER, PASS, APOP, AUTH initial response."""
    cmd = command.upper()
    if cmd in ("USER", "PASS"):
        return "***" if arguments else arguments
    if cmd == "APOP":
        return "*** ***" if arguments.strip() else arguments
    if cmd == "AUTH":
        mech, sep, _initial = arguments.strip().partition(" ")
        return f"{mech} ***" if sep else arguments
    return arguments


def _status_of(line: bytes) -> str | None:
    head = line[:4].upper()
    if head.startswith(b"+OK") and (len(line) == 3 or line[3:4] in (b" ", b"\r", b"\n", b"\t")):
        return "+OK"
    if head == b"-ERR":
        return "-ERR"
    return None


@dataclass
class _Pending:
    index: int
    command: str
    arguments: str
    t_sent: Any
    bytes_up: int = 0
    bytes_down: int = 0
    t_first_response: Any = None
    status: str | None = None
    status_text: str = ""
    data: bytearray | None = None  # multi-line payload being collected
    sasl_turns: int = 0  # AUTH: challenges not yet answered by a client line

    def to_exchange(self, status: str | None, t_done: Any) -> Exchange:
        return Exchange(
            protocol=PROTOCOL,
            index=self.index,
            tag=None,
            command=self.command,
            arguments=self.arguments,
            status=status,
            status_text=self.status_text,
            t_sent=self.t_sent,
            t_first_response=self.t_first_response,
            t_done=t_done,
            bytes_up=self.bytes_up,
            bytes_down=self.bytes_down,
            data=bytes(self.data) if self.data is not None else b"",
            multiline=self.data is not None,
        )


class Pop3Parser(ParserBase):
    """Feed both directions of one POP3 session; read :class:`Greeting`, :class:`Exchange`, ... events."""

    protocol = PROTOCOL

    def __init__(self, max_line: int = MAX_LINE) -> None:
        super().__init__(max_line)
        self.greeting: Greeting | None = None
        self._greeted = False
        self._fifo: deque[_Pending] = deque()
        self._next_index = 0
        self._multi: _Pending | None = None  # the exchange whose multi-line data is being read
        self._line_start = True  # in multi-line data: at the start of a line
        self._down_skip_target: _Pending | None = None

    def _process(self, direction: str) -> None:
        if direction == UP:
            self._process_up()
        else:
            self._process_down()

    # -- client -------------------------------------------------------------------------------------------
    def _process_up(self) -> None:
        s = self._streams[UP]
        while len(s) and not self._opaque:
            seg = s.read_line()
            if seg is None:
                return
            if seg.kind == "overflow":
                self._warn(UP, seg.t_start, f"client line longer than {s.max_line} bytes: cut and skipped", seg.start)
                self._unattributed(UP, seg, "runaway client line")
                continue
            if seg.kind == "skip":
                self._unattributed(UP, seg, "runaway client line")
                continue
            auth = next((p for p in self._fifo if p.command == "AUTH" and p.sasl_turns > 0), None)
            if auth is not None:
                auth.sasl_turns -= 1
                auth.bytes_up += len(seg.data)
                continue
            verb, _, args = _text(_strip_eol(seg.data)).partition(" ")
            p = _Pending(self._next_index, verb.upper(), args, seg.t_start, bytes_up=len(seg.data))
            self._next_index += 1
            self._fifo.append(p)
            if not verb:
                self._warn(UP, seg.t_start, "empty command line", seg.start)

    # -- server -------------------------------------------------------------------------------------------
    def _process_down(self) -> None:
        s = self._streams[DOWN]
        while len(s) and not self._opaque:
            if self._multi is not None:
                if not self._read_multiline():
                    return
                continue
            seg = s.read_line()
            if seg is None:
                return
            if seg.kind != "line":
                if seg.kind == "overflow":
                    self._down_skip_target = self._fifo[0] if self._fifo else None
                    message = f"server line longer than {s.max_line} bytes: cut and skipped"
                    self._warn(DOWN, seg.t_start, message, seg.start)
                self._add_down(self._down_skip_target, seg, "runaway server line")
                continue
            self._reply_line(seg)

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
        """Consume multi-line data; True when the terminating line was read, False when more bytes are needed."""
        s = self._streams[DOWN]
        p = self._multi
        while len(s):
            if self._line_start and s.peek(1) == b".":
                head = s.peek(3)
                if head == b".\r\n" or head[:2] == b".\n":
                    seg = s.take(3 if head == b".\r\n" else 2)
                    p.bytes_down += len(seg.data)
                    self._multi = None
                    self._complete(p, seg.t_end)
                    return True
                if head in (b".", b".\r"):
                    return False  # cannot tell the end line from a stuffed line yet
                p.bytes_down += len(s.take(1).data)  # dot-unstuffing: drop one leading dot
                self._line_start = False
                continue
            # plain data up to the next line that starts with a dot (or all that is buffered)
            i = s.find(b"\n.")
            seg = s.take(i + 1 if i >= 0 else len(s))
            p.data += seg.data
            p.bytes_down += len(seg.data)
            self._line_start = seg.data.endswith(b"\n")
        return False

    def _complete(self, p: _Pending, t_done: Any) -> None:
        if self._fifo and self._fifo[0] is p:
            self._fifo.popleft()
        self._emit(p.to_exchange(p.status, t_done))
        if p.status == "+OK" and p.command == "STLS":
            self._go_opaque("tls", t_done, "STLS accepted")

    # -- end of stream ------------------------------------------------------------------------------------
    def _finish(self, t: Any) -> None:
        if self._multi is not None:
            self._warn(DOWN, t, f"stream ended inside the multi-line reply to {self._multi.command}")
        if self._fifo:
            self._warn(UP, t, f"stream ended with {len(self._fifo)} commands waiting for a complete reply")
        self._multi = None
        while self._fifo:
            p = self._fifo.popleft()
            self._emit(p.to_exchange(None, None))
