"""Write pcap and pcapng files, and the frames in them: the mirror of :mod:`mailstudy.net.pcap`'s reader.

Why: tests need captures whose right answer is known byte for byte (odd link types, snap-length cuts, gaps,
wrapped sequence numbers, credentials to redact), and builders of their own in each test file had drifted from
the reader. Everything here is built from the layouts the reader decodes (:mod:`mailstudy.net.layouts`), so a
frame this module writes is, by construction, one the reader must read back. Checksums are optional (loopback
captures carry partial ones; redact's tests want right ones): :mod:`mailstudy.net.checksum` computes them.

Rebuilt captures of real sessions (``mailstudy.capture.rebuild``) are written here too.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Iterable

from mailstudy.net.checksum import ipv4_header_checksum, tcp_checksum
from mailstudy.net.layouts import (AF_LOOP_INET6, AF_NULL_INET6, ETH_IPV4, ETH_IPV6, IP_PROTO_TCP, IPV4, IPV6,
                                   LINKS, TCP, VLAN_TAG)
from mailstudy.outputs import write_atomically

__all__ = ["T0_NS", "SNAPLEN", "tcp_segment", "mss_option", "ip_packet", "link_frame", "tcp_frame", "pcap_header", "pcap_record",
           "pcap_bytes", "pcapng_block", "pcapng_bytes", "write_capture"]

T0_NS = 1_700_000_000_123_456_789  # a timestamp with all nine decimals in use
SNAPLEN = 262144
_PCAP_MAGIC_NS, _PCAP_MAGIC_US = 0xA1B23C4D, 0xA1B2C3D4
_PCAPNG_SHB, _PCAPNG_IDB, _PCAPNG_SPB, _PCAPNG_EPB = 0x0A0D0D0A, 1, 3, 6
_ETH_MIN = 60  # Ethernet pads shorter frames (the reader must trim the padding)
_SUM_AT = TCP.offsets["sum"]


# ---- frames ------------------------------------------------------------------------------------------------------
def tcp_segment(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"",
                options: bytes = b"", **fields) -> bytes:
    """A TCP header (other fields from :data:`~mailstudy.net.layouts.TCP`), ``options`` (padded to 32-bit
    words with end-of-list bytes) and ``payload``."""
    options += b"\x00" * (-len(options) % 4)
    return TCP.pack(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF, flags=flags,
                    off_x2=(TCP.size + len(options)) // 4 << 4, **fields) + options + payload


def mss_option(mss: int) -> bytes:
    """The TCP maximum-segment-size option (RFC 9293 section 3.7.1)."""
    return struct.pack("!BBH", 2, 4, mss)


def _raw(addr: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)


def ip_packet(src: str, dst: str, l4: bytes, proto: int = IP_PROTO_TCP, checksums: bool = False,
              ext: bytes = b"", first_nh: int | None = None, **fields) -> bytes:
    """``l4`` in an IPv4 or IPv6 packet (by the addresses' family).

    ``checksums`` fills in the TCP checksum (when ``proto`` is TCP) and the IPv4 header checksum; ``ext`` holds
    IPv6 extension headers put before ``l4`` with ``first_nh`` their first next-header value; other keyword
    arguments set header fields (``off`` for IPv4's flags and fragment offset, ...).
    """
    s, d = _raw(src), _raw(dst)
    if proto == IP_PROTO_TCP and checksums:
        l4 = l4[:_SUM_AT] + struct.pack("!H", tcp_checksum(s, d, l4)) + l4[_SUM_AT + 2:]
    if len(s) == 16:
        nxt = proto if first_nh is None else first_nh
        return IPV6.pack(plen=len(ext) + len(l4), nxt=nxt, src=s, dst=d, **fields) + ext + l4
    fields.setdefault("id", 1)
    header = IPV4.pack(len=IPV4.size + len(l4), p=proto, src=s, dst=d, **fields)
    if checksums:
        at = IPV4.offsets["sum"]
        header = header[:at] + struct.pack("!H", ipv4_header_checksum(header)) + header[at + 2:]
    return header + l4


def link_frame(ip: bytes, linktype: int = 1, vlans: tuple[int, ...] = (), ethertype: int | None = None,
               pad: bool = True) -> bytes:
    """``ip`` behind the link-layer header of ``linktype`` (see :data:`~mailstudy.net.layouts.LINKS`).

    ``ethertype`` defaults to IPv4's or IPv6's by the packet's version; ``vlans`` are 802.1Q/QinQ tag protocol
    ids put before it (Ethernet); an Ethernet frame is padded to 60 bytes unless ``pad`` is False.
    """
    link = LINKS[linktype]
    v6 = bool(ip) and ip[0] >> 4 == 6
    if link.header is None:
        return ip
    if link.ethertype_at is None:  # BSD NULL / OpenBSD LOOP: an address family
        family = 2 if not v6 else AF_NULL_INET6 if linktype == 0 else AF_LOOP_INET6
        return link.header.pack(family=family) + ip
    et = ethertype if ethertype is not None else ETH_IPV6 if v6 else ETH_IPV4
    if not link.vlan:
        return link.header.pack(type=et) + ip
    tags = b"".join(VLAN_TAG.pack(tpid=tpid) for tpid in vlans)
    at = link.ethertype_at
    head = link.header.pack(type=et)
    out = head[:at] + tags + head[at:] + ip
    return out + b"\x00" * max(0, _ETH_MIN - len(out)) if pad else out


def tcp_frame(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"",
              linktype: int = 1, vlans: tuple[int, ...] = (), checksums: bool = False) -> bytes:
    """One TCP segment as a whole link-layer frame: :func:`tcp_segment` in :func:`ip_packet` in :func:`link_frame`."""
    ip = ip_packet(src, dst, tcp_segment(sport, dport, seq, ack, flags, payload), checksums=checksums)
    return link_frame(ip, linktype, vlans)


# ---- classic pcap ------------------------------------------------------------------------------------------------
def pcap_header(linktype: int = 1, nano: bool = True, endian: str = "<", snaplen: int = SNAPLEN) -> bytes:
    return struct.pack(endian + "IHHiIII", _PCAP_MAGIC_NS if nano else _PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(t_ns: int, data: bytes, orig: int | None = None, nano: bool = True, endian: str = "<") -> bytes:
    """One record: ``data`` as captured; ``orig`` the frame's length on the wire (default: ``len(data)``)."""
    sec, ns = divmod(t_ns, 1_000_000_000)
    frac = ns if nano else ns // 1000
    return struct.pack(endian + "IIII", sec, frac, len(data), len(data) if orig is None else orig) + data


def pcap_bytes(records: Iterable[tuple], linktype: int = 1, nano: bool = True, endian: str = "<",
               snaplen: int = SNAPLEN) -> bytes:
    """A classic pcap of ``(t_ns, frame)`` or ``(t_ns, frame, captured length)`` records, each cut to
    ``snaplen`` (or its own captured length) as a capture would cut it."""
    out = [pcap_header(linktype, nano, endian, snaplen)]
    for t_ns, data, *cut in records:
        keep = min(snaplen, cut[0]) if cut else snaplen
        out.append(pcap_record(t_ns, data[:keep], len(data), nano, endian))
    return b"".join(out)


# ---- pcapng ------------------------------------------------------------------------------------------------------
def pcapng_block(btype: int, body: bytes, endian: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)


def pcapng_bytes(interfaces: list[tuple[int, int]], packets: Iterable[tuple[int, int, bytes]], endian: str = "<",
                 simple: Iterable[bytes] = ()) -> bytes:
    """A pcapng of one section. ``interfaces``: ``(linktype, if_tsresol byte)`` each; ``packets``:
    ``(interface id, t_ns, frame)`` or ``(interface id, t_ns, frame, original length)`` written as enhanced
    packet blocks; ``simple``: frames written as simple packet blocks (no timestamp) after them."""
    out = [pcapng_block(_PCAPNG_SHB, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)]
    for lt, res in interfaces:
        opt = struct.pack(endian + "HH", 9, 1) + bytes([res]) + b"\0\0\0" + struct.pack(endian + "HH", 0, 0)
        out.append(pcapng_block(_PCAPNG_IDB, struct.pack(endian + "HHI", lt, 0, SNAPLEN) + opt, endian))
    for ifid, t_ns, data, *orig in packets:
        res = interfaces[ifid][1]
        ts = t_ns // 10 ** (9 - res) if not res & 0x80 else (t_ns << (res & 0x7F)) // 1_000_000_000
        wire = orig[0] if orig else len(data)
        body = struct.pack(endian + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, len(data), wire) + data
        out.append(pcapng_block(_PCAPNG_EPB, body, endian))
    for data in simple:
        out.append(pcapng_block(_PCAPNG_SPB, struct.pack(endian + "I", len(data)) + data, endian))
    return b"".join(out)


def write_capture(path: str | os.PathLike, data: bytes) -> bytes:
    """Write ``data`` (from :func:`pcap_bytes` or :func:`pcapng_bytes`) to ``path`` whole or not at all; returns
    ``data``."""
    write_atomically(path, data)
    return data
