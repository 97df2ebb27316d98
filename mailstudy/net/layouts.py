"""Packet layouts, TCP flags and mail ports, declared once as data: the reader, the writer and redact read them.

Why a module of its own: the pcap format used to live in four places (the reader, redact's record walk, the test
builders, reassembly's constants) that each spelled out the header layouts, the flag bits and the mail ports.
dpkt's ``__hdr__`` tables and ``TH_*`` constants are the model: a header is a tuple of ``(name, struct format,
default)`` fields, from which :class:`Layout` derives its struct, each field's offset, ``pack`` and ``unpack``.
Pure: no files, no sockets; it reads only the pure classifier's table of well-known IMAP and POP3 ports.

The reader's hot path (:mod:`mailstudy.net.pcap`) keeps its own combined struct formats (one ``unpack_from`` per
packet for link + IPv4 + TCP); they are checked against these layouts in ``tests/test_pcap.py``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from mailstudy.protocol.classify import WELL_KNOWN_PORTS

__all__ = ["TH_FIN", "TH_SYN", "TH_RST", "TH_PUSH", "TH_ACK", "TH_URG", "TH_ECE", "TH_CWR", "TCP_FLAGS",
           "SMTP_PORTS", "MAIL_PORTS", "Layout", "TCP", "IPV4", "IPV6", "ETHERNET", "VLAN_TAG", "SLL",
           "SLL2", "NULL", "LOOP", "LinkLayout", "LINKS", "VLAN_TPIDS", "ETH_IPV4", "ETH_IPV6", "IP_PROTO_TCP",
           "AF_NULL_INET6", "AF_LOOP_INET6"]

# ---- TCP flags (RFC 9293, RFC 3168) ------------------------------------------------------------------------------
TH_FIN, TH_SYN, TH_RST, TH_PUSH, TH_ACK, TH_URG, TH_ECE, TH_CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
TCP_FLAGS = {"FIN": TH_FIN, "SYN": TH_SYN, "RST": TH_RST, "PSH": TH_PUSH, "ACK": TH_ACK, "URG": TH_URG,
             "ECE": TH_ECE, "CWR": TH_CWR}

# ---- mail ports (IMAP's and POP3's are the classifier's: mailstudy.protocol.classify.WELL_KNOWN_PORTS) ----------
SMTP_PORTS = (25, 587, 465)  # SMTP, submission, submissions
MAIL_PORTS = tuple(WELL_KNOWN_PORTS) + SMTP_PORTS  # the side on one of these is a mail server's

# ---- numbers the layouts use ---------------------------------------------------------------------------------------
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad (QinQ), the old QinQ tag
IP_PROTO_TCP = 6
AF_NULL_INET6 = 30  # BSD NULL: AF_INET6 as macOS numbers it (the IP version nibble is what the reader trusts)
AF_LOOP_INET6 = 24  # OpenBSD LOOP: AF_INET6, network byte order


class Layout:
    """A fixed-size header declared as ``(name, struct format, default)`` fields in one byte order."""

    def __init__(self, name: str, fields: tuple[tuple[str, str, Any], ...], order: str = "!") -> None:
        self.name = name
        self.fields = fields
        self.names = tuple(f[0] for f in fields)
        self.struct = struct.Struct(order + "".join(f[1] for f in fields))
        self.size = self.struct.size
        self.offsets: dict[str, int] = {}
        pos = 0
        for fname, fmt, _default in fields:
            self.offsets[fname] = pos
            pos += struct.calcsize(order + fmt)

    def pack(self, **values: Any) -> bytes:
        """The header with ``values`` over the defaults; an unknown field name is a TypeError."""
        unknown = set(values) - set(self.names)
        if unknown:
            raise TypeError(f"{self.name} has no field {sorted(unknown)[0]!r}")
        return self.struct.pack(*[values.get(n, d) for n, _f, d in self.fields])

    def unpack(self, buf, offset: int = 0) -> dict[str, Any]:
        return dict(zip(self.names, self.struct.unpack_from(buf, offset)))

    def __repr__(self) -> str:
        return f"Layout({self.name!r}, {self.size} bytes)"


# ---- network and transport headers (RFC 791, RFC 8200, RFC 9293) -------------------------------------------------
IPV4 = Layout("IPv4", (("v_hl", "B", 0x45), ("tos", "B", 0), ("len", "H", 20), ("id", "H", 0), ("off", "H", 0x4000),
                       ("ttl", "B", 64), ("p", "B", IP_PROTO_TCP), ("sum", "H", 0), ("src", "4s", b"\0" * 4),
                       ("dst", "4s", b"\0" * 4)))
IPV6 = Layout("IPv6", (("v_fc_flow", "I", 0x60000000), ("plen", "H", 0), ("nxt", "B", IP_PROTO_TCP),
                       ("hlim", "B", 64), ("src", "16s", b"\0" * 16), ("dst", "16s", b"\0" * 16)))
TCP = Layout("TCP", (("sport", "H", 0), ("dport", "H", 0), ("seq", "I", 0), ("ack", "I", 0), ("off_x2", "B", 5 << 4),
                     ("flags", "B", 0), ("win", "H", 65535), ("sum", "H", 0), ("urp", "H", 0)))

# ---- link-layer headers ------------------------------------------------------------------------------------------
ETHERNET = Layout("Ethernet", (("dst", "6s", b"\x02\0\0\0\0\x01"), ("src", "6s", b"\x02\0\0\0\0\x02"),
                               ("type", "H", ETH_IPV4)))
VLAN_TAG = Layout("802.1Q tag", (("tpid", "H", 0x8100), ("tci", "H", 7)))  # sits before Ethernet's "type"
SLL = Layout("Linux SLL", (("pkttype", "H", 0), ("hatype", "H", 772), ("halen", "H", 6), ("addr", "8s", b"\0" * 8),
                           ("type", "H", ETH_IPV4)))
SLL2 = Layout("Linux SLL2", (("type", "H", ETH_IPV4), ("reserved", "H", 0), ("ifindex", "I", 1),
                             ("hatype", "H", 772), ("pkttype", "B", 0), ("halen", "B", 6), ("addr", "8s", b"\0" * 8)))
NULL = Layout("BSD NULL", (("family", "I", 2),), order="<")  # host byte order: little-endian on the hosts we meet
LOOP = Layout("OpenBSD LOOP", (("family", "I", 2),))


@dataclass(frozen=True)
class LinkLayout:
    """How to get from a link-layer frame to its IP packet.

    ``ethertype_at`` is the offset of the 2-byte EtherType, or None when the link has none (the IP version
    nibble says v4 or v6); ``vlan`` says 802.1Q/QinQ tags may sit before the EtherType (Ethernet only).
    """

    linktype: int
    name: str
    header: Layout | None  # None: raw IP
    ethertype_at: int | None
    vlan: bool = False

    @property
    def length(self) -> int:
        return self.header.size if self.header else 0


def _link(linktype: int, header: Layout | None, ethertype: bool, vlan: bool = False, name: str = "") -> LinkLayout:
    return LinkLayout(linktype, name or (header.name if header else "raw IP"), header,
                      header.offsets["type"] if ethertype else None, vlan)


# linktype (tcpdump.org/linktypes.html) -> layout; 12 and 14 mean raw IP where captures use them
LINKS: dict[int, LinkLayout] = {
    1: _link(1, ETHERNET, True, vlan=True),
    113: _link(113, SLL, True),
    276: _link(276, SLL2, True),
    101: _link(101, None, False),
    12: _link(12, None, False),
    14: _link(14, None, False),
    0: _link(0, NULL, False),
    108: _link(108, LOOP, False),
}
