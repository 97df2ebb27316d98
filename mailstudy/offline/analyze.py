"""Turn a capture file into mail sessions, exchanges and metrics: the pcap side of "one definition".

Why: a number in a chart must be recomputable from the capture beside it, and a student must be able to point
the tool at any pcap and see what IMAP or POP3 really sent. This module only *wires* the pieces that own the
definitions: :mod:`mailstudy.net.pcap` reads packets, :mod:`mailstudy.net.reassembly` rebuilds the streams,
:mod:`mailstudy.protocol` turns bytes into exchanges and :mod:`mailstudy.protocol.metrics` computes every number. Nothing
here counts a byte or a round trip in a way of its own.

Which connections are mail sessions: :mod:`mailstudy.protocol.classify` decides (by port and greeting), the
same classifier redaction uses; everything else is not mail and yields no session, only a count in the file's
warnings.

A session is *encrypted* when its port is 993/995, its first bytes are TLS records, or STARTTLS/STLS succeeded
(the parser's :class:`~mailstudy.protocol.events.Encrypted` event; not its subclass ``Compressed``, COMPRESS
read inflated). Times are the capture's float seconds
(``time_scale=1.0``); ``t_start`` is the client's SYN when captured (docs/design.md, "Words": duration runs from
connect()), else the connection's first packet. ``time_to_list_s`` is None: a capture does not know when the user saw the list.

Streaming and memory: :class:`SessionStream` (``iter_sessions``) reads packets as plain tuples
(``read_tcp_tuples``: no TcpPacket per packet) into an incremental :class:`~mailstudy.net.reassembly.Reassembler`
batch by batch; after each batch every connection's new chunks go to its :class:`SessionBuilder` (classifier,
then parser: the runs of chunks one way each, in one ``feed_runs`` call) and are released, and a connection
that is over is summarized, yielded and forgotten. So memory is bounded by the open connections, not by the
file (bench/analyze.py, 2026-12-04: 165 MiB peak for 1.2 M packets, 179 MiB for 5 M). A classic pcap file is
read by a fast path (``columns``, the default), handed over at the same packets as the tuple path
(``columns=False``, the reference both must equal): where the compiled walk is built
(:mod:`mailstudy.net._walk`, picked by :mod:`mailstudy.compiled`), its records are walked in C straight into
the reassembler (tests/test_compiled_walk.py), and each hand-over is cut into runs in C
(:mod:`mailstudy.offline._drive`); else blocks are decoded with numpy (:mod:`mailstudy.net.pcap_batches`) and runs
of in-order segments reassembled in bulk (``Reassembler.feed_columns``; tests/test_fast_path.py).
:func:`analyze_pcap` is the same engine holding every connection's chunks (``keep_streams``) to the end of the
file, for callers that want ``connection.stream()``.
The parsers do not copy payloads (IMAP literals, POP3 data) unless ``keep_payloads=True``. ``pause_gc=True``
(for a command line only) switches the cyclic garbage collector off during the call.

Gaps: reassembly marks where each gap sits among the chunks (``gap_marks``); the builder tells the parser
(``parser.gap``) between the runs before and after it, so a literal with a hole still ends where its length
says and every exchange that lost bytes carries them (``Exchange.missing``; the session row's
``exchanges_incomplete`` and ``bytes_missing``). A connection caught mid-stream is read from the first line
the parser recognizes (``parser.resume``) and, like one with only one side captured, marked ``partial``.

COMPRESS=DEFLATE: an IMAP connection's runs go to the parser through an :class:`~mailstudy.offline.inflate.
Inflater`, which passes them through until the tagged OK of COMPRESS and inflates both directions from there on;
the session's ``bytes_*`` are then the protocol's and ``compressed_bytes_*`` the deflated wire.
"""

from __future__ import annotations

import gc
import os
from itertools import groupby, islice
from operator import itemgetter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator

