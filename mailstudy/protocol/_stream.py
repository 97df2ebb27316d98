"""Shared plumbing of the sans-IO parsers: byte buffers with times, line cutting, TLS record counting.

Why a module of its own: the IMAP and POP3 parsers differ in grammar, not in how they buffer bytes, find the
time of a byte, cap runaway lines, notice implicit TLS or count opaque bytes after STARTTLS/STLS. Keeping that
here lets each protocol module state only its own rules.

Rules that make chunking irrelevant (the property tests check them): every decision is taken when the byte that
settles it is fed, never "when a chunk ends"; a line is at most ``max_line`` bytes *by content* (a newline within
the first ``max_line`` bytes ends it, otherwise exactly ``max_line`` bytes are cut off and the rest up to the
next newline is skipped), and skipped bytes are counted additively, so any split of the same streams gives the
same exchanges and the same byte counts.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

from mailstudy.protocol.events import (
    DOWN,
    NOT_SECRET,
    UP,
    Compressed,
    Encrypted,
    Event,
    Exchange,
    ParseWarning,
    Progress,
    Span,
    TlsCounts,
)

if TYPE_CHECKING:  # annotations only
    from mailstudy.protocol.events import Greeting

MAX_LINE = 1 << 20  # 1 MiB: longer lines are cut, warned about and skipped to the next newline
MAX_WARNINGS = 1000  # per parser; one more warning says the rest were suppressed


_new_object = object.__new__


def text_of(data: bytes) -> str:
    """Protocol bytes as text for people: UTF-8 where it is, a replacement mark where it is not."""
    return data.decode("utf-8", "replace")


def strip_eol(line: bytes) -> bytes:
    """A line without its CRLF (or bare LF)."""
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(b"\n") else line


def redact_by(rules: dict[str, str], command: str, arguments: str) -> str:
    """``arguments`` with credentials replaced by ``***``, as ``rules`` (upper-case command: how) say for the command.

    How: ``"line"`` the whole rest of the line; ``"words"`` the two words of user and password; ``"sasl"`` the
    initial response after the mechanism (kept). Commands not in ``rules`` keep their arguments."""
    how = rules.get(command.upper())
    if how == "line":
        return "***" if arguments else arguments
    if how == "words":
        return "*** ***" if arguments.strip() else arguments
    if how == "sasl":
        mech, sep, _initial = arguments.strip().partition(" ")
        return f"{mech} ***" if sep else arguments
    return arguments


def new_exchange(protocol: str, index: int, tag: str | None, command: str, arguments: str, status: str | None,
                 status_text: str, t_sent: Any, t_first_response: Any, t_done: Any, bytes_up: int, bytes_down: int,
                 literals: tuple = (), data: bytes = b"", multiline: bool = False, missing: int = 0) -> Exchange:
    """``Exchange(...)`` at an eighth of the cost: a frozen dataclass's ``__init__`` sets each of its 15 fields
    through ``object.__setattr__`` (2.4 us; a 1,000,000-packet capture has 150,000 exchanges). This fills the
    instance's ``__dict__`` directly, in field order: the object is equal to, and indistinguishable from, the
    one ``Exchange(...)`` makes (events.py defines no ``__post_init__``)."""
    e = _new_object(Exchange)
    e.__dict__.update(protocol=protocol, index=index, tag=tag, command=command, arguments=arguments, status=status,
                      status_text=status_text, t_sent=t_sent, t_first_response=t_first_response, t_done=t_done,
                      bytes_up=bytes_up, bytes_down=bytes_down, literals=literals, data=data, multiline=multiline,
                      missing=missing)
    return e


class PendingBase:
    """An exchange being built, as both parsers keep it: its place, command, bytes each way, SASL progress."""

    __slots__ = ("index", "command", "t_sent", "bytes_up", "bytes_down", "t_first_response", "sasl_turns",
                 "mechanism", "responses", "missing")

    def __init__(self, index: int, command: str, t_sent: Any, bytes_up: int = 0) -> None:
        self.index = index
        self.command = command
        self.t_sent = t_sent
        self.bytes_up = bytes_up
        self.bytes_down = 0
        self.t_first_response: Any = None
        self.sasl_turns = 0  # SASL: server challenges not yet answered by a client line
        self.mechanism = ""  # SASL: the mechanism named by the client
        self.responses = 0  # SASL: client responses so far (the initial response included)
        self.missing = 0  # bytes of this exchange a capture gap lost


class Segment(NamedTuple):
    """A piece of one direction's stream cut by :meth:`ByteStream.read_line`."""

    kind: str  # "line" (ends with \n), "overflow" (first max_line bytes of a runaway line), "skip" (rest of it)
    data: bytes
    start: int  # absolute offset of data[0] in the direction's stream
    t_start: Any  # time of the chunk that carried data[0]
    t_end: Any  # time of the chunk that carried data[-1]

    @property
    def ends_line(self) -> bool:
        return self.data.endswith(b"\n")


