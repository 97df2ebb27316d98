"""JMAP (RFC 8620) sessions as exchanges: HTTP/1.1 requests and their responses, with the method calls they carry.

Why: a JMAP session is measured by the same definitions as an IMAP or POP3 one (docs/design.md, "Words"): an
exchange is a command with its complete response, and here the command is one HTTP request. The live client's
trace and a capture of its connection both go through this parser, so both give the same exchanges, bytes and
times, and the explorer shows a JMAP session as it shows an IMAP one.

What an exchange holds: ``command`` is the HTTP method (``GET``, ``POST``); ``arguments`` the request target and,
for a JMAP API request (a JSON body with ``methodCalls``), the method names joined by ``+``
(``/jmap/ Email/query+Email/get``); ``status`` is ``OK`` for a 1xx-3xx final status and ``NO`` otherwise, or when
the JMAP response holds a method ``error`` (then ``status_text`` names the method and the error type);
``status_text`` begins with the HTTP status code and reason. ``bytes_up``/``bytes_down`` are the whole request and
response, head and body, as they crossed the connection (a gzip body is counted compressed and decoded only to
read its method responses). Requests may be pipelined: responses are paired with requests in order (RFC 9112
section 9.3.2).

HTTP/1.1 framing (RFC 9112 section 6.3), the rules used here: a response to HEAD, a 1xx, 204 or 304 has no body;
``Transfer-Encoding: chunked`` is read chunk by chunk; else ``Content-Length``; else the body runs to the close
of the connection (Cyrus's ``text/event-stream``). A request body is chunked or ``Content-Length`` or empty.
``101 Switching Protocols`` ends parsing: what follows is counted as opaque bytes.

Hand-written, not h11 (the sans-IO HTTP library this package's parsers are modelled on): h11 reports events but
not the byte offsets where each begins and ends, and per-exchange byte counts and first/last-byte times are what
the study measures.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

from mailstudy.protocol._stream import ParserBase, new_exchange
from mailstudy.protocol.events import DOWN, UP

MAX_HEAD = 64 * 1024  # bytes of a request or response head (line and fields) before it is called broken
MAX_JSON = 64 * 1024 * 1024  # bytes of a JSON body kept to read its method names (larger: counted, not read)
HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ")


def looks_like_http(client_start: bytes, server_start: bytes) -> bool:
    """Whether a connection's first client bytes begin an HTTP request and the server's first line is an HTTP
    status line (what :mod:`mailstudy.protocol.classify` uses to tell a JMAP connection)."""
    return server_start.startswith(b"HTTP/1.") and any(m.startswith(client_start[:len(m)]) or
                                                       client_start.startswith(m) for m in HTTP_METHODS)


def _fields(head: bytes) -> tuple[bytes, dict[str, str]]:
    """(first line, lower-case field name -> value; repeated fields joined by ``, ``) of a message head."""
    lines = head.split(b"\r\n")
    out: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            key = name.strip().lower().decode("latin-1")
            val = value.strip().decode("latin-1")
            out[key] = f"{out[key]}, {val}" if key in out else val
    return lines[0], out


def method_calls(body: bytes) -> list[tuple[str, str]]:
    """(method name, call id) of each call in a JMAP request body (``methodCalls``), or [] when it is not one."""
    try:
        return [(str(c[0]), str(c[2])) for c in json.loads(body)["methodCalls"]]
    except (ValueError, KeyError, TypeError, IndexError):
        return []


def method_errors(body: bytes, encoding: str, calls: list[tuple[str, str]]) -> str:
    """``method Email/get: accountNotFound; ...`` for the ``error`` responses of a JMAP response body, else ""."""
    try:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        responses = json.loads(body)["methodResponses"]
    except (ValueError, KeyError, TypeError, OSError, EOFError, zlib.error):
        return ""
    names = {call_id: name for name, call_id in calls}
    out = []
    for r in responses if isinstance(responses, list) else ():
        if isinstance(r, list) and len(r) == 3 and r[0] == "error" and isinstance(r[1], dict):
            name = names.get(str(r[2]), str(r[2]))
            out.append(f"method {name}: {r[1].get('type')}")
    return "; ".join(out)


class _Message:
    """A request or response being read: its head's facts, how its body ends, and its bytes so far."""

    __slots__ = ("start", "t_start", "head_bytes", "first", "fields", "body_left", "chunked", "to_close", "body",
                 "keep_body", "nbytes", "t_end", "chunk_state")

    def __init__(self, start: int, t_start: Any) -> None:
        self.start, self.t_start = start, t_start
        self.first, self.fields = b"", {}
        self.body_left = 0  # Content-Length bytes still to read, or the current chunk's
        self.chunked = self.to_close = False
        self.chunk_state = "size"  # chunked: "size" | "data" | "data-end" | "trailer"
        self.body = bytearray()
        self.keep_body = False
        self.nbytes = 0
        self.t_end = t_start
        self.head_bytes = 0