from mailstudy.compiled import compiled_module
from mailstudy.net.pcap import PcapError, PcapReader, PcapStats, read_tcp_tuples
from mailstudy.net.reassembly import Reassembler, TcpConnection
from mailstudy.offline.inflate import Inflater
from mailstudy.protocol import make_parser
from mailstudy.protocol import metrics as _metrics
from mailstudy.protocol.classify import FIRST_LINE_MAX, IMPLICIT_TLS_PORTS, WELL_KNOWN_PORTS, first_payload
from mailstudy.protocol.classify import classify as classify_stream
from mailstudy.protocol.events import DOWN, UP, Encrypted, Exchange, ParseWarning
from mailstudy.wire import METRIC_KEYS, Flight

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["Analysis", "SessionAnalysis", "SessionBuilder", "SessionStream", "analyze_pcap", "iter_sessions",
           "analyze_connection", "classify", "PcapError", "WELL_KNOWN_PORTS"]

_MAX_SESSION_WARNINGS = 200
_new_tuple = tuple.__new__  # a Flight without NamedTuple's Python-level __new__ (one per run of a big capture)
_direction, _time, _data = itemgetter(0), itemgetter(1), itemgetter(2)  # of a (direction, t, data) chunk


@dataclass
class SessionAnalysis:
    """One mail session found in a capture, with its exchanges and metrics."""

    index: int  # order of the session in the file (0, 1, ...: mail sessions only)
    connection: TcpConnection  # from mailstudy.net.reassembly (connection.index is tshark's tcp.stream)
    protocol: str  # "imap" | "pop3"
    port: int  # server port
    encrypted: bool  # IMAPS/POP3S from the start, or after STARTTLS/STLS
    events: list  # parser events (Greeting, Exchange, Encrypted, ParseWarning, credential Span)
    exchanges: list[Exchange]  # sorted by Exchange.index (order sent)
    metrics: dict  # session_metrics(...) keys + client, server, protocol, packets, encrypted
    warnings: list[str] = field(default_factory=list)
    file: str = ""  # the capture it came from
    partial: bool = False  # the capture starts mid-connection, or holds only one side of it

    @property
    def t_start(self) -> float:
        c = self.connection
        return c.t_syn if c.t_syn is not None else c.t_first

    def exchanges_frame(self) -> "pandas.DataFrame":
        """This session's exchanges (metrics.exchanges_frame, times from the session's start)."""
        frame = _metrics.exchanges_frame(self.exchanges, time_scale=1.0, t_start=self.t_start)
        frame.insert(0, "session", self.index)
        return frame