class ByteStream:
    """One direction's unconsumed bytes, with the time of the chunk that brought each byte.

    Two ways to consume: the general one (``read_line``, ``take``: a :class:`Segment` with both times looked up)
    and the fast one the parsers use in their hot loops (``line``, ``skip``, ``take_bytes``: just the bytes; the
    caller reads ``base`` first for the offset and asks ``t_at`` only for the times it needs). Marks of chunks
    wholly consumed are dropped by ``trim``, which the parser calls once per batch of fed bytes.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max(1, int(max_line))
        self.buf = bytearray()
        self.base = 0  # absolute offset of buf[0] (= bytes consumed so far)
        self.total = 0  # bytes fed so far
        self._offs: list[int] = []  # absolute offset where each fed chunk starts
        self._ts: list[Any] = []
        self._lo = 0  # first mark still needed
        self._scan = 0  # how far buf was searched for a newline without finding one
        self.skipping = False

    def append(self, data: bytes, t: Any) -> None:
        if not data:
            return
        self._offs.append(self.total)
        self._ts.append(t)
        self.buf += data
        self.total += len(data)

    def extend(self, items: Iterable[tuple[bytes, Any]]) -> None:
        """``append`` every ``(data, t)`` of ``items``, in order (one copy into the buffer for all of them)."""
        offs = self._offs
        ts = self._ts
        buf = self.buf
        total = self.total
        for data, t in items:
            if data:
                offs.append(total)
                ts.append(t)
                buf += data
                total += len(data)
        self.total = total

    def extend_lists(self, datas: list[bytes], ts: list[Any]) -> None:
        """``extend(zip(datas, ts))`` for lists of non-empty chunks (a pcap run), without a Python loop."""
        buf = self.buf
        total = self.total
        if len(datas) == 1:
            data = datas[0]
            self._offs.append(total)
            self._ts.append(ts[0])
            buf += data
            self.total = total + len(data)
            return
        lens = list(map(len, datas))
        self._offs.extend(accumulate(lens[:-1], initial=total))
        self._ts.extend(ts)
        buf += b"".join(datas)
        self.total = total + sum(lens)

    def __len__(self) -> int:
        return len(self.buf)

    def t_at(self, offset: int) -> Any:
        if not self._ts:
            return None
        i = bisect_right(self._offs, offset, self._lo) - 1
        return self._ts[i if i > self._lo else self._lo]

    def peek(self, n: int) -> bytes:
        return bytes(self.buf[:n])

    def find(self, sub: bytes) -> int:
        return self.buf.find(sub)

    # -- fast consumption: bytes only --------------------------------------------------------------------------
    def line(self) -> bytes | None:
        """The next whole line (newline within the first ``max_line`` bytes), consumed; else None and nothing
        is consumed (no newline yet, a runaway line, or skipping one: ``read_line`` handles those)."""
        if self.skipping:
            return None
        buf = self.buf
        i = buf.find(b"\n", self._scan, self.max_line)
        if i < 0:
            return None
        i += 1
        data = bytes(buf[:i])
        del buf[:i]
        self.base += i
        self._scan = 0
        return data

    def skip(self, n: int) -> int:
        """Consume up to ``n`` bytes without copying them; returns how many."""
        buf = self.buf
        if n >= len(buf):
            n = len(buf)
            buf.clear()
        else:
            del buf[:n]
        self.base += n
        self._scan = self._scan - n if self._scan > n else 0
        return n

    def take_bytes(self, n: int) -> bytes:
        """Consume up to ``n`` bytes and return them."""
        buf = self.buf
        data = bytes(buf) if n >= len(buf) else bytes(buf[:n])
        self.skip(len(data))
        return data

    # -- general consumption: segments with times ------------------------------------------------------------
    def take(self, n: int) -> Segment:
        """Consume up to ``n`` bytes (fewer if fewer are buffered)."""
        return self._take(n, "data")

    def _take(self, n: int, kind: str) -> Segment:
        start = self.base
        data = self.take_bytes(n if n > 0 else 0)
        n = len(data)
        seg = new_segment((kind, data, start, self.t_at(start), self.t_at(start + n - 1 if n else start)))
        self.trim()
        return seg

    def take_all(self) -> Segment:
        return self.take(len(self.buf))

    def read_line(self) -> Segment | None:
        """The next line (kind "line"), or a piece of a runaway line ("overflow", then "skip"), or None."""
        if not self.buf:
            return None
        if self.skipping:
            i = self.buf.find(b"\n")
            if i >= 0:
                self.skipping = False
                return self._take(i + 1, "skip")
            return self._take(len(self.buf), "skip")
        i = self.buf.find(b"\n", self._scan, self.max_line)
        if i >= 0:
            self._scan = 0
            return self._take(i + 1, "line")
        if len(self.buf) >= self.max_line:
            self.skipping = True
            self._scan = 0
            return self._take(self.max_line, "overflow")
        self._scan = len(self.buf)
        return None

    def trim(self) -> None:
        """Drop the marks of chunks that lie wholly before the unconsumed bytes."""
        offs = self._offs
        lo = self._lo
        if lo + 1 < len(offs) and offs[lo + 1] <= self.base:
            lo = bisect_right(offs, self.base, lo) - 1
            self._lo = lo
            if lo > 1024 and lo * 2 > len(offs):
                del offs[:lo]
                del self._ts[:lo]
                self._lo = 0


def new_segment(fields: tuple) -> Segment:
    """A Segment without NamedTuple's Python-level ``__new__`` (same object, a third of the cost)."""
    return tuple.__new__(Segment, fields)


