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
(the parser's :class:`~mailstudy.protocol.events.Encrypted` event). Times are the capture's float seconds
(``time_scale=1.0``); ``t_start`` is the client's SYN when captured (docs/design.md, "Words": duration runs from
connect()), else the connection's first packet. ``time_to_list_s`` is None: a capture does not know when the user saw the list.

Speed and memory: packets stream from the reader into reassembly as plain tuples (``read_tcp_tuples`` ->
``reassemble_tuples``: no TcpPacket per packet); reassembly must hold every connection's chunks until the end of
the file, as the contract hands back each ``TcpConnection``; it keeps them as plain ``(direction, t, data)``
tuples (``chunk_tuples``), which the cyclic garbage collector stops visiting once it has seen them
(``TcpConnection.chunks`` makes the ``StreamChunk`` objects only when asked). Each run of chunks in one direction
goes to the parser in one call (``feed_lists``, ``feed_many`` for two lists). The parsers do
not copy payloads (IMAP literals, POP3 data) unless ``keep_payloads=True``: the bytes stay available in
``connection.stream()``, and not copying them keeps a 1,000,000-packet capture under 1 GB. ``pause_gc=True``
(for a command line only) switches the cyclic garbage collector off during the call; bench/analyze.py measures
both.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator

from mailstudy.net.pcap import PcapError, PcapStats, read_tcp_tuples
from mailstudy.net.reassembly import TcpConnection, reassemble_tuples
from mailstudy.protocol import make_parser
from mailstudy.protocol import metrics as _metrics
from mailstudy.protocol.classify import IMPLICIT_TLS_PORTS, WELL_KNOWN_PORTS
from mailstudy.protocol.classify import classify as classify_stream
from mailstudy.protocol.events import Encrypted, Exchange, ParseWarning
from mailstudy.wire import METRIC_KEYS, Flight

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["Analysis", "SessionAnalysis", "analyze_pcap", "classify", "PcapError", "WELL_KNOWN_PORTS"]

_MAX_SESSION_WARNINGS = 200
_new_tuple = tuple.__new__  # a Flight without NamedTuple's Python-level __new__ (one per run of a big capture)


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


SESSION_COLUMNS = ["client", "server", "protocol", "port", "encrypted", "packets", *METRIC_KEYS]


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


def _feed_runs(feed_many, chunks: list) -> list[Flight]:
    """Feed every chunk, in capture order, with its own time; return the flights for the metrics.

    ``chunks`` are ``(direction, t, data)`` tuples (``TcpConnection.chunk_tuples``). A run of consecutive chunks
    in one direction goes to the parser in one ``feed_many`` (the same events as a ``feed`` per chunk, times
    included: the parsers decide on bytes and take each byte's time from its chunk), and is one
    :class:`~mailstudy.wire.Flight` for the metrics (reassembly's chunks are never empty, so a run is a
    flight). ``feed_many`` None: only the flights.
    """
    flights: list[Flight] = []
    add = flights.append
    run_dir = None
    datas: list = []
    ts: list = []
    for direction, t, data in chunks:
        if direction != run_dir:
            if datas:
                if feed_many is not None:
                    feed_many(run_dir, datas, ts)
                add(_new_tuple(Flight, (run_dir, sum(map(len, datas)), ts[0], max(ts))))
            run_dir = direction
            datas = [data]
            ts = [t]
        else:
            datas.append(data)
            ts.append(t)
    if datas:
        if feed_many is not None:
            feed_many(run_dir, datas, ts)
        add(_new_tuple(Flight, (run_dir, sum(map(len, datas)), ts[0], max(ts))))
    return flights


def _by_index(e: Exchange) -> int:
    return e.index