@dataclass
class Analysis:
    """Everything found in one capture file."""

    path: str
    sessions: list[SessionAnalysis]
    warnings: list[str]
    stats: PcapStats  # from mailstudy.net.pcap
    connections: int = 0  # TCP connections in the file, mail or not
    non_mail: int = 0  # TCP connections that are not IMAP/POP3 sessions

    def sessions_frame(self) -> "pandas.DataFrame":
        """One row per session: its metrics plus ``session``, ``stream`` (tcp.stream) and ``warnings`` (count)."""
        import pandas as pd

        rows = []
        for s in self.sessions:
            rows.append({"session": s.index, "stream": s.connection.index, **s.metrics,
                         "warnings": len(s.warnings)})
        columns = ["session", "stream", *SESSION_COLUMNS, "warnings"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame

    def exchanges_frame(self) -> "pandas.DataFrame":
        """One row per exchange of every session, with a ``session`` column (times from each session's start)."""
        import pandas as pd

        frames = [s.exchanges_frame() for s in self.sessions if s.exchanges]
        if not frames:
            return pd.DataFrame(columns=["session", *_metrics.FRAME_COLUMNS])
        return pd.concat(frames, ignore_index=True)


SESSION_COLUMNS = ["client", "server", "protocol", "port", "encrypted", "packets", *METRIC_KEYS, *_metrics.LOSS_KEYS]


# ---- recognising mail ----------------------------------------------------------------------------------------
def _endpoint(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def classify(conn: TcpConnection, ports: Iterable[int] = ()) -> tuple[str | None, str]:
    """The protocol of a connection (``"imap"``, ``"pop3"`` or None) and why: :func:`mailstudy.protocol.classify.
    classify` on its server port and first bytes."""
    return classify_stream(conn.server[1], conn.chunk_tuples, ports)


# ---- one session ---------------------------------------------------------------------------------------------
def _warning_text(w: ParseWarning) -> str:
    return f"{w.direction} stream, offset {w.offset}: {w.message}"


def _feed_runs(feeder, chunks: list, drive=None) -> list[Flight]:
    """Feed every chunk, in capture order, with its own time; return the flights for the metrics.

    ``chunks`` are ``(direction, t, data)`` tuples (``TcpConnection.chunk_tuples``). A run of consecutive chunks
    in one direction is one ``(direction, datas, ts)`` for the parser's ``feed_runs`` (all of them in one call:
    the same events as a ``feed`` per chunk, times included: the parsers decide on bytes and take each byte's
    time from its chunk), and is one :class:`~mailstudy.wire.Flight` for the metrics (reassembly's chunks are
    never empty, so a run is a flight). ``feeder`` None: only the flights. ``drive``: the compiled
    ``mailstudy.offline._drive``, which makes the same runs and flights in C.
    """
    if drive is not None:
        runs, flights = drive.runs_and_flights(chunks, Flight)
        if feeder is not None and runs:
            feeder.feed_runs(runs)
        return flights
    flights: list[Flight] = []
    runs: list[tuple[str, list, list]] = []
    add = flights.append
    add_run = runs.append
    for direction, run in groupby(chunks, _direction):
        run = list(run)
        datas = list(map(_data, run))
        ts = list(map(_time, run))
        add_run((direction, datas, ts))
        add(_new_tuple(Flight, (direction, sum(map(len, datas)), ts[0], max(ts))))
    if feeder is not None and runs:
        feeder.feed_runs(runs)
    return flights


def _feed_with_gaps(parser, chunks: list, marks: list, t_end: float | None = None) -> None:
    """The reference path: every chunk through the parser's public ``feed``, each gap through ``gap``."""
    marks = iter(marks)
    mark = next(marks, None)
    for i, (direction, t, data) in enumerate(chunks):
        while mark is not None and mark[0] == i:
            parser.gap(mark[1], mark[2], t)
            mark = next(marks, None)
        parser.feed(direction, data, t)
    while mark is not None:
        parser.gap(mark[1], mark[2], t_end)
        mark = next(marks, None)


def _by_index(e: Exchange) -> int:
    return e.index


def _merge(flights: list[Flight], more: list[Flight]) -> None:
    """Append ``more`` to ``flights``; a flight cut in two by where a hand-over (or a gap) fell is one flight."""
    if more and flights and flights[-1][0] == more[0][0]:
        a, b = flights[-1], more[0]
        flights[-1] = _new_tuple(Flight, (a[0], a[1] + b[1], a[2], max(a[3], b[3])))
        more = more[1:]
    flights.extend(more)


HOLD_MAX = 1 << 20  # bytes held for the classifier at most: then it decides with what it has (one side only)


class SessionBuilder:
    """One connection's analysis, built as its chunks come (:meth:`add`), finished by :meth:`end`.

    Until the protocol is known it holds the first chunks (the classifier wants the server's first line and the
    client's first two bytes; :func:`mailstudy.protocol.classify.first_payload` says when it has them); from
    then on each hand-over goes straight to the parser and only the flights and the parser's own state are
    kept. A connection that is not mail keeps nothing. ``protocol`` given: no classifying (analyze_connection).
    A connection whose client sends nothing (a capture with one side only) is classified once :data:`HOLD_MAX`
    bytes are held, so it cannot hold the whole stream.
    """

    def __init__(self, ports: Iterable[int] = (), keep_payloads: bool = False, protocol: str | None = None,
                 note: str = "", fast: bool = True, decrypted: bool = False) -> None:
        self.ports = ports
        self.decrypted = decrypted  # the chunks are the plaintext inside TLS (parser.decrypted)
        self.keep_payloads = keep_payloads
        self.fast = fast
        self.protocol = protocol
        self.why = note
        self.decided = protocol is not None
        self.held: list = []
        self.held_marks: list = []
        self.held_bytes = 0
        self.parser = None
        self.feeder = None
        self.flights: list[Flight] = []
        self.payload = False  # any chunk seen
        self.resumed = False  # a mid-stream connection's parser was told so
        self.drive = compiled_module("mailstudy.offline._drive") if fast else None  # runs cut in C, when built
        if protocol is not None:
            self._start()

    def _start(self) -> None:
        self.parser = make_parser(self.protocol)
        self.parser.keep_payloads = self.keep_payloads  # without: literals and POP3 data are counted, not copied
        self.parser.decrypted = self.decrypted
        # what the runs are fed to: IMAP through the inflater (a pass-through until COMPRESS is accepted)
        self.feeder = Inflater(self.parser) if self.protocol == "imap" else self.parser

    def add(self, conn: TcpConnection, chunks: list, marks: list) -> None:
        """The connection's next chunks (``(direction, t, data)``) and the gap marks among them."""
        if chunks:
            self.payload = True
        if not self.decided:
            n = len(self.held)
            self.held.extend(chunks)
            self.held_marks.extend((pos + n, d, size) for pos, d, size in marks)
            self.held_bytes += sum(map(len, map(_data, chunks)))
            _first, down, up = first_payload(self.held)
            if (not ((b"\n" in down or len(down) >= FIRST_LINE_MAX) and len(up) >= 2)
                    and self.held_bytes < HOLD_MAX):
                return  # the classifier cannot tell yet
            self._decide(conn)
            chunks, marks = self.held, self.held_marks
            self.held, self.held_marks = [], []
        if self.parser is not None:
            self._feed(conn, chunks, marks)

    def _decide(self, conn: TcpConnection) -> None:
        self.decided = True
        self.protocol, self.why = classify_stream(conn.server[1], self.held, self.ports)
        if self.protocol is not None:
            self._start()

    def _feed(self, conn: TcpConnection, chunks: list, marks: list) -> None:
        parser = self.feeder
        if conn.mid_stream and not self.resumed:  # read from the first line the parser recognizes
            self.resumed = True
            self.parser.resume(UP, conn.t_first)
            self.parser.resume(DOWN, conn.t_first)
        if not self.fast:
            _merge(self.flights, _feed_runs(None, chunks))
            _feed_with_gaps(parser, chunks, marks, conn.t_last)
            return
        if not marks:
            _merge(self.flights, _feed_runs(parser, chunks, self.drive))
            return
        # the parser is told where each gap sits (parser.gap), between the runs fed before and after it
        at = 0
        for pos, direction, size in marks:
            _merge(self.flights, _feed_runs(parser, chunks[at:pos], self.drive))
            parser.gap(direction, size, chunks[pos][1] if pos < len(chunks) else conn.t_last)
            at = pos
        _merge(self.flights, _feed_runs(parser, chunks[at:], self.drive))

    def end(self, conn: TcpConnection, index: int, chunks: list = (), marks: list = ()) -> SessionAnalysis | None:
        """Finish: the last chunks, then the session (None when the connection is not mail)."""
        self.add(conn, list(chunks), list(marks))
        if not self.decided:
            self._decide(conn)
            if self.parser is not None:
                self._feed(conn, self.held, self.held_marks)
            self.held, self.held_marks = [], []
        if self.parser is None:
            return None
        parser, protocol, flights = self.parser, self.protocol, self.flights
        parser.close(conn.t_last)
        events = parser.events()
        exchanges = sorted((e for e in events if e.__class__ is Exchange), key=_by_index)
        port = conn.server[1]
        encrypted = port in IMPLICIT_TLS_PORTS or any(e.__class__ is Encrypted for e in events)
        t_start = conn.t_syn if conn.t_syn is not None else conn.t_first
        m = _metrics.session_metrics(flights, exchanges, t_start=t_start, t_list_ready=None, time_scale=1.0)
        inflater = self.feeder if self.feeder is not parser else None
        if inflater is not None:
            m = inflater.metrics(m)
        row = {"client": _endpoint(conn.client), "server": _endpoint(conn.server), "protocol": protocol,
               "port": port, "encrypted": encrypted, "packets": conn.packets, **m.as_row(),
               **_metrics.loss_counts(exchanges, conn.gap_bytes)}
        warnings: list[str] = []
        if self.why:
            warnings.append(self.why)
        warnings.extend(conn.warnings)
        if inflater is not None and inflater.broken:
            warnings.append(inflater.broken)
        if not self.payload:
            warnings.append("no payload in either direction (connection set up but nothing sent)")
        for e in events:
            if isinstance(e, ParseWarning):
                if len(warnings) >= _MAX_SESSION_WARNINGS:
                    warnings.append("(further parser warnings suppressed)")
                    break
                warnings.append(_warning_text(e))
        if inflater is not None:
            inflater.release()  # parser and inflater hold each other: without this the pair outlives the session
        self.parser = self.feeder = None
        one_side = (conn.bytes_up > 0 and conn.bytes_down == 0) or (conn.bytes_down > 0 and conn.bytes_up == 0
                                                                     and conn.t_syn is None)
        if one_side:
            warnings.append("only one side of the connection is in the capture: the session is partial")
        return SessionAnalysis(index=index, connection=conn, protocol=protocol, port=port, encrypted=encrypted,
                               events=events, exchanges=exchanges, metrics=row, warnings=warnings,
                               partial=conn.mid_stream or one_side)


def analyze_connection(conn: TcpConnection, protocol: str, index: int = 0,
                       keep_payloads: bool = False, note: str = "", fast: bool = True,
                       decrypted: bool = False) -> SessionAnalysis:
    """Parse one reassembled connection as ``protocol`` and compute its metrics (the one definition).

    ``fast=False`` feeds the parser chunk by chunk through its public ``feed`` (the reference the tests compare
    the fast path with). ``decrypted``: the chunks after STARTTLS/STLS are the plaintext inside TLS (a key log
    opened them): the parser reads on after the upgrade instead of only counting.
    """
    return SessionBuilder((), keep_payloads, protocol, note, fast, decrypted).end(conn, index, conn.chunk_tuples,
                                                                                   conn.gap_marks)


# ---- the whole file ------------------------------------------------------------------------------------------
def _with_progress(packets: Iterator[tuple], path: str) -> Iterator[tuple]:
    from tqdm.auto import tqdm

    bar = tqdm(desc=os.path.basename(path), unit=" packets", unit_scale=True, mininterval=0.5)
    n = 0
    try:
        for p in packets:
            yield p
            n += 1
            if not n & 0xFFFF:
                bar.update(0x10000)
        bar.update(n & 0xFFFF)
    finally:
        bar.close()


BATCH = 16384  # packets reassembled between two hand-overs to the parsers
LINGER_S = 2.0  # capture seconds a closed connection is kept for its last packets before it is summarized


class SessionStream:
    """The mail sessions of one capture, each yielded as soon as its connection is over; memory is bounded by
    the connections still open, not by the file.

    Packets are reassembled in batches of :data:`BATCH`; after each batch every connection's new chunks go to
    its parser (:class:`SessionBuilder`) and are released, and every connection that is over (both FINs or a
    RST, then :data:`LINGER_S` of capture time for its last ACKs) is summarized, yielded and forgotten. So
    sessions come in the order they end, numbered in that order (``index``; ``connection.index`` is tshark's
    ``tcp.stream`` either way). The file-level results (``stats``, ``warnings``, ``connections``,
    ``non_mail``, ``late_packets``) are complete once the iteration has ended.

    ``keep_streams=True`` holds every connection's chunks to the end of the file and summarizes every session
    there, in the order of their first packet: what :func:`analyze_pcap` returns (``connection.stream()``
    whole, retransmissions compared with every first copy). Opening raises
    :class:`~mailstudy.net.pcap.PcapError` at once when the file cannot be read at all.
    """

    def __init__(self, path: str | os.PathLike, ports: Iterable[int] = (), progress: bool = False, *,
                 keep_payloads: bool = False, keep_streams: bool = False, linger_s: float = LINGER_S,
                 packets: Iterable[tuple] | None = None, stats: PcapStats | None = None,
                 batch: int = BATCH, columns: bool | None = None) -> None:
        self.path = os.fspath(path)
        self.batch = max(1, int(batch))
        self.ports = {int(p) for p in ports}
        self.keep_payloads = keep_payloads
        self.keep_streams = keep_streams
        self.linger_s = None if keep_streams else linger_s
        self.stats = stats if stats is not None else PcapStats()
        self._walker = None
        if packets is None and columns is not False and not progress:  # the fast paths
            reader = PcapReader(self.path, self.stats)
            walk = compiled_module("mailstudy.net._walk")  # C over the records (a classic pcap), when built
            if walk is not None and reader.walk_layout() is not None:
                self._walker = walk.Walker(reader, self.batch)
                self._batches = iter(())
            else:  # numpy over blocks
                self._batches = _regroup(reader.pieces(self.batch), self.batch)
        else:
            if packets is None:
                packets = read_tcp_tuples(self.path, self.stats)  # raises PcapError now if the file is unreadable
            packets = iter(_with_progress(packets, self.path) if progress else packets)
            self._batches = iter(lambda: [list(islice(packets, self.batch))], [[]])
        self.warnings: list[str] = []
        self.connections = 0
        self.non_mail = 0
        self.late_packets = 0
        self._conn_warnings: list[str] = []
        self._non_mail_ports: dict[int, int] = {}
        self._sessions = 0

    def __iter__(self) -> Iterator[SessionAnalysis]:
        r = Reassembler()
        builders: dict[int, SessionBuilder] = {}
        keep = self.keep_streams
        fed = self._fed(r)
        while True:
            if next(fed, False):
                if not keep:
                    for conn in r.connections():
                        if conn.chunk_tuples or conn.gap_marks:
                            b = builders.get(conn.index)
                            if b is None:
                                b = builders[conn.index] = SessionBuilder(self.ports, self.keep_payloads)
                            chunks, marks = r.take(conn)
                            b.add(conn, chunks, marks)
                if self.linger_s is not None:
                    for conn in r.ended(self.linger_s):
                        s = self._end(r.finish(conn), builders)
                        if s is not None:
                            yield s
            else:
                for conn in r.finish_all():
                    s = self._end(conn, builders)
                    if s is not None:
                        yield s
                break
        self.connections = len(r.table.tracks)
        self.late_packets = r.late
        self._summarize()

    def _fed(self, r: Reassembler) -> Iterator[bool]:
        """Feed ``r`` one batch per step (True after each; the iterator ends with the file)."""
        walker = self._walker
        if walker is not None:  # mailstudy.net._walk: the records walked in C, batches of the same size
            while walker.feed(r):
                yield True
            return
        for batch in self._batches:
            if not batch:
                return
            for piece in batch:
                if piece.__class__ is list:
                    r.feed(piece)
                else:
                    r.feed_columns(piece)
            del batch, piece
            yield True

    def _end(self, conn: TcpConnection, builders: dict[int, SessionBuilder]) -> SessionAnalysis | None:
        b = builders.pop(conn.index, None) or SessionBuilder(self.ports, self.keep_payloads)
        s = b.end(conn, self._sessions, conn.chunk_tuples, conn.gap_marks)
        if not self.keep_streams:
            conn.chunk_tuples, conn.gap_marks = [], []
        if s is None:
            port = conn.server[1]
            self._non_mail_ports[port] = self._non_mail_ports.get(port, 0) + 1
            if b.why:
                self._conn_warnings.append(f"TCP stream {conn.index} ({_endpoint(conn.client)} -> "
                                           f"{_endpoint(conn.server)}): {b.why}; not analyzed")
            return None
        self._sessions += 1
        s.file = self.path
        return s

    def _summarize(self) -> None:
        stats = self.stats
        warnings: list[str] = list(stats.warnings)
        if stats.suppressed_warnings:
            warnings.append(f"{stats.suppressed_warnings} more reader warnings suppressed")
        warnings.extend(self._conn_warnings)
        non_mail_ports = self._non_mail_ports
        non_mail = self.non_mail = sum(non_mail_ports.values())
        if non_mail:
            shown = ", ".join(str(p) for p in sorted(non_mail_ports)[:10])
            more = ", ..." if len(non_mail_ports) > 10 else ""
            warnings.append(f"{non_mail} TCP connection{'s' if non_mail != 1 else ''} not IMAP or POP3 "
                            f"(server port{'s' if len(non_mail_ports) != 1 else ''} {shown}{more}): skipped")
        if stats.non_tcp:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.non_tcp_kinds.items()))
            warnings.append(f"{stats.non_tcp} packets are not TCP ({kinds}): skipped")
        if self.late_packets:
            warnings.append(f"{self.late_packets} packets came more than {self.linger_s:g} s after their "
                            f"connection had closed, once it was summarized: counted in no session")
        self.warnings = warnings

    def exchanges(self) -> Iterator[tuple[SessionAnalysis, Exchange]]:
        """Every exchange as ``(session, exchange)``, session by session as they end (iterates the stream)."""
        for s in self:
            for e in s.exchanges:
                yield s, e


