"""A sans-IO IMAP parser: client and server bytes in, greetings and exchanges out (RFC 9051 / RFC 3501).

Why: live traces and reassembled pcaps must turn into the same list of exchanges, so that "a command", "its
bytes" and "its latency" mean one thing everywhere. No socket, no clock, no file: ``feed(direction, data, t)``
and read events, as h11 does for HTTP.

Rules (the whole state machine in one place):

Client side ("up")
  * Credentials come out as :class:`~mailstudy.protocol.events.Span` events with absolute offsets in the client
    stream: LOGIN's user and password (atom, quoted string's inside, or literal, with its marker's span),
    AUTHENTICATE's initial response and every SASL line (those the server asked for with ``+``). With
    ``spans=True`` the UID set of UID FETCH/STORE/COPY/MOVE/EXPUNGE too. Tokens come from :mod:`.imap_lexer`.
  * A line ``tag SP command [SP args]`` starts a command (an exchange). ``UID x`` is the command ``"UID X"``.
    A line ending in ``{n}`` (synchronizing), ``{n+}`` (LITERAL+) or ``~{n}`` (literal8) is followed by n literal
    bytes and then the rest of the command line; all of it is the command's ``bytes_up``; ``arguments`` shows the
    literals as written (``{n}``), never their content.
  * A synchronizing literal that the server refuses (tagged NO/BAD before any literal byte) is not sent: the
    client side goes back to expecting a command line.
  * AUTHENTICATE: every server continuation request (``+ ...``) for it allows one client line (a SASL response,
    or ``*`` to cancel); those lines belong to the AUTHENTICATE exchange and are not commands.
  * IDLE: the client's ``DONE`` line belongs to the outstanding IDLE exchange.
Server side ("down")
  * The first line is the greeting (``* OK``, ``* PREAUTH``, ``* BYE``).
  * An untagged response ``* ...`` may carry literals ``{n}\\r\\n<n bytes>`` (several per response); it ends at
    the first line end outside a literal. Its bytes and literal payloads go to the command it answers: an
    untagged ``FETCH`` to the oldest outstanding FETCH/STORE whose set holds it (UID commands: the response's
    ``UID`` item in the UID set; others: its sequence number in the sequence set); any other untagged response,
    or a FETCH no set holds, to the **oldest outstanding** exchange (the one sent first among those without a
    tagged status yet). With none outstanding they are unattributed (a warning says so).
  * A continuation request ``+ ...`` goes to the command that is waiting for one: the command whose line the
    client is still sending (synchronizing literal), else the oldest outstanding AUTHENTICATE, else the oldest
    outstanding IDLE, else the oldest outstanding exchange.
  * A tagged status line ``tag OK|NO|BAD text`` completes the outstanding exchange with that tag, in whatever
    order tags complete (pipelining). Exchanges are emitted when complete; ``index`` gives the order sent.
  * STARTTLS answered OK: an :class:`Encrypted` event follows its exchange, then bytes are only counted
    (``parser.tls``). COMPRESS answered OK likewise (mode "compress", no TLS records). Bytes that start with a
    TLS record header (0x16 0x03) in either direction are implicit TLS (IMAPS).
Bookkeeping
  * Every byte fed ends in exactly one place: the greeting, an exchange, ``parser.unattributed`` or
    ``parser.tls``; ``parser.total`` is what was fed. Nothing raises: bad input gives ParseWarnings.
"""

from __future__ import annotations

import re
from typing import Any

from mailstudy.protocol._stream import (
    MAX_LINE,
    ParserBase,
    PendingBase,
    Segment,
    new_exchange,
    redact_by,
    strip_eol,
    text_of,
)
from mailstudy.protocol.events import DOWN, UP, Exchange, Greeting, Span
from mailstudy.protocol.imap_lexer import lex, literal_marker

PROTOCOL = "imap"

