"""Rebuild the two byte streams of every TCP connection in a capture, with a time on every chunk.

Why our own: scapy and dpkt do not reassemble plain TCP payloads, and the protocol parsers need each session's
bytes in order, each chunk stamped with the time it became readable, exactly as the client's traced socket
would have seen them (see docs/design.md, "Pcap analysis"). Pure: packets in, connections out; no files.

The rules, in the order they win:

1. A connection is a 4-tuple, split on port reuse: a SYN (without ACK) starts a new connection unless it
   repeats the ISN of the current connection's SYN (a retransmitted SYN, even after a RST: a client retrying
   the same connect() keeps its ISN, and tshark keeps such retries in one stream too). So a SYN after FIN/RST
   starts a new connection (a new connect() picks a new ISN), as does a SYN on a connection caught without one.
   A SYN-ACK with a new ISN on a finished connection (its SYN missed) also starts one.
   Connections are numbered 0, 1, ... in order of first packet, as tshark's ``tcp.stream``.
2. The client is the side that sent the SYN (or, when only the SYN-ACK was caught, the side that received it).
   A connection caught mid-stream guesses: the side on a mail port (143, 993, 110, 995, 25, 587, 465) is the
   server, else the lower port, else the first packet's destination; ``mid_stream`` is set.
3. Offsets are per direction, relative to ISN+1 (SYN consumes one sequence number), or to the first sequence
   number seen when the capture starts mid-stream; they are unwrapped against the next expected offset, so
   32-bit wrap-around and streams beyond 4 GiB are fine. FIN consumes one number; data after FIN is dropped.
4. The first copy of a byte wins (as tshark does). A retransmission whose bytes differ is a warning
   ("conflicting overlap"); equal retransmissions are counted in ``dup_bytes`` only. A 1-byte keep-alive
   (offset next-1) is not compared.
5. Out-of-order segments are buffered and delivered in order; the chunk they complete carries the time of the
   packet that filled the hole.
6. Gaps are never joined silently. A hole is declared a gap when the receiver's ACK shows it got every byte
   of it (the ACK reaches the first segment buffered after it), or when the connection ends with bytes still
   buffered or acknowledged-but-unseen. One hole is one gap, however many lost segments it spans and however
   the ACKs climbed through it. Each gap is a warning with its direction, offset and size, and counts in
   ``gaps``/``gap_bytes``; the stream goes on after it (its chunks keep the time of their own packets), and
   ``gap_marks`` says where among the chunks it sits, so a parser can be told "n bytes are missing here"
   (``ParserBase.gap``). A segment cut by the snap length delivers what was captured, and its missing tail
   (``wire_len - cap_len``: what the IP header says the capture did not keep) is a gap at once.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from heapq import heappop, heappush
from operator import attrgetter
from typing import TYPE_CHECKING, Callable, Iterable

from mailstudy.net.layouts import MAIL_PORTS
from mailstudy.net.layouts import TH_ACK as ACK
from mailstudy.net.layouts import TH_FIN as FIN
from mailstudy.net.layouts import TH_RST as RST
from mailstudy.net.layouts import TH_SYN as SYN
from mailstudy.net.pcap import PACKET_FIELDS, TcpPacket, read_tcp
from mailstudy.wire import DOWN, UP
from mailstudy.wire import (
    Chunk as StreamChunk,  # bytes that became readable in order, one way, at ``t``
)

if TYPE_CHECKING:  # pragma: no cover
    import os

    import pandas

__all__ = ["StreamChunk", "TcpConnection", "ConnectionTable", "Reassembler", "reassemble", "reassemble_tuples",
           "MAIL_PORTS", "packets_frame"]

_M32 = 0xFFFFFFFF
_MAX_WARNINGS = 50  # per connection
_BULK_MIN = 8  # segments in a run below which feed_columns takes them one by one (numpy's cost per call wins)
SegmentWatcher = Callable[[int, int, int, TcpPacket], None]  # see reassemble()
# a TcpPacket as a tuple in mailstudy.net.pcap.PACKET_FIELDS order
_fields = attrgetter(*PACKET_FIELDS)


@dataclass(slots=True)
class TcpConnection:
    """One TCP connection (a "session"), its two reassembled streams and what went wrong on the way.

    ``bytes_up``/``bytes_down`` count the reassembled stream bytes (each byte once); ``dup_bytes`` the payload
    bytes that arrived again (retransmissions, overlaps); ``gap_bytes`` the bytes the capture missed.
    """

    index: int
    client: tuple[str, int]
    server: tuple[str, int]
    t_first: float
    t_syn: float | None = None
    t_last: float = 0.0
    # the stream chunks as plain ``(direction, t, data)`` tuples, in order: what ``chunks`` is made from. Tuples
    # of a str, a float and bytes are left alone by the cyclic garbage collector once it has seen them, so a
    # 1,000,000-packet capture's ~650,000 chunks cost no collection time while nobody asks for ``chunks``.
    chunk_tuples: list[tuple[str, float, bytes]] = field(default_factory=list)
    packets: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    mid_stream: bool = False
    closed: bool = False
    warnings: list[str] = field(default_factory=list)
    dup_bytes: int = 0
    reset: bool = False
    # where each gap sits among the chunks: ``(position, direction, size)``, the gap's bytes are missing right
    # before ``chunk_tuples[position]``'s direction continues (position == len(chunk_tuples): at the end). The
    # analysis tells the parser about them (``parser.gap``), so a literal with a hole keeps its length.
    gap_marks: list[tuple[int, str, int]] = field(default_factory=list)
    _chunks: list[StreamChunk] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def chunks(self) -> list[StreamChunk]:
        """The stream chunks in the order they became readable, as :class:`StreamChunk` (made on first use from
        ``chunk_tuples``, then kept)."""
        made = self._chunks
        if made is None:
            made = self._chunks = [StreamChunk(*ch) for ch in self.chunk_tuples]
        return made

    def stream(self, direction: str) -> bytes:
        """All bytes one way ("up" = client to server, "down"), in order, gaps left out."""
        if direction not in (UP, DOWN):
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
        return b"".join([c[2] for c in self.chunk_tuples if c[0] == direction])

    def warn(self, message: str) -> None:
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(message)
        elif len(self.warnings) == _MAX_WARNINGS:
            self.warnings.append("(further warnings suppressed)")


class _Dir:
    """Reassembly state of one direction."""

    __slots__ = ("name", "base", "next", "pending", "fin", "ack", "seq_no", "syn", "gaps", "checks", "handed", "prev_handed")

    def __init__(self, name: str) -> None:
        self.name = name
        self.base: int | None = None  # sequence number of offset 0
        self.next = 0  # next offset expected in order
        self.pending: list = []  # heap of (offset, arrival no, data, t, packet index)
        self.fin: int | None = None  # offset of the FIN
        self.ack: int | None = None  # the peer's latest ACK number, raw (turned into an offset when needed)
        self.seq_no = 0
        self.syn: int | None = None  # ISN, when the SYN was seen
        self.gaps: list[tuple[int, int]] = []  # (offset, size)
        self.checks: list[tuple[int, bytes, int]] = []  # overlaps to compare at the end: (offset, data, index)
        self.handed = 0  # stream offset where the chunks still held start (Reassembler.take hands earlier ones out)
        self.prev_handed = 0  # ... and where the chunks of the last hand-over, kept for comparisons, start


class _Track:
    """A connection while it is being reassembled; shed at the end."""

    __slots__ = ("conn", "dirs", "index", "finished", "client_isn", "server_isn", "keys", "prev")

    def __init__(self, conn: TcpConnection | None, index: int) -> None:
        self.conn = conn
        self.keys: tuple[tuple, tuple] = ((), ())  # (client address, port), (server address, port)
        self.prev: list = []  # the chunks of the last hand-over (Reassembler.take), kept for comparisons
        self.dirs = (_Dir(UP), _Dir(DOWN))
        self.index = index
        self.finished = False  # FIN or RST seen
        self.client_isn: int | None = None
        self.server_isn: int | None = None


def _server_is_dst(p: TcpPacket) -> bool:
    """Which side of a packet is the server, for a connection whose first packet is ``p``."""
    f = p.flags
    if f & SYN:
        return not (f & ACK)  # SYN: dst is the server; SYN-ACK: src is
    s_mail, d_mail = p.sport in MAIL_PORTS, p.dport in MAIL_PORTS
    if s_mail != d_mail:
        return d_mail
    if p.sport != p.dport:
        return p.dport < p.sport
    return True


class ConnectionTable:
    """Map packets to connections, split on port reuse (rule 1). Shared by reassembly and ``packets_frame``."""

    def __init__(self, make_conns: bool = False) -> None:
        self.table: dict[tuple, tuple[_Track, int]] = {}  # (src, sport, dst, dport) -> (track, 0 up | 1 down)
        # the same keys -> (connection, this direction's _Dir, the other's), for reassembly's fast path
        self.fast: dict[tuple, tuple[TcpConnection, _Dir, _Dir]] = {}
        self.tracks: list[_Track] = []
        self._make = make_conns
        self.on_segment: SegmentWatcher | None = None
        self.late = 0  # packets of connections already finished and released (see release)

    def _new(self, p: TcpPacket) -> tuple[_Track, int]:
        to_dst = _server_is_dst(p)
        client = (p.src, p.sport) if to_dst else (p.dst, p.dport)
        server = (p.dst, p.dport) if to_dst else (p.src, p.sport)
        idx = len(self.tracks)
        conn = None
        if self._make:
            conn = TcpConnection(idx, client, server, p.t, mid_stream=not p.flags & SYN)
        tr = _Track(conn, idx)
        tr.keys = (client, server)
        self.tracks.append(tr)
        up_key = (client[0], client[1], server[0], server[1])
        down_key = (server[0], server[1], client[0], client[1])
        self.table[up_key] = (tr, 0)
        self.table[down_key] = (tr, 1)
        if conn is not None:
            self.fast[up_key] = (conn, tr.dirs[0], tr.dirs[1])
            self.fast[down_key] = (conn, tr.dirs[1], tr.dirs[0])
        return (tr, 0) if to_dst else (tr, 1)

    def release(self, tr: _Track) -> None:
        """Forget a finished connection's state but keep its keys (a tombstone: ``tr.conn`` None), so a late
        packet of it is not taken for a new connection; a SYN with a new ISN still starts one."""
        client, server = tr.keys
        for key in (client + server, server + client):
            self.fast.pop(key, None)
        tr.conn = None
        tr.dirs = None

    def lookup(self, p: TcpPacket) -> tuple[_Track, int]:
        """The connection ``p`` belongs to and its direction (0 = up, 1 = down), creating it if new."""
        ent = self.table.get((p.src, p.sport, p.dst, p.dport))
        f = p.flags
        if ent is None:
            ent = self._new(p)
        elif f & SYN:
            tr, di = ent
            if not (f & ACK):
                if di != 0 or tr.client_isn is None or tr.client_isn != p.seq:
                    ent = self._new(p)
            elif tr.finished and tr.server_isn is not None and tr.server_isn != p.seq:
                ent = self._new(p)
        tr, di = ent
        if f & SYN:
            if f & ACK:
                if di == 1 and tr.server_isn is None:
                    tr.server_isn = p.seq
            elif di == 0 and tr.client_isn is None:
                tr.client_isn = p.seq
        if f & (FIN | RST):
            tr.finished = True
        return ent


def _deliver(c: TcpConnection, d: _Dir, data: bytes, t: float) -> None:
    d.next += len(data)
    c.chunk_tuples.append((d.name, t, data))


def _overlap(c: TcpConnection, d: _Dir, off: int, data: bytes, index: int) -> None:
    """Bytes at ``off`` that were delivered already: count them; they are compared at the end."""
    c.dup_bytes += len(data)
    if len(data) == 1 and off == d.next - 1:
        return  # keep-alive probe: its byte is garbage by design
    d.checks.append((off, data, index))


def _drain(c: TcpConnection, d: _Dir, t: float | None) -> None:
    """Deliver buffered segments that are now in order; ``t`` None: each keeps its own time (after a gap)."""
    pend = d.pending
    while pend and pend[0][0] <= d.next:
        off, _no, data, t0, index = heappop(pend)
        data = _past_next(c, d, off, data, index)
        if data is not None:
            _deliver(c, d, data, t0 if t is None else t)


def _past_next(c: TcpConnection, d: _Dir, off: int, data: bytes, index: int) -> bytes | None:
    """The bytes of a segment at ``off`` past ``d.next`` (None when it has none); those before are overlaps."""
    if off + len(data) <= d.next:
        _overlap(c, d, off, data, index)
        return None
    if off < d.next:
        cut = d.next - off
        _overlap(c, d, off, data[:cut], index)
        return data[cut:]
    return data


def _gap(c: TcpConnection, d: _Dir, upto: int, why: str) -> None:
    size = upto - d.next
    c.gaps += 1
    c.gap_bytes += size
    d.gaps.append((d.next, size))
    c.gap_marks.append((len(c.chunk_tuples), d.name, size))
    c.warn(f"gap in the {d.name} stream: {size} bytes missing at offset {d.next} ({why})")
    d.next = upto


def _acked(d: _Dir) -> int:
    """The offset up to which the peer acknowledged this direction (``next`` when unknown or behind)."""
    if d.ack is None or d.base is None:
        return d.next
    x = ((d.ack - d.base) - d.next) & _M32
    return d.next if x & 0x80000000 else d.next + x


def _check_acked(c: TcpConnection, d: _Dir) -> None:
    """The peer acknowledged every byte up to the first segment that waits: the capture missed the hole.

    The hole is declared whole, once the acknowledgement reaches the segment after it, not piece by piece as
    the ACKs climb through it: one hole is one gap (one warning, one mark for the parser), however many
    segments the capture lost in a row. Bytes past the acknowledged point may still come (a retransmission the
    capture does see), so until then the segments wait; a hole never acknowledged whole is declared when the
    capture ends (:func:`_finish`).
    """
    acked = _acked(d)
    while d.pending and acked >= d.pending[0][0]:
        if d.pending[0][0] > d.next:
            _gap(c, d, d.pending[0][0], "acknowledged by the peer but not in the capture")
        _drain(c, d, None)


def _segment(c: TcpConnection, d: _Dir, off: int, data: bytes, t: float, index: int) -> None:
    """The slow path: anything but the next in-order segment with nothing buffered."""
    if d.fin is not None and off + len(data) > d.fin:
        keep = max(0, d.fin - off)
        c.warn(f"{len(data) - keep} bytes after FIN in the {d.name} stream ignored (packet #{index})")
        data = data[:keep]
        if not data:
            return
    if off <= d.next:
        data = _past_next(c, d, off, data, index)
        if data is None:
            return
        off = d.next
    if off == d.next:
        _deliver(c, d, data, t)
        if d.pending:
            _drain(c, d, t)
        return
    d.seq_no += 1
    heappush(d.pending, (off, d.seq_no, data, t, index))
    _check_acked(c, d)


def _conflicts(c: TcpConnection, d: _Dir, chunks: list | None = None) -> None:
    """Compare every retransmitted byte with the first copy delivered, as far as it is still held: all of it,
    or, once :meth:`Reassembler.take` hands chunks out, those of the last hand-over and since (``chunks``, which
    start at stream offset ``d.prev_handed``); warn where they differ."""
    starts: list[int] = []
    datas: list[bytes] = []
    cursor = d.prev_handed
    gaps = iter([g for g in d.gaps if g[0] >= cursor] + [(-1, 0)])
    g_off, g_size = next(gaps)
    for name, _t, data in (c.chunk_tuples if chunks is None else chunks):
        if name != d.name:
            continue
        while g_off == cursor:
            cursor += g_size
            g_off, g_size = next(gaps)
        starts.append(cursor)
        datas.append(data)
        cursor += len(data)
    checks, d.checks = d.checks, []
    for off, data, index in checks:
        end = off + len(data)
        i = max(0, bisect_right(starts, off) - 1)
        diff = 0
        while i < len(starts) and starts[i] < end:
            s, old = starts[i], datas[i]
            a, b = max(s, off), min(s + len(old), end)
            if a < b and old[a - s:b - s] != data[a - off:b - off]:
                diff += sum(1 for u, v in zip(old[a - s:b - s], data[a - off:b - off]) if u != v)
            i += 1
        if diff:
            c.warn(f"conflicting overlap in the {d.name} stream at offset {off}: {diff} of {len(data)} "
                   f"retransmitted bytes differ from the first copy (packet #{index}); kept the first copy")


def _finish(tr: _Track) -> TcpConnection:
    c = tr.conn
    up, down = tr.dirs
    for d in (up, down):
        while d.pending:
            _gap(c, d, d.pending[0][0], "never filled by the end of the capture")
            _drain(c, d, None)
        acked = _acked(d)
        limit = acked if d.fin is None else min(acked, d.fin)
        if limit > d.next and d.base is not None:
            _gap(c, d, limit, "acknowledged by the peer but not in the capture, at the end")
        if d.checks:
            _conflicts(c, d, tr.prev + c.chunk_tuples if tr.prev else None)
    tr.prev = []
    c.bytes_up = up.next - sum(s for _, s in up.gaps)
    c.bytes_down = down.next - sum(s for _, s in down.gaps)
    c.closed = c.reset or (up.fin is not None and down.fin is not None)
    if c.mid_stream:
        c.warnings.insert(0, "the capture starts mid-connection: offsets are relative to the first packet seen")
    if up.syn is not None and down.syn is None and c.bytes_down:
        c.warn("no SYN-ACK in the capture: the down stream starts at the first server packet seen")
    return c


def _packet(table: ConnectionTable, p: TcpPacket) -> None:
    """Everything about one packet, general case (SYN, FIN, RST, a new connection or direction, disorder)."""
    tr, di = table.lookup(p)
    c = tr.conn
    if c is None:  # a late packet of a connection already finished and handed out (Reassembler.finish)
        table.late += 1
        return
    d = tr.dirs[di]
    t = p.t
    f = p.flags
    c.packets += 1
    c.t_last = t
    seq = p.seq
    if f & SYN:
        seq = (seq + 1) & _M32
        if d.base is None:
            d.base = seq
            d.syn = p.seq
        if not (f & ACK) and c.t_syn is None:
            c.t_syn = t
    elif d.base is None:
        d.base = seq
    data = p.payload
    if data or f & (FIN | RST) or p.truncated:
        x = ((seq - d.base) - d.next) & _M32  # unwrap against the next expected offset
        off = d.next + (x - 0x100000000 if x & 0x80000000 else x)
        if table.on_segment is not None:
            table.on_segment(tr.index, di, off, p)
        if data:
            _segment(c, d, off, data, t, p.index)
        if p.truncated and p.wire_len > p.cap_len and d.next == off + len(data):
            # the snap length cut this segment: its missing tail is a gap, not a mystery
            _gap(c, d, d.next + p.wire_len - p.cap_len, f"cut by the capture's snap length, packet #{p.index}")
            if d.pending:
                _drain(c, d, t)
        if f & FIN and d.fin is None:
            d.fin = off + len(data)
        if f & RST:
            c.reset = True
            return  # a RST's ACK field proves nothing
    if f & ACK:
        o = tr.dirs[1 - di]
        o.ack = p.ack
        if o.pending:
            _check_acked(c, o)


def reassemble(packets: Iterable[TcpPacket], on_segment: SegmentWatcher | None = None) -> list[TcpConnection]:
    """Group TCP packets into connections and rebuild both byte streams of each (rules in the module doc).

    ``on_segment(connection index, direction 0 up / 1 down, stream offset, packet)`` is called for every packet
    that carries data, FIN or RST, with the offset rule 3 gives it (before FIN trimming or overlap handling): how
    a tool maps stream bytes back to the packets that carried them, every copy included (``offline/redact``).
    """
    return reassemble_tuples(map(_fields, packets), on_segment)


def reassemble_tuples(packets: Iterable[tuple], on_segment: SegmentWatcher | None = None) -> list[TcpConnection]:
    """:func:`reassemble` for packets as plain tuples in ``mailstudy.net.pcap.PACKET_FIELDS`` order (what
    ``read_tcp_tuples`` yields): the same connections, without making a TcpPacket per packet."""
    r = Reassembler(on_segment)
    r.feed(packets)
    return r.finish_all()


class Reassembler:
    """Reassembly as a stream: feed packets in batches, take each connection's new chunks as they come, and
    finish connections that have ended while the rest of the file is still being read.

    :func:`reassemble_tuples` is ``feed`` everything, then ``finish_all``: every connection is held to the end.
    A streaming caller (``mailstudy.offline.analyze.iter_sessions``) keeps memory bounded by the connections
    still open instead: after each batch it calls :meth:`take` to hand a connection's new chunks (and the gap
    marks among them) to its parser, and :meth:`ended` / :meth:`finish` to close connections that are over.
    A connection is over once both FINs (or a RST) were seen, nothing waits in its reassembly buffers, and the
    capture's clock has gone ``linger_s`` past its last packet (so its last ACKs still count in it). A packet
    of a finished connection that comes later still is counted in :attr:`late`, never taken for a new
    connection (the connection table keeps the finished one's addresses); a SYN with a new ISN does start one,
    as rule 1 says.

    The chunks of the last :meth:`take` are kept for one more: a retransmission of bytes handed out before
    that is counted in ``dup_bytes`` but can no longer be compared with the first copy (rule 4).

    The fast path of :meth:`feed` takes the common packet (no SYN/FIN/RST, known connection and direction, data
    in order or none) in a few lines; everything else is rebuilt as a TcpPacket and goes through ``_packet``.
    With an ``on_segment`` watcher every packet takes the general path (the fast path stays free of the check).
    """

    def __init__(self, on_segment: SegmentWatcher | None = None) -> None:
        self.table = ConnectionTable(make_conns=True)
        self.table.on_segment = on_segment
        self._open: dict[int, _Track] = {}  # connection index -> track, for connections not finished
        self.t_now = 0.0  # the time of the last packet fed

    @property
    def late(self) -> int:
        """Packets of connections already finished (see the class doc)."""
        return self.table.late

    def feed(self, packets: Iterable[tuple]) -> None:
        """Reassemble ``packets`` (tuples in ``PACKET_FIELDS`` order)."""
        table = self.table
        get = table.fast.get if table.on_segment is None else {}.get
        M = _M32
        general = _packet
        opened = len(table.tracks)
        t = self.t_now
        for tup in packets:
            t, src, sport, dst, dport, seq, ack, f, data, _wire, _cap, trunc, _index, _t_ns, _at = tup
            if f & 0x07 or trunc:
                general(table, TcpPacket(*tup))
                continue
            ent = get((src, sport, dst, dport))
            if ent is None:
                general(table, TcpPacket(*tup))
                continue
            c, d, o = ent
            if data:
                if d.pending or d.fin is not None or d.base is None or (seq - d.base - d.next) & M:
                    general(table, TcpPacket(*tup))
                    continue
                d.next += len(data)
                c.chunk_tuples.append((d.name, t, data))
            elif d.base is None:
                general(table, TcpPacket(*tup))
                continue
            c.packets += 1
            c.t_last = t
            if f & 0x10:
                o.ack = ack
                if o.pending:
                    _check_acked(c, o)
        self.t_now = t
        for tr in table.tracks[opened:]:
            self._open[tr.index] = tr

    def feed_columns(self, cols) -> None:
        """Reassemble a block of segments held as columns (:class:`mailstudy.net.pcap_batches.Columns`): the
        same state as :meth:`feed` of the same packets' tuples, in bulk where it can.

        The block is cut into runs: per connection (both directions), the segments between two that take the
        general path (SYN, FIN, RST), in order. Connections do not touch each other's state, so runs are taken
        in the order of their first segment (which keeps rule 1's numbering: a connection is made by the first
        segment of a run). A long run of a known connection whose data all comes in order, with nothing
        buffered and no FIN yet (what :meth:`feed`'s fast path checks segment by segment), is moved in one step
        (:meth:`_bulk`); every other run goes through :meth:`feed` as tuples.
        """
        n = len(cols)
        if not n:
            return
        if self.table.on_segment is not None or n < _BULK_MIN:
            self.feed(cols.tuples(range(n)))
            return
        import numpy as np  # only here: Columns come from numpy

        lo, hi = np.minimum(cols.a, cols.b), np.maximum(cols.a, cols.b)  # the connection, either way
        gen = cols.general
        order = np.lexsort((lo, hi))  # stable: each connection's segments stay in capture order
        lo, hi, gen = lo[order], hi[order], gen[order]
        cut = np.ones(n, dtype=bool)
        cut[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1]) | gen[1:] | gen[:-1]
        starts = np.flatnonzero(cut)
        ends = np.append(starts[1:], n)
        for r in np.argsort(order[starts], kind="stable").tolist():
            rows = order[starts[r]:ends[r]]
            if len(rows) < _BULK_MIN or not self._bulk(cols, rows):
                self.feed(cols.tuples(rows))
        self.t_now = cols.times(np.array([n - 1]))[0]

    def _bulk(self, cols, rows) -> bool:
        """One run of one connection's segments (none takes the general path) in one step; False, changing
        nothing, when :meth:`feed` would take any of them the general way."""
        import numpy as np

        first = rows[0]
        key = cols.tuples([first])[0][1:5]
        ent = self.table.fast.get(key)
        if ent is None:
            return False
        c, d, o = ent
        same = (cols.a[rows] == cols.a[first]) & (cols.b[rows] == cols.b[first])
        lens = cols.pe[rows] - cols.ps[rows]
        if d.pending or o.pending:
            return False
        for x, sel in ((d, same), (o, ~same)):
            if not sel.any():
                continue
            if x.base is None:
                return False
            xl = lens[sel]
            has = xl > 0
            if has.any():
                if x.fin is not None:
                    return False
                xl = xl[has]
                expect = (((x.base + x.next) & _M32) + np.cumsum(xl) - xl) & _M32
                if not np.array_equal(expect, cols.seq[rows][sel][has]):
                    return False
        data = rows[lens > 0]
        if len(data):
            buf = cols.buf
            dn, on = d.name, o.name
            c.chunk_tuples.extend([(dn if s else on, t, buf[p:q]) for s, t, p, q in zip(
                same[lens > 0].tolist(), cols.times(data), cols.ps[data].tolist(), cols.pe[data].tolist())])
            d.next += int(lens[same].sum())
            o.next += int(lens[~same].sum())
        c.packets += len(rows)
        c.t_last = cols.times(rows[-1:])[0]
        acks = (cols.flags[rows] & 0x10) != 0
        for x, sel in ((o, same & acks), (d, ~same & acks)):  # a segment's ACK is the other direction's
            if sel.any():
                x.ack = int(cols.ack[rows[sel][-1]])
        return True

    def connections(self) -> list[TcpConnection]:
        """The connections not finished yet, in order of their first packet."""
        return [tr.conn for tr in self._open.values()]

    def take(self, conn: TcpConnection) -> tuple[list[tuple[str, float, bytes]], list[tuple[int, str, int]]]:
        """Hand out ``conn``'s chunks delivered since the last take and the gap marks among them (positions
        relative to the returned list); the connection stops holding them."""
        tr = self._open[conn.index]
        chunks, marks = conn.chunk_tuples, conn.gap_marks
        for d in tr.dirs:
            if d.checks:  # compare while the first copies are still here
                _conflicts(conn, d, tr.prev + chunks if tr.prev else chunks)
            d.prev_handed = d.handed
            d.handed = d.next
        tr.prev = chunks
        conn.chunk_tuples = []
        conn.gap_marks = []
        conn._chunks = None
        return chunks, marks

    def ended(self, linger_s: float) -> list[TcpConnection]:
        """Connections that are over (both FINs or a RST, nothing buffered, quiet for ``linger_s`` of capture
        time), in order of their first packet."""
        out = []
        for tr in self._open.values():
            c = tr.conn
            if not tr.finished or self.t_now - c.t_last < linger_s:
                continue
            up, down = tr.dirs
            if (c.reset or (up.fin is not None and down.fin is not None)) and not up.pending and not down.pending:
                out.append(c)
        return out

    def finish(self, conn: TcpConnection) -> TcpConnection:
        """Finish ``conn`` (its last gaps and counts, as at the end of a capture) and forget its state."""
        tr = self._open.pop(conn.index)
        _finish(tr)
        self.table.release(tr)
        return conn

    def finish_all(self) -> list[TcpConnection]:
        """Finish every connection still open (the end of the capture), in order of their first packet."""
        return [self.finish(tr.conn) for tr in list(self._open.values())]


def packets_frame(path: str | os.PathLike) -> "pandas.DataFrame":
    """One row per TCP packet: time, src, sport, dst, dport, flags, seq, ack, payload_len, stream.

    ``stream`` numbers TCP connections 0, 1, ... in order of first appearance, split on port reuse exactly as
    :func:`mailstudy.net.reassembly.reassemble` splits them (so it matches ``TcpConnection.index``).
    """
    import pandas as pd

    table = ConnectionTable()
    cols: dict[str, list] = {k: [] for k in
                             ("time", "src", "sport", "dst", "dport", "flags", "seq", "ack", "payload_len",
                              "stream")}
    (c_t, c_src, c_sp, c_dst, c_dp, c_fl, c_seq, c_ack, c_len, c_st) = cols.values()
    for p in read_tcp(path):
        track, _di = table.lookup(p)
        c_t.append(p.t)
        c_src.append(p.src)
        c_sp.append(p.sport)
        c_dst.append(p.dst)
        c_dp.append(p.dport)
        c_fl.append(p.flags)
        c_seq.append(p.seq)
        c_ack.append(p.ack)
        c_len.append(len(p.payload))
        c_st.append(track.index)
    df = pd.DataFrame(cols)
    for k in ("sport", "dport", "flags", "payload_len", "stream"):
        df[k] = df[k].astype("int64")
    for k in ("seq", "ack"):
        df[k] = df[k].astype("uint32")
    return df