class RecordCounter:
    """Counts TLS records in one direction from their 5-byte headers (type, version, length)."""

    def __init__(self) -> None:
        self.header = bytearray()
        self.remaining = 0
        self.records = 0
        self.broken = False  # a header that is not TLS was seen: bytes are still counted, records no more

    def feed(self, data: bytes) -> str | None:
        """Count records in ``data``; returns a warning text the first time a header is not TLS."""
        i, n = 0, len(data)
        while i < n and not self.broken:
            if self.remaining:
                step = min(self.remaining, n - i)
                self.remaining -= step
                i += step
                continue
            step = min(5 - len(self.header), n - i)
            self.header += data[i : i + step]
            i += step
            if len(self.header) == 5:
                ctype, major, length = self.header[0], self.header[1], int.from_bytes(self.header[3:5], "big")
                if not (20 <= ctype <= 24 and major == 3):
                    self.broken = True
                    return f"not a TLS record header: {bytes(self.header).hex()}; records no longer counted"
                self.records += 1
                self.remaining = length
                self.header.clear()
        return None


class ParserBase:
    """Feeding, event queue, implicit-TLS detection, opaque byte counting and byte bookkeeping.

    Subclasses implement ``_process_up()`` and ``_process_down()`` (consume what they can of that direction's
    buffer) and ``_finish(t)`` (flush outstanding state at end of stream).

    ``keep_payloads`` (default True): keep IMAP literal payloads (``Exchange.literals``) and POP3 multi-line data
    (``Exchange.data``). False leaves them empty (``()``, ``b""``) and counts the bytes without copying them:
    every other field of every event is the same.

    ``spans`` (default False): also emit a :class:`~mailstudy.protocol.events.Span` for arguments a replay
    rewrites (IMAP UID sets). Credential spans are always emitted: redaction and replay read them from here.

    Progress (public, for a replay that waits for the server): ``completed`` exchanges, ``continuations``
    (IMAP ``+`` requests, POP3 SASL challenges) and :meth:`progress`.
    """

    protocol = ""
    #: each direction's buffer (the compiled parsers put a typed one here: mailstudy/protocol/_parsers_c.pyx)
    stream_type: type = ByteStream

    def __init__(self, max_line: int = MAX_LINE, keep_payloads: bool = True, spans: bool = False) -> None:
        self.keep_payloads = bool(keep_payloads)
        self.spans = bool(spans)
        self.completed = 0
        self.continuations = 0
        self._streams = {UP: self.stream_type(max_line), DOWN: self.stream_type(max_line)}
        self._events: deque[Event] = deque()
        self.tls = TlsCounts()
        self._opaque: str | None = None  # None (plain text) | "tls" | "compress"
        self._records = {UP: RecordCounter(), DOWN: RecordCounter()}
        self._start_checked = {UP: False, DOWN: False}
        self.unattributed = {UP: 0, DOWN: 0}  # bytes no greeting or exchange could be given
        self.closed = False
        self._nwarnings = 0
        self.greeting: Greeting | None = None
        self._greeted = False  # the server's first line has been read (a greeting or not)
        self._next_index = 0  # the index the next exchange gets
        self.missing = {UP: 0, DOWN: 0}  # bytes the capture lost (``gap``), per direction; never fed

    # -- public API ---------------------------------------------------------------------------------------
    @property
    def total(self) -> dict[str, int]:
        """Bytes fed so far, per direction."""
        return {d: s.total for d, s in self._streams.items()}

    def feed(self, direction: str, data: bytes, t: Any = None) -> None:
        """Hand the parser bytes seen in one direction ("up" client->server, "down" server->client) at ``t``."""
        if direction not in (UP, DOWN):
            raise ValueError(f"direction must be {UP!r} or {DOWN!r}, not {direction!r}")
        data = bytes(data)
        if not data:
            return
        stream = self._streams[direction]
        if self.closed:
            stream.total += len(data)
            stream.base += len(data)
            self.unattributed[direction] += len(data)
            self._warn(direction, t, f"{len(data)} bytes fed after close() were not parsed", stream.base)
            return
        stream.append(data, t)
        self._guarded(self._pump, direction, t)

    def feed_many(self, direction: str, items: Iterable[tuple[bytes, Any]]) -> None:
        """``feed(direction, data, t)`` for every ``(data, t)`` of ``items``, in order, at a fraction of the cost.

        The same events come out, times included: the parsers decide on bytes, never on where a chunk ends, and
        take each byte's time from the chunk that brought it; so the chunks are buffered together and parsed
        once instead of once per chunk.
        """
        if direction not in (UP, DOWN):
            raise ValueError(f"direction must be {UP!r} or {DOWN!r}, not {direction!r}")
        if self.closed:
            for data, t in items:
                self.feed(direction, data, t)
            return
        stream = self._streams[direction]
        n = stream.total
        stream.extend(items)
        if stream.total != n:
            try:
                self._pump(direction, None)
            except Exception as exc:  # noqa: BLE001 - as _guarded, one call less
                self._internal_error(exc)

    def feed_lists(self, direction: str, datas: list[bytes], ts: list[Any]) -> None:
        """``feed_many(direction, zip(datas, ts))`` for a run of chunks held as two lists (what the analysis of
        a pcap has): the fastest way in. ``direction`` must be UP or DOWN (not checked here: the hot path)."""
        if self.closed or not all(datas):
            self.feed_many(direction, zip(datas, ts))
            return
        stream = self._streams[direction]
        stream.extend_lists(datas, ts)
        try:
            if self._opaque or not self._start_checked[direction]:
                self._pump(direction, None)
            else:  # _pump's common case, one call less
                self._process(direction)
                stream.trim()
        except Exception as exc:  # noqa: BLE001 - as _guarded, one call less
            self._internal_error(exc)

    def feed_runs(self, runs: Iterable[tuple[str, list[bytes], list[Any]]], stop: Any = None) -> int:
        """``feed_lists(direction, datas, ts)`` for every ``(direction, datas, ts)`` of ``runs``, in order, in one
        call (what the analysis of a pcap has for a batch: runs alternating between the directions); returns how
        many runs were fed. ``stop`` (a callable): asked after each run; True ends the feeding there (the
        inflater takes over after COMPRESS). The same events as one ``feed_lists`` per run: this only saves the
        per-run calls and look-ups (a run is often one command line); bench/analyze.py says what that is worth."""
        streams = self._streams
        process_up, process_down = self._process_up, self._process_down
        checked = self._start_checked
        n = 0
        for direction, datas, ts in runs:
            n += 1
            if self.closed or self._opaque or not checked[direction] or not all(datas):
                self.feed_lists(direction, datas, ts)  # the uncommon cases, feed_lists' way
            else:  # feed_lists' common case
                stream = streams[direction]
                stream.extend_lists(datas, ts)
                try:
                    if direction == UP:
                        process_up()
                    else:
                        process_down()
                    stream.trim()
                except Exception as exc:  # noqa: BLE001 - as _guarded, one call less
                    self._internal_error(exc)
            if stop is not None and stop():
                break
        return n

    def gap(self, direction: str, nbytes: int, t: Any = None) -> None:
        """``nbytes`` of one direction's stream are missing right here: the capture lost them (a reassembly gap).

        The parser keeps its footing. Inside an IMAP literal (server's or client's) the known missing bytes are
        skipped, so the literal still ends where its length says and the next response is read as normal.
        Anywhere else it cannot know where the missing bytes ended: it drops the bytes it cannot place (to the
        exchange that was cut) up to the next line it recognizes (IMAP: a tagged status of an outstanding
        command or an untagged ``FETCH``; POP3: a status line, or the ``.`` that ends multi-line data). Every
        exchange that lost bytes carries them in ``Exchange.missing``; each gap gives one warning, which never
        quotes the stream (after a gap, the bytes are most likely a message's content). Offsets (spans,
        warnings) leave missing bytes out, as reassembly's streams do; ``parser.missing`` counts them.
        """
        if direction not in (UP, DOWN):
            raise ValueError(f"direction must be {UP!r} or {DOWN!r}, not {direction!r}")
        nbytes = int(nbytes)
        if nbytes <= 0:
            return
        self.missing[direction] += nbytes
        if self.closed:
            return
        stream = self._streams[direction]
        if self._opaque:
            if self._opaque == "tls" and not self._records[direction].broken:
                self._records[direction].broken = True
                self._warn(direction, t, f"{nbytes} bytes missing from the capture inside TLS: records are no "
                           f"longer counted", stream.base)
            return
        self._start_checked[direction] = True
        stream.skipping = False  # the parsers drop what they cannot place themselves
        self._guarded(self._gap, direction, nbytes, t)
        stream.trim()

    def resume(self, direction: str, t: Any = None) -> None:
        """The capture starts in the middle of this direction's stream (reassembly's ``mid_stream``): the parser
        expects no greeting and, on the server side, reads from the first line it recognizes (as after a
        :meth:`gap`); the bytes before it are unattributed."""
        if direction not in (UP, DOWN):
            raise ValueError(f"direction must be {UP!r} or {DOWN!r}, not {direction!r}")
        if self.closed or self._opaque:
            return
        self._greeted = True
        self._guarded(self._resume, direction, t)

    def _resume(self, direction: str, t: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _gap_warning(self, direction: str, t: Any, nbytes: int, where: str, how: str) -> None:
        """The one warning of a gap: how many bytes, where, what the parser did (never the stream's content)."""
        self._warn(direction, t, f"{nbytes} bytes missing from the capture {where}; {how}",
                   self._streams[direction].base)

    def progress(self) -> Progress:
        """How far the parser has got (see :class:`~mailstudy.protocol.events.Progress`)."""
        return Progress(self.greeting is not None, self.completed, self.continuations, self._settled())

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[Event]:
        out = list(self._events)
        self._events.clear()
        return out

    def close(self, t: Any = None) -> None:
        """End of stream: outstanding commands become exchanges with status None; leftovers are warned about."""
        if self.closed:
            return
        self.closed = True
        up = self._streams[UP]
        if len(up) and not self._opaque and not up.skipping:
            self._guarded(self._tail_spans, bytes(up.buf), up.base)
        self._guarded(self._finish, t)
        for d, stream in self._streams.items():
            if len(stream):
                seg = stream.take_all()
                if self._opaque:
                    self._count_opaque(d, seg.data)
                else:
                    self.unattributed[d] += len(seg.data)
                    self._warn(d, t, f"stream ended inside an incomplete line ({len(seg.data)} bytes)", seg.start)

    # -- for subclasses -----------------------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _sasl_start(self, p: Any, body: bytes, toks: list, start: int, kind: str) -> None:
        """AUTHENTICATE/AUTH ``mechanism [initial-response]`` (``toks``: the lexer's tokens of ``body``, a line
        starting at stream offset ``start``): note the mechanism on ``p`` and emit the initial response."""
        p.mechanism = text_of(toks[0].value).upper() if toks else ""
        if len(toks) > 1:
            p.responses = 1
            a, b = toks[1].start, len(body.rstrip())
            if body[a:b].strip() not in NOT_SECRET:
                self._emit(Span(kind, start + a, start + b, p.index, "atom", None, p.mechanism))

    def _sasl_reply(self, waiting: Iterable[Any], command: str, line: bytes, start: int) -> bool:
        """A client line answering the SASL challenge of the first exchange in ``waiting`` that runs ``command``
        and awaits one: count it there and emit its span. False when no exchange awaits a response."""
        for p in waiting:
            if p.sasl_turns > 0 and p.command == command:
                p.sasl_turns -= 1
                p.bytes_up += len(line)
                self._sasl_span(p, line, start)
                return True
        return False

    def _sasl_span(self, p: Any, line: bytes, start: int) -> None:
        """A client SASL response line of ``p`` (AUTHENTICATE/AUTH) at stream offset ``start``."""
        body = strip_eol(line)
        if body.strip() not in NOT_SECRET:
            self._emit(Span(f"{self.protocol}-sasl-response", start, start + len(body), p.index, "line", None,
                            p.mechanism, p.responses))
        p.responses += 1

    def _warn(self, direction: str, t: Any, message: str, offset: int = 0) -> None:
        self._nwarnings += 1
        if self._nwarnings <= MAX_WARNINGS:
            self._emit(ParseWarning(direction, t, message, offset))
        elif self._nwarnings == MAX_WARNINGS + 1:
            message = f"more than {MAX_WARNINGS} warnings: the rest are suppressed"
            self._emit(ParseWarning(direction, t, message, offset))

    def _unattributed(self, direction: str, seg: Segment, why: str) -> None:
        self.unattributed[direction] += len(seg.data)
        self._warn(direction, seg.t_start, f"{len(seg.data)} bytes not attributed: {why}", seg.start)

    def _unattributed_at(self, direction: str, nbytes: int, start: int, why: str) -> None:
        """``_unattributed`` for ``nbytes`` consumed from offset ``start`` (no Segment made)."""
        self.unattributed[direction] += nbytes
        t = self._streams[direction].t_at(start)
        self._warn(direction, t, f"{nbytes} bytes not attributed: {why}", start)

    #: True when the bytes fed are the plaintext inside TLS (a live client's trace with TLS): STARTTLS/STLS
    #: then emits :class:`Encrypted` and parsing goes on, instead of counting what follows as opaque records
    decrypted = False
    #: COMPRESS=DEFLATE (RFC 4978): True when the bytes fed are the protocol's inside the compression (a live
    #: trace), so parsing goes on after COMPRESS; or a callable that inflates (mailstudy.offline.inflate): it is
    #: called once, right after the tagged OK, with the bytes the parser holds beyond it by direction (which it
    #: counts in ``tls``, the compressed bytes fed), and feeds the parser the inflated stream from then on
    inflated: Any = False

    def _go_opaque(self, mode: str, t: Any, reason: str) -> None:
        """From here on only count bytes (TLS records too if mode is "tls"), in both directions."""
        if mode == "tls" and self.decrypted:
            self._emit(Encrypted(t, reason + "; the bytes given are the plaintext inside TLS"))
            return
        if mode == "compress" and self.inflated:
            self._go_inflated(t)
            return
        if self._opaque:
            return
        self._opaque = mode
        self.tls.extra["mode"] = mode
        self._emit(Encrypted(t, reason))
        for d, stream in self._streams.items():
            if len(stream):
                self._count_opaque(d, stream.take_all().data)

    def _go_inflated(self, t: Any) -> None:
        """COMPRESS accepted and the caller inflates (:attr:`inflated`): parsing goes on."""
        self._emit(Compressed(t, "COMPRESS accepted: the bytes from here on are read inflated"))
        if callable(self.inflated):
            held = {d: stream.take_all().data if len(stream) else b"" for d, stream in self._streams.items()}
            for d, data in held.items():
                self._count_opaque(d, data)
            self.inflated(held, t)

    def _process(self, direction: str) -> None:
        if direction == UP:
            self._process_up()
        else:
            self._process_down()

    def _process_up(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _process_down(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self, t: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _settled(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _gap(self, direction: str, nbytes: int, t: Any) -> None:  # pragma: no cover - abstract
        """Keep the parser's footing after ``nbytes`` went missing (see :meth:`gap`)."""
        raise NotImplementedError

    def _tail_spans(self, data: bytes, start: int) -> None:  # pragma: no cover - abstract
        """Spans in an unterminated last client line (the stream ended inside it); no other effect."""
        raise NotImplementedError

    # -- internals ----------------------------------------------------------------------------------------
    def _pump(self, direction: str, t: Any) -> None:
        stream = self._streams[direction]
        if self._opaque:
            self._count_opaque(direction, stream.take_all().data)
            return
        if not self._start_checked[direction]:
            if stream.base == 0 and len(stream) < 2 and stream.peek(1) == b"\x16":
                return  # one byte that may start a TLS record: wait for the next
            self._start_checked[direction] = True
            if stream.base == 0 and stream.peek(2) == b"\x16\x03":
                self._go_opaque("tls", stream.t_at(0), f"the first {direction} bytes are a TLS record (implicit TLS)")
                return
        self._process(direction)
        stream.trim()

    def _count_opaque(self, direction: str, data: bytes) -> None:
        if not data:
            return
        if self._opaque == "error":
            self.unattributed[direction] += len(data)
            return
        if direction == UP:
            self.tls.bytes_up += len(data)
        else:
            self.tls.bytes_down += len(data)
        if self._opaque == "tls":
            counter = self._records[direction]
            problem = counter.feed(data)
            if problem:
                self._warn(direction, None, problem, self._streams[direction].base)
            if direction == UP:
                self.tls.records_up = counter.records
            else:
                self.tls.records_down = counter.records

    def _guarded(self, fn, *args) -> None:
        """Run parser code; a bug must not become the caller's traceback: warn and count the rest as opaque."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the parsers promise never to raise on input
            self._internal_error(exc)

    def _internal_error(self, exc: Exception) -> None:
        self._warn(UP, None, f"internal parser error, the rest is only counted: {type(exc).__name__}: {exc}")
        self._opaque = self._opaque or "error"
        self.tls.extra["mode"] = self._opaque
        for d, stream in self._streams.items():
            if len(stream):
                self._count_opaque(d, stream.take_all().data)