_SPAN_COMMANDS = {"LOGIN", "AUTHENTICATE"}
_REDACT = {"LOGIN": "words", "AUTHENTICATE": "sasl"}  # how redacted_arguments hides each one's credentials
_UID_SET_COMMANDS = {"UID FETCH", "UID STORE", "UID COPY", "UID MOVE", "UID EXPUNGE"}
_FETCH_ANSWERING = {"FETCH", "STORE", "UID FETCH", "UID STORE"}  # commands whose answers are untagged FETCHes
_FETCH_HEAD = re.compile(rb"\* (\d+) FETCH \(", re.IGNORECASE)
_FETCH_UID = re.compile(rb"[( ]UID (\d+)", re.IGNORECASE)
_TAGGED = re.compile(rb"([^ \r\n]+) (OK|NO|BAD)(?: (.*?))?\r?\n\Z", re.IGNORECASE | re.DOTALL)
_GREETING = re.compile(rb"\* (OK|PREAUTH|BYE)(?: (.*?))?\r?\n\Z", re.IGNORECASE | re.DOTALL)

_text, _strip_eol = text_of, strip_eol  # short local names for the hot paths


def redacted_arguments(command: str, arguments: str) -> str:
    """``arguments`` with credentials replaced by ``***``: LOGIN user and password, AUTHENTICATE initial response."""
    return redact_by(_REDACT, command, arguments)


class _Pending(PendingBase):
    """An exchange being built (mutable until its tagged status arrives); SASL fields serve AUTHENTICATE."""

    __slots__ = ("tag", "args", "literals", "done", "idle_done", "astrings", "ranges")

    def __init__(self, index: int, tag: str, command: str, args: list[str], t_sent: Any, bytes_up: int = 0) -> None:
        super().__init__(index, command, t_sent, bytes_up)
        self.tag = tag
        self.args = args
        self.literals: list[bytes] = []
        self.done = False
        self.idle_done = False  # IDLE: the client has sent DONE
        self.astrings = 0  # LOGIN: arguments seen so far (0: the user comes next, then the password)
        self.ranges: list[tuple[int, float]] | None = None  # FETCH/STORE: the message set, parsed when needed

    def to_exchange(self, status: str | None, status_text: str, t_done: Any, keep_payloads: bool = True) -> Exchange:
        return new_exchange(PROTOCOL, self.index, self.tag, self.command, "".join(self.args), status, status_text,
                            self.t_sent, self.t_first_response, t_done, self.bytes_up, self.bytes_down,
                            tuple(self.literals) if keep_payloads else (), missing=self.missing)


class _Response:
    """A server response being read: its first line, byte count and literal payloads."""

    __slots__ = ("start", "t_start", "first", "nbytes", "literals", "junk", "missing")

    def __init__(self, start: int, t_start: Any) -> None:
        self.start = start
        self.t_start = t_start
        self.first = b""
        self.nbytes = 0
        self.literals: list[bytes] = []  # with keep_payloads False: one b"" per literal
        self.junk = False  # had a runaway line
        self.missing = 0  # bytes of it a capture gap lost


