"""Turn a capture file into mail sessions, exchanges and metrics: the pcap side of "one definition".

Why: a number in a chart must be recomputable from the capture beside it, and a student must be able to point
the tool at any pcap and see what IMAP or POP3 really sent. This module only *wires* the pieces that own the
definitions: :mod:`mailstudy.pcap` reads packets, :mod:`mailstudy.reassembly` rebuilds the streams,
:mod:`mailstudy.protocol` turns bytes into exchanges and :mod:`mailstudy.metrics` computes every number. Nothing
here counts a byte or a round trip in a way of its own.

Which connections are mail sessions (first rule that applies wins):

1. The server port is 143 or 993 (IMAP) or 110 or 995 (POP3). If the server's first line clearly says the
   other protocol, the greeting wins (with a warning).
2. The server port is one the caller named (``ports``): the protocol is told by the server's first line.
3. Any other port: the *server speaks first* and its first line starts ``* OK``/``* PREAUTH`` (IMAP) or
   ``+OK`` (POP3). The "server first" condition is what keeps Redis (whose replies are ``+OK`` too, but only
   after the client spoke) out.
Everything else is not mail; it yields no session, only a count in the file's warnings.

A session is *encrypted* when its port is 993/995, its first bytes are TLS records, or STARTTLS/STLS succeeded
(the parser's :class:`~mailstudy.protocol.events.Encrypted` event). Times are the capture's float seconds
(``time_scale=1.0``); ``t_start`` is the client's SYN when captured (DESIGN: duration runs from connect()), else
the connection's first packet. ``time_to_list_s`` is None: a capture does not know when the user saw the list.

Speed and memory: packets stream from the reader into reassembly (which must hold every connection's chunks
until the end of the file, as the contract hands back each ``TcpConnection``). Exchanges drop their payload
copies (IMAP literals, POP3 data) unless ``keep_payloads=True``: the bytes stay available in
``connection.stream()``, and not copying them keeps a 1,000,000-packet capture under 1 GB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator

from mailstudy import metrics as _metrics
from mailstudy.pcap import PcapError, PcapStats, TcpPacket, read_tcp
from mailstudy.protocol import make_parser
from mailstudy.protocol.events import DOWN, Encrypted, Exchange, ParseWarning
from mailstudy.reassembly import TcpConnection, reassemble

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["Analysis", "SessionAnalysis", "analyze_pcap", "classify", "PcapError", "WELL_KNOWN_PORTS"]

WELL_KNOWN_PORTS = {143: "imap", 993: "imap", 110: "pop3", 995: "pop3"}
IMPLICIT_TLS_PORTS = (993, 995)
_FIRST_LINE_MAX = 4096  # bytes of the server's first line looked at to recognise a greeting
_MAX_SESSION_WARNINGS = 200


@dataclass
class SessionAnalysis:
    """One mail session found in a capture, with its exchanges and metrics."""

    index: int  # order of the session in the file (0, 1, ...: mail sessions only)
    connection: TcpConnection  # from mailstudy.reassembly (connection.index is tshark's tcp.stream)
    protocol: str  # "imap" | "pop3"
    port: int  # server port
    encrypted: bool  # IMAPS/POP3S from the start, or after STARTTLS/STLS
    events: list  # parser events (Greeting, Exchange, Encrypted, ParseWarning)
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
    stats: PcapStats  # from mailstudy.pcap
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


SESSION_COLUMNS = ["client", "server", "protocol", "port", "encrypted", "packets", "bytes_up", "bytes_down",
                   "commands", "round_trips", "duration_s", "time_to_list_s", "exchanges_failed"]


# ---- recognising mail ----------------------------------------------------------------------------------------
def _endpoint(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _first_payload(conn: TcpConnection) -> tuple[str | None, bytes, bytes]:
    """(direction of the first payload chunk, start of the down stream, start of the up stream)."""
    first = None
    down = bytearray()
    up = bytearray()
    for ch in conn.chunks:
        if first is None:
            first = ch.direction
        if ch.direction == DOWN:
            if len(down) < _FIRST_LINE_MAX and b"\n" not in down:
                down += ch.data[:_FIRST_LINE_MAX]
        elif len(up) < 2:
            up += ch.data[:2]
        if (b"\n" in down or len(down) >= _FIRST_LINE_MAX) and len(up) >= 2:
            break
    return first, bytes(down), bytes(up)


def _greeting_protocol(down: bytes) -> str | None:
    line = down.split(b"\n", 1)[0]
    if line[:9].upper().startswith((b"* OK", b"* PREAUTH")):
        return "imap"
    if line[:3].upper() == b"+OK":
        return "pop3"
    return None


def _is_tls(start: bytes) -> bool:
    return start[:2] == b"\x16\x03"


def classify(conn: TcpConnection, ports: Iterable[int] = ()) -> tuple[str | None, str]:
    """The protocol of a connection (``"imap"``, ``"pop3"`` or None) and why, by the rules in the module doc."""
    port = conn.server[1]
    first, down, up = _first_payload(conn)
    by_greeting = _greeting_protocol(down) if first == DOWN or port in WELL_KNOWN_PORTS else None
    tls = _is_tls(down) or _is_tls(up)
    if port in WELL_KNOWN_PORTS:
        proto = WELL_KNOWN_PORTS[port]
        if by_greeting and by_greeting != proto and not tls:
            return by_greeting, f"port {port} is {proto}, but the server's first line is {by_greeting}"
        return proto, ""
    if port in set(ports):
        if by_greeting:
            return by_greeting, ""
        if tls:
            return None, f"port {port}: TLS from the start, so the protocol cannot be told from a greeting"
        return None, f"port {port}: the server's first line is not an IMAP or POP3 greeting"
    if first == DOWN and by_greeting:
        return by_greeting, ""
    return None, ""


# ---- one session ---------------------------------------------------------------------------------------------
def _warning_text(w: ParseWarning) -> str:
    return f"{w.direction} stream, offset {w.offset}: {w.message}"


def _strip(e: Exchange) -> None:
    """Drop an exchange's payload copies in place (the exchange was just made by our own parser, nobody else
    holds it; ``dataclasses.replace`` on 300,000 exchanges costs seconds)."""
    if e.literals:
        object.__setattr__(e, "literals", ())
    if e.data:
        object.__setattr__(e, "data", b"")


def _runs(chunks: list) -> list[tuple[str, list]]:
    """Consecutive chunks of one direction grouped: ``[(direction, [chunk, ...]), ...]`` in capture order."""
    runs: list[tuple[str, list]] = []
    cur = None
    direction = None
    for ch in chunks:
        if ch.direction != direction:
            direction = ch.direction
            cur = []
            runs.append((direction, cur))
        cur.append(ch)
    return runs


def _feed(parser, runs: list[tuple[str, list]]) -> None:
    """Feed every chunk, in capture order, with its own time.

    The parsers decide on bytes, never on where a chunk ends, and look up each byte's time from the chunk that
    brought it (protocol/_stream.py), so a run of chunks in one direction can be appended to the parser's
    buffer chunk by chunk and processed once: the same events, times included, at half the cost. Where the
    parser does not offer that buffer (its internals changed), every chunk goes through the public ``feed``.
    The tests check both ways give equal events.
    """
    streams = getattr(parser, "_streams", None)
    pump = getattr(parser, "_pump", None)
    guarded = getattr(parser, "_guarded", None)
    if not (isinstance(streams, dict) and callable(pump) and callable(guarded)):
        for direction, run in runs:
            for ch in run:
                parser.feed(direction, ch.data, ch.t)
        return
    for direction, run in runs:
        stream = streams[direction]
        append = stream.append
        for ch in run:
            append(ch.data, ch.t)
        guarded(pump, direction, run[-1].t)


def _by_index(e: Exchange) -> int:
    return e.index


def analyze_connection(conn: TcpConnection, protocol: str, index: int = 0,
                       keep_payloads: bool = False, note: str = "", fast: bool = True) -> SessionAnalysis:
    """Parse one reassembled connection as ``protocol`` and compute its metrics (the one definition).

    ``fast=False`` feeds the parser chunk by chunk through its public ``feed`` (the reference the tests compare
    the fast path with).
    """
    parser = make_parser(protocol)
    chunks = conn.chunks
    runs = _runs(chunks)
    if fast:
        _feed(parser, runs)
    else:
        for ch in chunks:
            parser.feed(ch.direction, ch.data, ch.t)
    parser.close(conn.t_last)
    events = parser.events()
    exchanges = sorted((e for e in events if e.__class__ is Exchange), key=_by_index)
    if not keep_payloads:
        for e in exchanges:
            _strip(e)
    port = conn.server[1]
    encrypted = port in IMPLICIT_TLS_PORTS or any(e.__class__ is Encrypted for e in events)
    t_start = conn.t_syn if conn.t_syn is not None else conn.t_first
    # A run of chunks one way is one (direction, bytes, last time) to the metrics: sums, flights (round trips)
    # and the last time are the same by construction, and the one definition runs on half the items.
    flights = [(d, sum([len(ch.data) for ch in run]), max([ch.t for ch in run])) for d, run in runs]
    m = _metrics.session_metrics(flights, exchanges, t_start=t_start, t_list_ready=None, time_scale=1.0)
    row = {"client": _endpoint(conn.client), "server": _endpoint(conn.server), "protocol": protocol,
           "port": port, "encrypted": encrypted, "packets": conn.packets, **m}
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
def _with_progress(packets: Iterator[TcpPacket], path: str) -> Iterator[TcpPacket]:
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
                 keep_payloads: bool = False) -> Analysis:
    """Read a pcap/pcapng file and return its IMAP/POP3 sessions with exchanges and metrics.

    ``ports``: extra server ports to treat as mail (the protocol is then told by the greeting). Raises
    :class:`~mailstudy.pcap.PcapError` (a one-line message) when the file cannot be read at all; damage later in
    the file becomes warnings. ``keep_payloads``: keep IMAP literals / POP3 data inside the exchanges.
    """
    path = os.fspath(path)
    ports = {int(p) for p in ports}
    stats = PcapStats()
    packets = read_tcp(path, stats)  # raises PcapError now if the file is unreadable
    if progress:
        packets = _with_progress(packets, path)
    conns = reassemble(packets)
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
