"""The records of a classic pcap decoded a block at a time with numpy: the analysis's fast path (issue 21).

Why: :class:`mailstudy.net.pcap.PcapReader` spends about a microsecond of Python per record (a struct call,
checks, a 15-field tuple, a ``yield``), and reassembly as much again per tuple; on the bench capture that was
half of the analysis. Here the only per-record Python work is walking the record chain (each record's length
says where the next one starts: nothing vectorizes that); the header fields of every record of a block are then
read at once at their fixed offsets (numpy fancy indexing), and
:meth:`mailstudy.net.reassembly.Reassembler.feed_columns` moves whole runs of in-order segments into the streams
without a tuple per packet.

Exactly the reference: a :class:`Columns` block is made only when *every* record of the block takes the
reader's own fast path (link header, IPv4 without options, not a fragment, TCP, IP packet not cut); any other
block is read by the reader's tuple loop itself (``PcapReader._iter_pcap``), so warnings, counts, offsets and
times are the reader's. Times are ``t_ns / 1e9`` in Python (``Columns.times``), the same correctly rounded float
the reader makes (numpy's int64 to float64 would round twice). tests/test_fast_path.py compares both paths.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["Columns", "columns"]

_WINDOW = 36  # bytes read per record from 2 before the IP header: EtherType, IPv4 header, TCP up to its flags
_AT = np.arange(_WINDOW, dtype=np.int64)


class Columns:
    """TCP segments of consecutive records as numpy columns over the block they were read from (``buf``).

    Offsets (``ip``, ``ps``, ``pe``) are into ``buf``; ``index`` is the first record's 1-based number in the file
    and ``base`` the file offset of ``buf[0]``. Slicing (``cols[a:b]``) gives the records a..b as Columns.
    """

    __slots__ = ("buf", "index", "base", "tns", "a", "b", "sport", "dport", "seq", "ack", "flags", "ip", "ps",
                 "pe", "incl", "orig", "n", "pair")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, sl: slice) -> Columns:
        lo, hi, _ = sl.indices(self.n)
        out = Columns.__new__(Columns)
        out.buf, out.base, out.pair = self.buf, self.base, self.pair
        out.index = self.index + lo
        for name in ("tns", "a", "b", "sport", "dport", "seq", "ack", "flags", "ip", "ps", "pe", "incl", "orig"):
            setattr(out, name, getattr(self, name)[lo:hi])
        out.n = max(0, hi - lo)
        return out

    @property
    def general(self) -> np.ndarray:
        """Segments reassembly takes one by one: SYN, FIN or RST set. (None was cut: :func:`columns` takes only
        records that hold their whole IP packet.)"""
        return (self.flags & 7) != 0

    def times(self, rows: np.ndarray) -> list[float]:
        return [x / 1_000_000_000 for x in self.tns[rows].tolist()]

    def tuples(self, rows) -> list[tuple]:
        """The rows as the reader's tuples (:data:`mailstudy.net.pcap.PACKET_FIELDS` order), equal to its own."""
        rows = np.asarray(rows, dtype=np.int64)
        buf = self.buf
        ip = self.ip[rows].tolist()
        pair = self.pair
        out = []
        for i, tn, sp, dp, seq, ack, fl, p, q, incl, orig, at in zip(
                rows.tolist(), self.tns[rows].tolist(), self.sport[rows].tolist(), self.dport[rows].tolist(),
                self.seq[rows].tolist(), self.ack[rows].tolist(), self.flags[rows].tolist(),
                self.ps[rows].tolist(), self.pe[rows].tolist(), self.incl[rows].tolist(),
                self.orig[rows].tolist(), ip):
            src, dst = pair(buf[at + 12:at + 20])
            out.append((tn / 1_000_000_000, src, sp, dst, dp, seq, ack, fl, buf[p:q], orig, incl, False,
                        self.index + i, tn, self.base + at + 20))
        return out


def columns(buf: bytes, starts: list[int], endian: str, frac_ns: int, hlen: int, linklen: int, ethertype: bool,
            index: int, base: int, pair: Callable[[bytes], tuple[str, str]]) -> Columns | None:
    """The records starting at ``starts`` in ``buf`` as :class:`Columns`, or None when any of them is not a
    segment the reader's fast path takes (then the caller reads the block the reader's way). ``pair``: the
    reader's IPv4 address pair (8 header bytes to two strings, cached)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    s = np.asarray(starts, dtype=np.int64)
    head = arr[s[:, None] + np.arange(16)].view(endian + "u4")  # sec, fraction, captured length, wire length
    incl = head[:, 2].astype(np.int64)
    if (incl < linklen + 40).any():
        return None
    ip = s + hlen + linklen
    # 18 big-endian 16-bit words from 2 bytes before the IP header: EtherType, version/IHL+TOS, total length,
    # id, fragment field, TTL+protocol, checksum, source (2), destination (2), ports (2), seq (2), ack (2), flags
    w = arr[(ip - 2)[:, None] + _AT].view(">u2").astype(np.int64)
    totlen = w[:, 2]
    off = w[:, 17]
    doff = (off >> 12) << 2
    ok = (((w[:, 1] >> 8) == 0x45) & ((w[:, 4] & 0x3FFF) == 0) & ((w[:, 5] & 0xFF) == 6) & (doff >= 20)
          & (20 + doff <= totlen) & (totlen <= incl - linklen))
    if ethertype:
        ok &= w[:, 0] == 0x0800
    if not ok.all():
        return None
    c = Columns.__new__(Columns)
    c.buf, c.index, c.base, c.n, c.pair = buf, index, base, len(starts), pair
    c.tns = head[:, 0].astype(np.int64) * 1_000_000_000 + head[:, 1].astype(np.int64) * frac_ns
    c.sport, c.dport = w[:, 11], w[:, 12]
    c.a = (w[:, 7] << 32) | (w[:, 8] << 16) | c.sport  # one side's address and port as one 48-bit number
    c.b = (w[:, 9] << 32) | (w[:, 10] << 16) | c.dport  # ... and the other side's
    c.seq, c.ack = (w[:, 13] << 16) | w[:, 14], (w[:, 15] << 16) | w[:, 16]
    c.flags = off & 0x1FF
    c.ip = ip
    c.ps = ip + 20 + doff
    c.pe = ip + totlen
    c.incl = incl
    c.orig = head[:, 3].astype(np.int64)
    return c
