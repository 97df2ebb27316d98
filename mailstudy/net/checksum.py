"""The Internet checksum (RFC 1071) of IP headers and TCP segments, and its incremental update (RFC 1624).

Why a module of its own: the pcap writer (building honest packets) and redact (rewriting a segment in place)
compute the same sums; the rule lives here once. Pure: bytes in, integers out.
"""

from __future__ import annotations

import struct
import sys

from mailstudy.net.layouts import IP_PROTO_TCP, IPV4, TCP

__all__ = ["ones_sum", "fold_add", "ipv4_header_checksum", "tcp_checksum", "updated_checksum"]

_SUM_AT = TCP.offsets["sum"]


def ones_sum(data: bytes) -> int:
    """Ones-complement sum of 16-bit big-endian words (odd length padded with a zero byte)."""
    if len(data) & 1:
        data += b"\x00"
    s = sum(memoryview(data).cast("H"))  # native order; RFC 1071: byte order only swaps the folded result
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    if sys.byteorder == "little":
        s = ((s & 0xFF) << 8) | (s >> 8)
    return s


def fold_add(a: int, b: int) -> int:
    """Ones-complement addition of two 16-bit sums."""
    s = a + b
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ipv4_header_checksum(header: bytes) -> int:
    """The checksum of an IPv4 header (its own checksum field counted as zero)."""
    at = IPV4.offsets["sum"]
    return ~ones_sum(header[:at] + b"\0\0" + header[at + 2:]) & 0xFFFF


def tcp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    """The checksum of a whole TCP ``segment`` (header + payload; its checksum field counted as zero) between
    raw addresses ``src`` and ``dst``: 4 bytes each for IPv4, 16 for IPv6 (the pseudo-headers of RFC 9293 and
    RFC 8200 section 8.1)."""
    n = len(segment)
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, IP_PROTO_TCP, n)
    else:
        pseudo = src + dst + struct.pack("!I3xB", n, IP_PROTO_TCP)
    return ~ones_sum(pseudo + segment[:_SUM_AT] + b"\0\0" + segment[_SUM_AT + 2:]) & 0xFFFF


def updated_checksum(stored: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): ``stored`` updated for 16-bit-aligned words ``old`` -> ``new``.
    Keeps a checksum right (if it was right) when the whole segment is not at hand, e.g. cut by the snap length."""
    return ~fold_add(fold_add(~stored & 0xFFFF, ~ones_sum(old) & 0xFFFF), ones_sum(new)) & 0xFFFF
