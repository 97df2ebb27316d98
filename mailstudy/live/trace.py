"""Record what a client's socket really sent and received, chunk by chunk, with a clock.

Why: every metric in mailstudy (bytes each way, round trips, time to list) is computed from what crossed the
client's socket, not from what the client library believes it did. A :class:`TracedSocket` wraps the real
socket under imaplib/poplib; nothing else in those libraries is patched. Times are ``time.perf_counter_ns()``.

TLS: :class:`TLSSocket` runs the TLS layer itself, on top of the traced socket (Python's ``ssl.SSLObject``
over memory buffers: OpenSSL does the TLS, we move its records), so both sides of TLS are recorded. The traced
socket below records the TLS records as they cross the wire into :attr:`Trace.wire`; the TLS layer records
the protocol's bytes inside into :attr:`Trace.chunks`, which the parsers read as in clear text. For STARTTLS
the clear-text start is in both. ``Trace.wire`` is None for a clear-text session: its wire is its chunks.
(``ssl.SSLContext.wrap_socket`` cannot do this: it needs the real socket, and its records never pass through
Python.)

COMPRESS=DEFLATE (RFC 4978): :class:`DeflateSocket` is the layer above TLS and below IMAP, built the same way.
From the tagged OK of ``COMPRESS DEFLATE`` on, the protocol's bytes (``Trace.chunks``, what the parsers read) are
deflated into the layer below; what that layer carries is :attr:`Trace.compressed` (the whole session's stream
under IMAP: its clear start, then the deflate stream). Without TLS it is the TCP payload, so ``Trace.compressed``
and ``Trace.wire`` are the same list; with TLS the records are ``Trace.wire`` and ``Trace.compressed`` what they
carry. ``Trace.compressed`` is None when no compression began.
"""

from __future__ import annotations

import socket
import ssl
import time
import zlib
from dataclasses import dataclass, field

from mailstudy.wire import (  # a Chunk here: one send() or recv(), ``t`` = perf_counter_ns()
    DOWN,
    UP,
    Chunk,
)


@dataclass
class Trace:
    """Everything one session's client socket saw: chunks in order and named milestones."""

    t_connect_ns: int = 0  # perf_counter_ns() just before connect()
    chunks: list[Chunk] = field(default_factory=list)  # t: perf_counter_ns() when the call returned
    milestones: dict[str, int] = field(default_factory=dict)
    local: tuple[str, int] | None = None
    remote: tuple[str, int] | None = None
    #: the chunks as they crossed the socket (TLS records), when TLS was used; None: clear text (``chunks``)
    wire: list[Chunk] | None = None
    tls_version: str | None = None  # e.g. "TLSv1.3", once a handshake completed
    #: the stream under the protocol (TLS's payload, or the TCP payload without TLS) once COMPRESS began; None:
    #: no compression (it is then ``chunks``)
    compressed: list[Chunk] | None = None

    @property
    def on_wire(self) -> list[Chunk]:
        """The chunks as they crossed the socket: the TLS records with TLS, else the protocol's own chunks."""
        return self.chunks if self.wire is None else self.wire

    def mark(self, name: str) -> None:
        """Record a milestone (e.g. ``list_ready``) at the current time."""
        self.milestones[name] = time.perf_counter_ns()

    def stream(self, direction: str, wire: bool = False) -> bytes:
        """All the protocol's bytes one way, concatenated; ``wire``: the TCP payload (TLS records with TLS)."""
        return b"".join(c.data for c in (self.on_wire if wire else self.chunks) if c.direction == direction)

    @property
    def bytes_up(self) -> int:
        return sum(len(c.data) for c in self.chunks if c.direction == UP)

    @property
    def bytes_down(self) -> int:
        return sum(len(c.data) for c in self.chunks if c.direction == DOWN)

    @property
    def t_end_ns(self) -> int:
        return self.on_wire[-1].t if self.on_wire else self.t_connect_ns


class TracedSocket:
    """A socket proxy that records every chunk; imaplib/poplib use it through ``makefile`` and ``sendall``.

    Only the calls the stdlib clients make are recorded (send, sendall, recv, recv_into, makefile); any other
    attribute is passed to the real socket.
    """

    def __init__(self, sock: socket.socket, trace: Trace) -> None:
        self._sock = sock
        self._trace = trace
        try:
            trace.local = sock.getsockname()[:2]
            trace.remote = sock.getpeername()[:2]
        except OSError:
            pass

    # -- writing -------------------------------------------------------------------------------------------
    def sendall(self, data: bytes, *args) -> None:
        self._sock.sendall(data, *args)
        self._record(UP, bytes(data))

    def send(self, data: bytes, *args) -> int:
        n = self._sock.send(data, *args)
        self._record(UP, bytes(data[:n]))
        return n

    # -- reading -------------------------------------------------------------------------------------------
    def recv(self, bufsize: int, *args) -> bytes:
        data = self._sock.recv(bufsize, *args)
        if data:
            self._record(DOWN, data)
        return data

    def recv_into(self, buffer, nbytes: int = 0, *args) -> int:
        n = self._sock.recv_into(buffer, nbytes, *args)
        if n:
            self._record(DOWN, bytes(memoryview(buffer)[:n]))
        return n

    def makefile(self, mode: str = "r", buffering=None, **kwargs):
        # socket.makefile builds a SocketIO over *self*, so every read goes through recv_into above.
        return socket.socket.makefile(self, mode, buffering, **kwargs)  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:  # called by SocketIO.close()
        pass

    def _record(self, direction: str, data: bytes) -> None:
        trace = self._trace
        (trace.chunks if trace.wire is None else trace.wire).append(Chunk(direction, time.perf_counter_ns(), data))

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


TLS_READ = 65536