class ImapParser(ParserBase):
    """Feed both directions of one IMAP session; read :class:`Greeting`, :class:`Exchange`, ... events.

    Speed: whole lines are cut with ``ByteStream.line`` (no Segment, no time lookups but the ones an exchange
    keeps) and literals are consumed by count, so a 1 MB FETCH literal costs one slice, or none without
    ``keep_payloads``. Runaway lines take the general ``read_line`` path.
    """

    protocol = PROTOCOL

    def __init__(self, max_line: int = MAX_LINE, keep_payloads: bool = True, spans: bool = False) -> None:
        super().__init__(max_line, keep_payloads, spans)
        self._outstanding: list[_Pending] = []
        # client side
        self._cur: _Pending | None = None  # command whose line continues after a literal
        self._up_literal = 0  # literal bytes still to come from the client
        self._up_literal_sync = False
        self._up_literal_size = 0
        self._up_skip_target: _Pending | None = None
        self._up_secret: tuple[str, int, tuple[int, int]] | None = None  # the coming literal is a credential
        # server side
        self._resp: _Response | None = None
        self._down_literal = 0
        self._down_literal_buf = bytearray()
        # after a capture gap (see ParserBase.gap)
        self._up_drop: _Pending | None | bool = False  # drop client bytes to the next newline (to this command)
        self._resyncing = False  # server side: looking for a line to resume at
        self._resync_line_start = False  # ... and at the start of a line
        self._gap_target: _Pending | None = None  # the command the cut response belongs to

    # -- client -------------------------------------------------------------------------------------------
    def _add_up(self, p: _Pending | None, seg: Segment, why: str) -> None:
        if p is None or p.done:
            self._unattributed(UP, seg, why if p is None else f"client bytes after tag {p.tag} was completed")
        else:
            p.bytes_up += len(seg.data)

    def _add_up_at(self, p: _Pending | None, nbytes: int, start: int, why: str) -> None:
        if p is None or p.done:
            self._unattributed_at(UP, nbytes, start,
                                  why if p is None else f"client bytes after tag {p.tag} was completed")
        else:
            p.bytes_up += nbytes

    def _process_up(self) -> None:
        s = self._streams[UP]
        buf = s.buf
        while buf and not self._opaque:
            if self._up_drop is not False:  # the rest of a line a gap cut: it goes to the command it belongs to
                start = s.base
                i = buf.find(b"\n")
                n = s.skip(len(buf) if i < 0 else i + 1)
                target = self._up_drop if isinstance(self._up_drop, _Pending) else None
                self._add_up_at(target, n, start, "the rest of a client line cut by a capture gap")
                if i >= 0:
                    self._up_drop = False
                continue
            if self._up_literal:
                start = s.base
                if self._up_secret is not None:  # its first byte: the client does send it
                    kind, index, marker = self._up_secret
                    self._up_secret = None
                    self._emit(Span(kind, start, start + self._up_literal, index, "literal", marker))
                n = s.skip(self._up_literal)
                self._up_literal -= n
                self._add_up_at(self._cur, n, start, "literal of an unknown command")
                continue
            # repeated in each line loop on purpose: a helper could not return or continue for this hot loop
            start = s.base
            line = s.line()
            if line is None:
                if not self._runaway_up(s):
                    return
                continue
            if self._cur is not None:
                self._command_continues(self._cur, line, start)
            else:
                self._client_line(line, start)

    def _runaway_up(self, s) -> bool:
        """No whole line buffered: handle a runaway line's pieces; False when more bytes are needed."""
        seg = s.read_line()
        if seg is None:
            return False
        if seg.kind == "overflow":
            self._up_skip_target = self._cur
            self._add_up(self._cur, seg, "runaway client line")
            self._warn(UP, seg.t_start, f"client line longer than {s.max_line} bytes: cut and skipped", seg.start)
        elif seg.kind == "skip":
            self._add_up(self._up_skip_target, seg, "runaway client line")
            if seg.ends_line and self._cur is not None and self._up_skip_target is self._cur:
                self._cur = None
        return True

    def _client_line(self, line: bytes, start: int) -> None:
        if self._sasl_reply(self._outstanding, "AUTHENTICATE", line, start):
            return
        bare = line.strip()  # also drops the line end
        if len(bare) == 4 and bare.upper() == b"DONE":
            for p in self._outstanding:
                if p.command == "IDLE" and not p.idle_done:
                    p.idle_done = True
                    p.bytes_up += len(line)
                    return
        body = _strip_eol(line)
        m = literal_marker(line)
        tag, _, rest = body.partition(b" ")
        if not tag:
            self._unattributed_at(UP, len(line), start, "empty or untagged client line")
            return
        verb, _, args = rest.partition(b" ")
        command = _text(verb).upper()
        if command == "UID" and args:
            sub, _, args = args.partition(b" ")
            command = f"UID {_text(sub).upper()}"
        t = self._streams[UP].t_at(start)
        p = _Pending(self._next_index, _text(tag), command, [_text(args)], t, len(line))
        self._next_index += 1
        self._outstanding.append(p)
        if not verb:
            self._warn(UP, t, f"client line with tag {p.tag!r} but no command", start)
        if command in _SPAN_COMMANDS or (self.spans and command in _UID_SET_COMMANDS):
            self._command_spans(p, line, start, len(body) - len(args))
        self._after_client_segment(p, m)

    def _command_continues(self, p: _Pending, line: bytes, start: int) -> None:
        self._add_up_at(p, len(line), start, "continuation of an unknown command")
        if not p.done:
            p.args.append(_text(_strip_eol(line)))
            if p.command == "LOGIN":
                self._login_spans(p, line, start, 0)
        self._after_client_segment(p, literal_marker(line))

    def _after_client_segment(self, p: _Pending, m: re.Match | None) -> None:
        if m is None:
            self._cur = None
            return
        self._cur = p
        self._up_literal = self._up_literal_size = int(m.group(2))
        self._up_literal_sync = not m.group(3)

    # -- spans: where the credentials and UID sets sit in the client stream --------------------------------
    def _command_spans(self, p: _Pending, line: bytes, start: int, pos: int) -> None:
        """Spans of a command's first line; ``pos``: where its arguments start in ``line``."""
        if p.command == "LOGIN":
            self._login_spans(p, line, start, pos)
            return
        body = _strip_eol(line)
        toks = lex(body, pos)
        if p.command == "AUTHENTICATE":
            self._sasl_start(p, body, toks, start, "imap-authenticate")
        elif toks and toks[0].kind == "atom":  # UID FETCH|STORE|... <set>
            self._emit(Span("uid-set", start + toks[0].start, start + toks[0].end, p.index, "atom"))

    def _login_spans(self, p: _Pending, line: bytes, start: int, pos: int) -> None:
        """LOGIN's astrings in ``line[pos:]``: the first is the user, every later one the password."""
        m = literal_marker(line)
        for tok in lex(line, pos, m.start() if m else len(_strip_eol(line))):
            a, b = tok.inner
            kind = "imap-login-user" if p.astrings == 0 else "imap-login-password"
            self._emit(Span(kind, start + a, start + b, p.index, tok.kind))
            p.astrings += 1
        if m is not None:
            kind = "imap-login-user" if p.astrings == 0 else "imap-login-password"
            self._up_secret = (kind, p.index, (start + m.start(), start + m.end(3) + 1))
            p.astrings += 1

    def _tail_spans(self, data: bytes, start: int) -> None:
        """The stream ended inside a client line (a capture cut short): it may still hold a credential."""
        if self._up_literal:
            return
        if self._cur is not None:
            if self._cur.command == "LOGIN" and not self._cur.done:
                self._login_spans(self._cur, data, start, 0)
            return
        p = next((x for x in self._outstanding if x.sasl_turns > 0 and x.command == "AUTHENTICATE"), None)
        if p is not None:
            self._sasl_span(p, data, start)
            return
        tag, _, rest = data.partition(b" ")
        verb, _, args = rest.partition(b" ")
        command = _text(verb).upper()
        if tag and command in _SPAN_COMMANDS:
            self._command_spans(_Pending(-1, _text(tag), command, [], None), data, start,
                                len(data) - len(args))

    # -- server -------------------------------------------------------------------------------------------
    def _process_down(self) -> None:
        s = self._streams[DOWN]
        buf = s.buf
        keep = self.keep_payloads
        while buf and not self._opaque:
            if self._resyncing:
                if not self._resync_step(s):
                    return
                continue
            if self._down_literal:
                resp = self._resp
                want = self._down_literal
                if keep:
                    data = s.take_bytes(want)
                    n = len(data)
                    if n == want and not self._down_literal_buf:
                        resp.literals.append(data)  # the whole literal at once: no second copy
                    else:
                        self._down_literal_buf += data
                        if n == want:
                            resp.literals.append(bytes(self._down_literal_buf))
                            self._down_literal_buf.clear()
                else:
                    n = s.skip(want)
                    if n == want:
                        resp.literals.append(b"")
                self._down_literal = want - n
                resp.nbytes += n
                continue
            # repeated in each line loop on purpose: a helper could not return or continue for this hot loop
            start = s.base
            line = s.line()
            if line is None:
                if not self._runaway_down(s):
                    return
                continue
            resp = self._resp
            if resp is None:
                resp = self._resp = _Response(start, s.t_at(start))
            resp.nbytes += len(line)
            if not resp.first:
                resp.first = line
            if b"}" in line[-3:] and not resp.junk and resp.first[:1] == b"*":
                m = literal_marker(line)
                if m is not None:
                    self._down_literal = int(m.group(2))
                    if not self._down_literal:
                        resp.literals.append(b"")
                    continue
            self._finish_response(s.t_at(start + len(line) - 1))

    def _runaway_down(self, s) -> bool:
        """No whole line buffered: handle a runaway line's pieces; False when more bytes are needed."""
        seg = s.read_line()
        if seg is None:
            return False
        if self._resp is None:
            self._resp = _Response(seg.start, seg.t_start)
        resp = self._resp
        resp.nbytes += len(seg.data)
        if seg.kind == "overflow":
            resp.junk = True
            self._warn(DOWN, seg.t_start, f"server line longer than {s.max_line} bytes: cut and skipped", seg.start)
            if not resp.first:
                resp.first = seg.data[:64]
        elif seg.kind == "skip":
            if seg.ends_line:
                self._finish_response(seg.t_end)
        return True

    def _finish_response(self, t_end: Any) -> None:
        resp, self._resp = self._resp, None
        first = resp.first
        if not self._greeted:
            self._greeted = True
            m = _GREETING.match(first) if not resp.literals and not resp.junk else None
            if m is not None:
                self.greeting = Greeting(_text(m.group(1)).upper(), _text(m.group(2) or b""), resp.t_start, resp.nbytes)
                self._emit(self.greeting)
                return
            self._warn(DOWN, resp.t_start, "the server's first line is not a greeting", resp.start)
        if resp.junk:
            self._attribute(self._oldest(), resp, "runaway server line")
            return
        c = first[:1]
        if c == b"*":
            outstanding = self._outstanding
            target = (outstanding[0] if len(outstanding) == 1 else self._fetch_target(first) if outstanding
                      else None)
            self._attribute(target, resp, "untagged response with no command outstanding")
            return
        if c == b"+":
            self.continuations += 1
            target = self._continuation_target()
            if target is not None and target.command == "AUTHENTICATE" and target is not self._cur:
                target.sasl_turns += 1
            self._attribute(target, resp, "continuation request with no command outstanding")
            return
        m = _TAGGED.match(first)
        if m is None:
            self._warn(DOWN, resp.t_start, f"unrecognized server line {_text(first[:60])!r}", resp.start)
            self._attribute(self._oldest(), resp, "unrecognized server line with no command outstanding")
            return
        tag = _text(m.group(1))
        for p in self._outstanding:
            if p.tag == tag:
                break
        else:
            self._attribute(None, resp, f"tagged status for tag {tag!r} that is not outstanding")
            return
        self._attribute(p, resp, "")
        self._complete(p, _text(m.group(2)).upper(), _text(m.group(3) or b""), t_end)

    def _attribute(self, p: _Pending | None, resp: _Response, why: str) -> None:
        if p is None:
            self.unattributed[DOWN] += resp.nbytes
            self._warn(DOWN, resp.t_start, f"{resp.nbytes} bytes not attributed: {why}", resp.start)
            return
        p.bytes_down += resp.nbytes
        p.missing += resp.missing
        if resp.literals:
            p.literals.extend(resp.literals)
        if p.t_first_response is None:
            p.t_first_response = resp.t_start

    def _oldest(self) -> _Pending | None:
        return self._outstanding[0] if self._outstanding else None

    def _fetch_target(self, first: bytes) -> _Pending:
        """With several commands in flight: an untagged FETCH goes to the oldest FETCH/STORE whose UID set (UID
        commands, by the response's UID item) or sequence set holds it; anything else to the oldest command."""
        m = _FETCH_HEAD.match(first)
        if m is not None:
            seq = int(m.group(1))
            u = _FETCH_UID.search(first, m.end() - 1)
            uid = int(u.group(1)) if u is not None else None
            for p in self._outstanding:
                if p.command in _FETCH_ANSWERING:
                    n = uid if p.command[:4] == "UID " else seq
                    if n is not None and _in_set(p, n):
                        return p
        return self._outstanding[0]

    def _continuation_target(self) -> _Pending | None:
        if self._cur is not None and not self._cur.done:
            return self._cur
        for command in ("AUTHENTICATE", "IDLE"):
            p = next((x for x in self._outstanding if x.command == command), None)
            if p is not None:
                return p
        return self._oldest()

    def _complete(self, p: _Pending, status: str, text: str, t_done: Any) -> None:
        p.done = True
        self.completed += 1
        self._outstanding.remove(p)
        if p is self._cur and self._up_literal:
            if self._up_literal_sync and self._up_literal == self._up_literal_size:
                # refused synchronizing literal: the client will not send it
                self._cur = None
                self._up_literal = 0
                self._up_secret = None
        self._emit(p.to_exchange(status, text, t_done, self.keep_payloads))
        if status == "OK" and p.command == "STARTTLS":
            self._go_opaque("tls", t_done, "STARTTLS accepted")
        elif status == "OK" and p.command == "COMPRESS":
            self._go_opaque("compress", t_done, "COMPRESS accepted: the rest is compressed and only counted")

    # -- capture gaps (ParserBase.gap) ---------------------------------------------------------------------
    def _gap(self, direction: str, nbytes: int, t: Any) -> None:
        if direction == UP:
            self._gap_up(nbytes, t)
        else:
            self._gap_down(nbytes, t)

    def _gap_up(self, nbytes: int, t: Any) -> None:
        s = self._streams[UP]
        if self._up_literal:  # inside a client literal (APPEND, a LOGIN literal): its length still holds
            p = self._cur
            self._up_secret = None  # its offsets no longer hold; redaction warns about gaps itself
            lost = min(nbytes, self._up_literal)
            self._up_literal -= lost
            if p is not None:
                p.missing += nbytes
            what = f"{p.command} (tag {p.tag})" if p is not None else "an unknown command"
            if lost == nbytes:
                self._gap_warning(UP, t, nbytes, f"inside a client literal of {what}",
                                  "skipped: the literal still ends where its length says")
                return
            self._up_drop = p if p is not None else True
            self._gap_warning(UP, t, nbytes, f"at the end of a client literal of {what}",
                              "the rest of its line is dropped")
            return
        if len(s.buf):  # a command line was cut: what came before the gap still names its tag and command
            start = s.base
            partial = s.take_bytes(len(s.buf))
            if self._cur is not None:
                self._command_continues(self._cur, partial, start)
                p = self._cur
            else:
                self._client_line(partial, start)
                p = self._outstanding[-1] if self._outstanding else None
            self._cur = None
            self._up_literal = 0
            self._up_secret = None
            if p is not None:
                p.missing += nbytes
            self._up_drop = p if p is not None else True
            what = f"{p.command} (tag {p.tag})" if p is not None else "a client line"
            self._gap_warning(UP, t, nbytes, f"inside the command line of {what}",
                              "the rest of the line goes to that command")
            return
        # between two command lines: whole commands were lost (their replies will name tags never seen)
        self._gap_warning(UP, t, nbytes, "between client lines", "commands in it cannot be counted")

    def _gap_down(self, nbytes: int, t: Any) -> None:
        s = self._streams[DOWN]
        resp = self._resp
        target = self._response_target(resp)
        what = f"{target.command} (tag {target.tag})" if target is not None else "no command"
        if self._down_literal and resp is not None:  # the common case: a hole in a big FETCH literal
            lost = min(nbytes, self._down_literal)
            self._down_literal -= lost
            resp.missing += nbytes
            if not self._down_literal:
                resp.literals.append(bytes(self._down_literal_buf) if self.keep_payloads else b"")
                self._down_literal_buf.clear()
            if lost == nbytes:
                self._gap_warning(DOWN, t, nbytes, f"inside a literal of the response to {what}",
                                  "skipped: the literal still ends where its length says")
                return
        else:
            if resp is None:
                resp = self._resp = _Response(s.base, t)
            resp.missing += nbytes
        # somewhere we cannot place: look for a line to resume at
        self._resyncing = True
        self._resync_line_start = not len(s.buf)  # nothing half read: the gap began at a line start
        self._gap_target = target
        self._gap_warning(DOWN, t, nbytes, f"inside the response to {what}",
                          "bytes up to the next tagged status or untagged FETCH go to that command")

    def _resume(self, direction: str, t: Any) -> None:
        if direction == DOWN and self._resp is None and not self._down_literal:
            self._resp = _Response(self._streams[DOWN].base, t)
            self._resyncing = True
            self._resync_line_start = True  # a capture starts at a segment: most likely a line start
            self._gap_target = None

    def _response_target(self, resp: _Response | None) -> _Pending | None:
        """The command a response being read belongs to (its first line says), else the oldest outstanding."""
        if resp is not None and resp.first[:1] == b"*" and self._outstanding:
            return self._outstanding[0] if len(self._outstanding) == 1 else self._fetch_target(resp.first)
        return self._oldest()

    def _resync_step(self, s) -> bool:
        """One step of looking for a line to resume at after a gap; False when more bytes are needed."""
        buf = s.buf
        resp = self._resp
        if not self._resync_line_start:
            i = buf.find(b"\n")
            resp.nbytes += s.skip(len(buf) if i < 0 else i + 1)
            self._resync_line_start = i >= 0
            return i >= 0
        i = buf.find(b"\n", 0, s.max_line)
        if i < 0:
            if len(buf) < s.max_line:
                return False
            resp.nbytes += s.skip(len(buf))
            self._resync_line_start = False
            return True
        line = bytes(buf[:i + 1])
        m = _TAGGED.match(line)
        tagged = None
        if m is not None:
            tag = _text(m.group(1))
            tagged = next((p for p in self._outstanding if p.tag == tag), None)
        if tagged is None and _FETCH_HEAD.match(line) is None:
            resp.nbytes += s.skip(i + 1)
            return True
        # resume here: the cut response ends before this line, which is read as normal
        self._resyncing = False
        self._resp = None
        self._greeted = True
        target, self._gap_target = self._gap_target, None
        if target is not None and target.done:
            target = None
        self._attribute(target, resp, "server bytes before the first line recognized after a capture gap "
                                      "(or the capture's start)")
        if target is not None and tagged is not None and tagged is not target and target.index < tagged.index:
            self._complete(target, None, "", None)  # its own status line was lost in the gap
        return True

    # -- end of stream ------------------------------------------------------------------------------------
    def _finish(self, t: Any) -> None:
        if self._resyncing and self._resp is not None and not self._opaque:
            self._resyncing = False
            resp, self._resp = self._resp, None
            target, self._gap_target = self._gap_target, None
            self._attribute(target if target is not None and not target.done else None, resp,
                            "bytes after a capture gap with no command outstanding")
        if self._resp is not None and not self._opaque:
            resp = self._resp
            if self._down_literal_buf:
                resp.literals.append(bytes(self._down_literal_buf))
                self._down_literal_buf.clear()
            self._warn(DOWN, t, "stream ended inside a server response", resp.start)
            self._resp = None
            self._attribute(self._oldest(), resp, "incomplete server response")
        elif self._resp is not None:  # cut where the rest became opaque (TLS from the client's first bytes): its
            resp, self._resp = self._resp, None  # bytes were read, so they still count (they were lost before)
            self._attribute(self._oldest(), resp, "server response cut short where the streams became opaque")
        if self._up_literal and not self._opaque:
            self._warn(UP, t, f"stream ended with {self._up_literal} bytes of a client literal missing")
        if self._cur is not None and len(self._streams[UP]) and not self._opaque:
            seg = self._streams[UP].take_all()
            self._add_up(self._cur, seg, "incomplete command line")
        if self._outstanding:
            tags = ", ".join(p.tag for p in self._outstanding[:10])
            self._warn(UP, t, f"stream ended with {len(self._outstanding)} commands outstanding ({tags})")
        for p in list(self._outstanding):
            p.done = True
            self.completed += 1
            self._emit(p.to_exchange(None, "", None, self.keep_payloads))
        self._outstanding.clear()

    def _settled(self) -> bool:
        return (not self._outstanding and self._resp is None and not self._down_literal and self._cur is None
                and not self._resyncing)


def _in_set(p: _Pending, n: int) -> bool:
    """Whether message ``n`` is in the sequence set or UID set that is ``p``'s first argument (``*``: any)."""
    if p.ranges is None:
        words = "".join(p.args).split(" ", 1)
        p.ranges = []
        for part in words[0].split(","):
            lo, _, hi = part.partition(":")
            try:
                a = float("inf") if lo == "*" else int(lo)
                b = a if not hi else float("inf") if hi == "*" else int(hi)
            except ValueError:
                continue
            p.ranges.append((min(a, b), max(a, b)))
    return any(a <= n <= b for a, b in p.ranges)