class _Request:
    __slots__ = ("index", "method", "target", "calls", "t_sent", "bytes_up", "bytes_down", "t_first",
                 "missing")

    def __init__(self, index: int, method: str, target: str, calls: list[tuple[str, str]], t_sent: Any, nbytes: int) -> None:
        self.index, self.method, self.target, self.calls = index, method, target, calls
        self.t_sent, self.bytes_up = t_sent, nbytes
        self.bytes_down, self.t_first, self.missing = 0, None, 0

    @property
    def arguments(self) -> str:
        """The request target and, for a JMAP API request, its method names joined by ``+``."""
        return self.target + (" " + "+".join(name for name, _ in self.calls) if self.calls else "")


class JmapParser(ParserBase):
    """HTTP/1.1 carrying JMAP: ``feed(direction, data, t)``, ``next_event()``, ``events()``, ``close()``."""

    protocol = "jmap"

    def __init__(self, max_line: int = MAX_HEAD, keep_payloads: bool = True, spans: bool = False) -> None:
        super().__init__(max_line, keep_payloads, spans)
        self._greeted = True  # HTTP has no greeting: the client speaks first
        self._up: _Message | None = None  # the request being read
        self._down: _Message | None = None  # the response being read
        self._waiting: list[_Request] = []  # requests sent, oldest first, whose responses are not complete

    # -- reading one message (either direction) -----------------------------------------------------------
    def _read_head(self, direction: str) -> _Message | None:
        s = self._streams[direction]
        end = s.find(b"\r\n\r\n")
        if end < 0:
            if len(s) > MAX_HEAD:
                self._broken(direction, f"no end of an HTTP head within {MAX_HEAD} bytes")
            return None
        m = _Message(s.base, s.t_at(s.base))
        m.head_bytes = m.nbytes = end + 4
        m.first, m.fields = _fields(s.take_bytes(end + 4)[:end])
        m.t_end = s.t_at(s.base - 1)
        return m

    def _frame(self, m: _Message, has_body: bool) -> None:
        """How ``m``'s body ends (RFC 9112 section 6.3), from its head."""
        if not has_body:
            return
        if "chunked" in m.fields.get("transfer-encoding", "").lower():
            m.chunked = True
        elif "content-length" in m.fields:
            try:
                m.body_left = int(m.fields["content-length"].split(",")[0])
            except ValueError:
                m.body_left = 0
                self._warn(UP, m.t_start, f"unreadable Content-Length {m.fields['content-length']!r}", m.start)
        else:
            m.to_close = True

    def _read_body(self, direction: str, m: _Message) -> bool:
        """Consume what is buffered of ``m``'s body; True when the body is complete."""
        s = self._streams[direction]
        if m.to_close:
            self._consume(s, m, len(s))
            return False
        if not m.chunked:
            self._consume(s, m, min(m.body_left, len(s)))
            return m.body_left == 0
        return self._read_chunks(s, m)

    def _read_chunks(self, s, m: _Message) -> bool:
        while True:
            if m.chunk_state == "data":
                self._consume(s, m, min(m.body_left, len(s)))
                if m.body_left:
                    return False
                m.chunk_state = "data-end"
                continue
            line = s.line()
            if line is None:
                return False
            self._count(s, m, len(line))
            if m.chunk_state == "data-end":
                m.chunk_state = "size"
            elif m.chunk_state == "size":
                try:
                    m.body_left = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self._warn(DOWN, m.t_end, f"unreadable chunk size {line[:40]!r}", s.base)
                    m.body_left = 0
                m.chunk_state = "data" if m.body_left else "trailer"
            elif line in (b"\r\n", b"\n"):  # the empty line after the trailer fields ends the body
                return True

    def _consume(self, s, m: _Message, n: int) -> None:
        if n <= 0:
            return
        if m.keep_body and len(m.body) + n <= MAX_JSON:
            m.body += s.take_bytes(n)
        else:
            m.keep_body = False
            s.skip(n)
        m.body_left -= 0 if m.to_close else n
        self._count(s, m, n)

    @staticmethod
    def _count(s, m: _Message, n: int) -> None:
        m.nbytes += n
        m.t_end = s.t_at(s.base - 1)

    # -- requests ---------------------------------------------------------------------------------------------
    def _process_up(self) -> None:
        s = self._streams[UP]
        while len(s):
            if self._up is None:
                m = self._read_head(UP)
                if m is None:
                    return
                method = m.first.split(b" ", 1)[0].decode("latin-1")
                self._frame(m, has_body=True)
                m.to_close = False  # a request without a length has no body (RFC 9112 section 6.3, rule 7)
                m.keep_body = "json" in m.fields.get("content-type", "")
                self._up = m
            m = self._up
            if not self._read_body(UP, m):
                return
            self._up = None
            parts = m.first.split(b" ")
            method = parts[0].decode("latin-1")
            target = parts[1].decode("latin-1") if len(parts) > 1 else ""
            calls = method_calls(bytes(m.body)) if m.body else []
            self._waiting.append(_Request(self._next_index, method, target, calls, m.t_start, m.nbytes))
            self._next_index += 1

    # -- responses --------------------------------------------------------------------------------------------
    def _process_down(self) -> None:
        s = self._streams[DOWN]
        while len(s) and not self._opaque:
            if self._down is None:
                m = self._read_head(DOWN)
                if m is None:
                    return
                if not self._start_response(m):
                    continue
            m = self._down
            if not self._read_body(DOWN, m):
                self._attribute(m)
                return
            self._down = None
            self._end_response(m, m.t_end)

    def _start_response(self, m: _Message) -> bool:
        """Begin reading response ``m``; False when it is complete already (an interim 1xx, or no request)."""
        parts = m.first.split(b" ", 2)
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        req = self._waiting[0] if self._waiting else None
        if req is None:
            self.unattributed[DOWN] += m.nbytes
            self._warn(DOWN, m.t_start, f"an HTTP response ({m.first[:60]!r}) that no request waits for", m.start)
            return False
        if 100 <= code < 200:
            self._attribute(m)
            if code == 101:
                self._go_opaque("protocol-switch", m.t_end, "101 Switching Protocols: the rest is not HTTP")
            return False
        no_body = req.method == "HEAD" or code in (204, 304)
        self._frame(m, has_body=not no_body)
        m.keep_body = "json" in m.fields.get("content-type", "") and bool(req.calls)
        self._down = m
        return True

    def _attribute(self, m: _Message) -> None:
        """Count ``m``'s bytes so far into the oldest waiting request (more of them may follow)."""
        req = self._waiting[0]
        if req.t_first is None:
            req.t_first = m.t_start
        req.bytes_down += m.nbytes
        m.nbytes = 0

    def _end_response(self, m: _Message, t_done: Any) -> None:
        self._attribute(m)
        req = self._waiting.pop(0)
        parts = m.first.split(b" ", 1)
        text = parts[1].decode("latin-1") if len(parts) > 1 else ""
        code = int(text[:3]) if text[:3].isdigit() else 0
        status = "OK" if 100 <= code < 400 else "NO"
        errors = method_errors(bytes(m.body), m.fields.get("content-encoding", "").lower(), req.calls) \
            if m.body else ""
        if errors:
            status, text = "NO", f"{text}; {errors}"
        self._emit(new_exchange("jmap", req.index, None, req.method, req.arguments, status, text, req.t_sent,
                                req.t_first, t_done, req.bytes_up, req.bytes_down, missing=req.missing))
        self.completed += 1

    # -- the ends ---------------------------------------------------------------------------------------------
    def _broken(self, direction: str, why: str) -> None:
        """The stream is not HTTP any more: warn, and count the rest as unattributed bytes."""
        self._warn(direction, None, f"{why}; the rest is only counted", self._streams[direction].base)
        self._opaque = "error"
        self.tls.extra["mode"] = "error"
        for d, stream in self._streams.items():
            if len(stream):
                self._count_opaque(d, stream.take_all().data)

    def _finish(self, t: Any) -> None:
        m = self._down
        if m is not None and self._waiting:
            self._down = None
            if m.to_close:  # a body that runs to the close is complete when the connection closes
                self._end_response(m, m.t_end)
            else:  # the request stays waiting: an exchange without a status
                self._attribute(m)
                self._warn(DOWN, t, "the connection closed inside an HTTP response", m.start)
        for req in self._waiting:
            self._emit(new_exchange("jmap", req.index, None, req.method, req.arguments, None, "", req.t_sent,
                                    req.t_first, None, req.bytes_up, req.bytes_down, missing=req.missing))
        self._waiting.clear()
        if self._up is not None:
            self.unattributed[UP] += self._up.nbytes
            self._warn(UP, t, f"the connection closed inside an HTTP request ({self._up.nbytes} bytes)",
                       self._up.start)
            self._up = None

    def _settled(self) -> bool:
        return not self._waiting and self._up is None and self._down is None

    def _gap(self, direction: str, nbytes: int, t: Any) -> None:
        req = self._waiting[0] if self._waiting else None
        if req is not None:
            req.missing += nbytes
        self._broken(direction, f"{nbytes} bytes missing from the capture")

    def _resume(self, direction: str, t: Any) -> None:
        self._broken(direction, "the capture starts inside the HTTP stream")

    def _tail_spans(self, data: bytes, start: int) -> None:
        """HTTP requests carry no IMAP/POP3 credential spans (Basic credentials are a header, never an argument)."""