def analyze_connection(conn: TcpConnection, protocol: str, index: int = 0,
                       keep_payloads: bool = False, note: str = "", fast: bool = True) -> SessionAnalysis:
    """Parse one reassembled connection as ``protocol`` and compute its metrics (the one definition).

    ``fast=False`` feeds the parser chunk by chunk through its public ``feed`` (the reference the tests compare
    the fast path with).
    """
    parser = make_parser(protocol)
    parser.keep_payloads = keep_payloads  # without: literals and POP3 data are counted, never copied
    chunks = conn.chunk_tuples
    flights = _feed_runs(parser.feed_lists if fast else None, chunks)
    if not fast:
        for direction, t, data in chunks:
            parser.feed(direction, data, t)
    parser.close(conn.t_last)
    events = parser.events()
    exchanges = sorted((e for e in events if e.__class__ is Exchange), key=_by_index)
    port = conn.server[1]
    encrypted = port in IMPLICIT_TLS_PORTS or any(e.__class__ is Encrypted for e in events)
    t_start = conn.t_syn if conn.t_syn is not None else conn.t_first
    m = _metrics.session_metrics(flights, exchanges, t_start=t_start, t_list_ready=None, time_scale=1.0)
    row = {"client": _endpoint(conn.client), "server": _endpoint(conn.server), "protocol": protocol,
           "port": port, "encrypted": encrypted, "packets": conn.packets, **m.as_row()}
    warnings: list[str] = []
    if note:
        warnings.append(note)
    warnings.extend(conn.warnings)
    if not chunks:
        warnings.append("no payload in either direction (connection set up but nothing sent)")
    for e in events:
        if isinstance(e, ParseWarning):
            if len(warnings) >= _MAX_SESSION_WARNINGS:
                warnings.append("(further parser warnings suppressed)")
                break
            warnings.append(_warning_text(e))
    return SessionAnalysis(index=index, connection=conn, protocol=protocol, port=port, encrypted=encrypted,
                           events=events, exchanges=exchanges, metrics=row, warnings=warnings)


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


def analyze_pcap(path: str | os.PathLike, ports: Iterable[int] = (), progress: bool = False, *,
                 keep_payloads: bool = False, pause_gc: bool = False) -> Analysis:
    """Read a pcap/pcapng file and return its IMAP/POP3 sessions with exchanges and metrics.

    ``ports``: extra server ports to treat as mail (the protocol is then told by the greeting). Raises
    :class:`~mailstudy.net.pcap.PcapError` (a one-line message) when the file cannot be read at all; damage later in
    the file becomes warnings. ``keep_payloads``: keep IMAP literals / POP3 data inside the exchanges.

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
    path = os.fspath(path)
    ports = {int(p) for p in ports}
    stats = PcapStats()
    packets = read_tcp_tuples(path, stats)  # raises PcapError now if the file is unreadable
    if progress:
        packets = _with_progress(packets, path)
    conns = reassemble_tuples(packets)
    sessions: list[SessionAnalysis] = []
    warnings: list[str] = list(stats.warnings)
    if stats.suppressed_warnings:
        warnings.append(f"{stats.suppressed_warnings} more reader warnings suppressed")
    non_mail_ports: dict[int, int] = {}
    for conn in conns:
        protocol, why = classify(conn, ports)
        if protocol is None:
            non_mail_ports[conn.server[1]] = non_mail_ports.get(conn.server[1], 0) + 1
            if why:
                warnings.append(f"TCP stream {conn.index} ({_endpoint(conn.client)} -> "
                                f"{_endpoint(conn.server)}): {why}; not analyzed")
            continue
        sessions.append(analyze_connection(conn, protocol, len(sessions), keep_payloads, why))
    non_mail = sum(non_mail_ports.values())
    if non_mail:
        shown = ", ".join(str(p) for p in sorted(non_mail_ports)[:10])
        more = ", ..." if len(non_mail_ports) > 10 else ""
        warnings.append(f"{non_mail} TCP connection{'s' if non_mail != 1 else ''} not IMAP or POP3 "
                        f"(server port{'s' if len(non_mail_ports) != 1 else ''} {shown}{more}): skipped")
    if stats.non_tcp:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.non_tcp_kinds.items()))
        warnings.append(f"{stats.non_tcp} packets are not TCP ({kinds}): skipped")
    return Analysis(path=path, sessions=sessions, warnings=warnings, stats=stats, connections=len(conns),
                    non_mail=non_mail)