class _Layer:
    """What a layer over the traced socket (TLS, COMPRESS) offers imaplib/poplib besides its own ``sendall``
    and ``recv``: the socket calls built on those two, and the rest of the layer below's."""

    _raw: object

    def send(self, data: bytes, *args) -> int:
        self.sendall(data)
        return len(data)

    def recv_into(self, buffer, nbytes: int = 0, *args) -> int:
        data = self.recv(nbytes or len(buffer))
        memoryview(buffer)[:len(data)] = data
        return len(data)

    def makefile(self, mode: str = "r", buffering=None, **kwargs):
        return socket.socket.makefile(self, mode, buffering, **kwargs)  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:  # called by SocketIO.close()
        pass

    def __getattr__(self, name: str):  # settimeout, shutdown, close, fileno, getsockname: the layer below's own
        return getattr(self._raw, name)


class TLSSocket(_Layer):
    """TLS over a :class:`TracedSocket`, for imaplib/poplib: the same calls (sendall, send, recv, recv_into,
    makefile), with the protocol's bytes recorded into ``trace.chunks`` and the records into ``trace.wire``.

    :meth:`handshake` must be called before use; it raises the ``ssl`` module's errors (a certificate that does
    not verify, a version the server does not offer), which the caller turns into one line."""

    def __init__(self, raw: TracedSocket, context: ssl.SSLContext, server_hostname: str, trace: Trace) -> None:
        self._raw = raw
        self._trace = trace
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=False,
                                     server_hostname=server_hostname)
        if trace.wire is None:  # from here the traced socket records records; what went before was both
            trace.wire = list(trace.chunks)

    def handshake(self) -> None:
        self._pump(self._tls.do_handshake)
        self._trace.tls_version = self._tls.version()

    def version(self) -> str | None:
        return self._tls.version()

    def _pump(self, op, *args):
        """Run ``op`` on the TLS object, sending what it writes and feeding it what the server sends until it
        completes."""
        while True:
            try:
                result = op(*args)
            except ssl.SSLWantReadError:
                self._flush()
                data = self._raw.recv(TLS_READ)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        if self._outgoing.pending:
            self._raw.sendall(self._outgoing.read())

    # -- writing -------------------------------------------------------------------------------------------
    def sendall(self, data: bytes, *args) -> None:
        view = memoryview(data)
        while view:
            view = view[self._pump(self._tls.write, view):]
        self._record(UP, bytes(data))


    # -- reading -------------------------------------------------------------------------------------------
    def recv(self, bufsize: int, *args) -> bytes:
        try:
            data = self._pump(self._tls.read, bufsize)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # close_notify, or a close without it: the end
            data = b""
        if data:
            self._record(DOWN, data)
        return data


    def _record(self, direction: str, data: bytes) -> None:
        trace = self._trace
        target = trace.chunks if trace.compressed is None else trace.compressed  # compression above: its stream
        target.append(Chunk(direction, time.perf_counter_ns(), data))



class DeflateSocket(_Layer):
    """COMPRESS=DEFLATE (RFC 4978) over a :class:`TracedSocket` or a :class:`TLSSocket`, for imaplib: the same
    calls, the protocol's bytes recorded into ``trace.chunks`` and the deflate stream by the layer below.

    Raw deflate (``wbits=-15``), each write flushed with ``Z_SYNC_FLUSH`` as RFC 4978 4 asks, at zlib's default
    level (ours: what NeoMutt and Thunderbird ask of zlib is not checked here). A read returns at most
    ``bufsize`` bytes; what one compressed chunk inflates to beyond that waits for the next read (it is recorded
    once, when it arrived). Corrupt data from the server is an ``OSError`` (imaplib's ``abort`` path)."""

    def __init__(self, raw, trace: Trace) -> None:
        self._raw = raw
        self._trace = trace
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        self._ready = b""
        trace.compressed = list(trace.chunks)  # what went before was both the protocol's bytes and the stream
        if trace.wire is None:  # no TLS: the stream is the TCP payload; the traced socket records into it
            trace.wire = trace.compressed

    # -- writing -------------------------------------------------------------------------------------------
    def sendall(self, data: bytes, *args) -> None:
        self._raw.sendall(self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH))
        self._record(UP, bytes(data))


    # -- reading -------------------------------------------------------------------------------------------
    def recv(self, bufsize: int, *args) -> bytes:
        while not self._ready:
            data = self._raw.recv(TLS_READ)
            if not data:
                return b""
            try:
                self._ready = self._inflate.decompress(data)
            except zlib.error as exc:
                raise OSError(f"COMPRESS=DEFLATE stream from the server is corrupt: {exc}") from None
            if self._ready:
                self._record(DOWN, self._ready)
        out, self._ready = self._ready[:bufsize], self._ready[bufsize:]
        return out


    def _record(self, direction: str, data: bytes) -> None:
        self._trace.chunks.append(Chunk(direction, time.perf_counter_ns(), data))



def traced_connection(host: str, port: int, timeout: float | None, trace: Trace) -> TracedSocket:
    """Connect to ``host:port`` and return a :class:`TracedSocket`; stamps ``trace.t_connect_ns`` first."""
    trace.t_connect_ns = time.perf_counter_ns()
    sock = socket.create_connection((host, port), timeout)
    return TracedSocket(sock, trace)


def perf_to_epoch_offset_ns() -> int:
    """``time.time_ns() - time.perf_counter_ns()``, from the sample with the narrowest bracket of five."""
    best = None
    for _ in range(5):
        a = time.perf_counter_ns()
        wall = time.time_ns()
        b = time.perf_counter_ns()
        cand = (b - a, wall - (a + b) // 2)
        if best is None or cand[0] < best[0]:
            best = cand
    return best[1]