def _regroup(pieces: Iterator, size: int) -> Iterator[list]:
    """Pieces of packets (lists of tuples, Columns) regrouped into batches of exactly ``size`` packets (the last
    one fewer), each a list of pieces: the batches of the tuple path, so both paths hand over at the same
    packets."""
    out: list = []
    have = 0
    for p in pieces:
        while len(p):
            take = size - have
            part, p = (p, p[:0]) if len(p) <= take else (p[:take], p[take:])
            out.append(part)
            have += len(part)
            if have == size:
                yield out
                out, have = [], 0
    if out:
        yield out


def iter_sessions(path: str | os.PathLike, ports: Iterable[int] = (), progress: bool = False, *,
                  keep_payloads: bool = False, linger_s: float = LINGER_S) -> SessionStream:
    """The mail sessions of a capture as they end, in memory bounded by the open connections (see
    :class:`SessionStream`; its file-level results are complete once the iteration has ended)."""
    return SessionStream(path, ports, progress, keep_payloads=keep_payloads, linger_s=linger_s)


def analyze_pcap(path: str | os.PathLike, ports: Iterable[int] = (), progress: bool = False, *,
                 keep_payloads: bool = False, pause_gc: bool = False) -> Analysis:
    """Read a pcap/pcapng file and return its IMAP/POP3 sessions with exchanges and metrics.

    ``ports``: extra server ports to treat as mail (the protocol is then told by the greeting). Raises
    :class:`~mailstudy.net.pcap.PcapError` (a one-line message) when the file cannot be read at all; damage later in
    the file becomes warnings. ``keep_payloads``: keep IMAP literals / POP3 data inside the exchanges.

    Every connection is held to the end of the file (``connection.stream()`` is whole): for a big capture,
    :func:`iter_sessions` streams in bounded memory instead.

    ``pause_gc``: switch Python's cyclic garbage collector off for the call and back on (if it was on) when it
    returns or raises. The analysis makes no reference cycles, but its long-lived objects (exchanges, events,
    parser state; the stream chunks are tuples the collector stops visiting) make each full collection walk all
    of them: about a tenth of the time on a big capture. It changes process-wide state, so only a command-line
    entry point (which owns the process) should pass True; a library caller or a notebook keeps the default.
    """
    if pause_gc and gc.isenabled():
        gc.disable()
        try:
            return analyze_pcap(path, ports, progress, keep_payloads=keep_payloads)
        finally:
            gc.enable()
    stream = SessionStream(path, ports, progress, keep_payloads=keep_payloads, keep_streams=True)
    sessions = list(stream)
    return Analysis(path=stream.path, sessions=sessions, warnings=stream.warnings, stats=stream.stats,
                    connections=stream.connections, non_mail=stream.non_mail)
