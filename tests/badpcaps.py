"""Write small captures, good and bad, for the pcap reader and reassembly tests; no binary blobs in the repo.

Why a module: every odd capture the reader must survive (a truncated header, a snap-length cut, a gap, port
reuse, pcapng with two clocks, IPv6, VLAN, SLL2, NULL...) is built here with ``struct``, byte for byte, so a test
can say exactly what the right answer is. Each ``make_*`` function writes one file to the path it is given and
returns what a correct reader must find (an :class:`Expect`).

Building blocks: :func:`conversation` makes the segments of a TCP session (handshake, request/response
exchanges, FIN both ways) with exact sequence numbers; :func:`frame` wraps one segment in IPv4/IPv6 and a link
layer and :func:`write_pcap` writes records, both through :mod:`mailstudy.net.pcap_write` (the reader's mirror,
built from the same declared layouts), so this file holds only what makes each capture odd.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from functools import partial

from mailstudy.net.layouts import TH_ACK as ACK
from mailstudy.net.layouts import TH_FIN as FIN
from mailstudy.net.layouts import TH_PUSH as PSH
from mailstudy.net.layouts import TH_RST as RST
from mailstudy.net.layouts import TH_SYN as SYN
from mailstudy.net.pcap_write import (T0_NS, ip_packet, link_frame, pcap_bytes, pcap_header, pcapng_bytes,
                                      tcp_segment, write_capture)

CLIENT, SERVER = "10.0.0.2", "10.0.0.1"
CLIENT6, SERVER6 = "2001:db8::2", "2001:db8::1"


@dataclass
class Seg:
    """One TCP segment to write."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes = b""
    t_ns: int = T0_NS


@dataclass
class Expect:
    """What a correct reader/reassembler finds in a file made here."""

    packets_total: int = 0
    tcp_packets: int = 0
    up: bytes = b""  # client -> server stream of connection 0
    down: bytes = b""
    connections: int = 1
    notes: dict = field(default_factory=dict)


# ---- segments ------------------------------------------------------------------------------------------------
EXCHANGES = [
    (b"", b"* OK IMAP4rev1 ready\r\n"),
    (b"a1 CAPABILITY\r\n", b"* CAPABILITY IMAP4rev1\r\na1 OK done\r\n"),
    (b"a2 LOGOUT\r\n", b"* BYE\r\na2 OK LOGOUT completed\r\n"),
]


def conversation(exchanges=EXCHANGES, c_isn: int = 1000, s_isn: int = 900_000, cport: int = 40000,
                 sport: int = 143, client: str = CLIENT, server: str = SERVER, t0_ns: int = T0_NS,
                 step_ns: int = 1_000_000, handshake: bool = True, close: bool = True,
                 mss: int = 10_000) -> list[Seg]:
    """The segments of one TCP session, in the order a capture on the path would see them."""
    segs: list[Seg] = []
    t = t0_ns
    cs, ss = c_isn, s_isn

    def add(up: bool, flags: int, payload: bytes = b"") -> None:
        nonlocal t, cs, ss
        if up:
            segs.append(Seg(client, server, cport, sport, cs & 0xFFFFFFFF, ss & 0xFFFFFFFF, flags, payload, t))
            cs += len(payload) + (1 if flags & (SYN | FIN) else 0)
        else:
            segs.append(Seg(server, client, sport, cport, ss & 0xFFFFFFFF, cs & 0xFFFFFFFF, flags, payload, t))
            ss += len(payload) + (1 if flags & (SYN | FIN) else 0)
        t += step_ns

    if handshake:
        segs.append(Seg(client, server, cport, sport, cs & 0xFFFFFFFF, 0, SYN, b"", t))
        cs += 1
        t += step_ns
        add(False, SYN | ACK)
        add(True, ACK)
    else:
        cs += 1
        ss += 1
    for req, resp in exchanges:
        for i in range(0, len(req), mss):
            add(True, PSH | ACK, req[i:i + mss])
        for i in range(0, len(resp), mss):
            add(False, PSH | ACK, resp[i:i + mss])
        add(True, ACK)
    if close:
        add(True, FIN | ACK)
        add(False, FIN | ACK)
        add(True, ACK)
    return segs


def streams(exchanges=EXCHANGES) -> tuple[bytes, bytes]:
    return b"".join(r for r, _ in exchanges), b"".join(s for _, s in exchanges)


# ---- frames and files: mailstudy.net.pcap_write, the reader's mirror ----------------------------------------
def _l4(s: Seg) -> bytes:
    return tcp_segment(s.sport, s.dport, s.seq, s.ack, s.flags, s.payload)


def ipv4(s: Seg, proto: int = 6, l4: bytes | None = None, frag: int = 0x4000) -> bytes:
    return ip_packet(s.src, s.dst, _l4(s) if l4 is None else l4, proto, off=frag)


def ipv6(s: Seg, ext: bytes = b"", first_nh: int = 6) -> bytes:
    return ip_packet(s.src, s.dst, _l4(s), ext=ext, first_nh=first_nh)


def ether(ip: bytes, ethertype: int | None = None, vlans: tuple[int, ...] = ()) -> bytes:
    return link_frame(ip, 1, vlans, ethertype)


def frame(s: Seg, link: int = 1, v6: bool = False, vlans: tuple[int, ...] = ()) -> bytes:
    return link_frame(ipv6(s) if v6 else ipv4(s), link, vlans)


def write_pcap(path, frames: list[tuple[int, bytes]], linktype: int = 1, nano: bool = True, endian: str = "<",
               snaplen: int = 262144) -> bytes:
    """Write (t_ns, frame) records, cutting each to ``snaplen``; returns the file's bytes."""
    return write_capture(path, pcap_bytes(frames, linktype, nano, endian, snaplen))


def write(path, data: bytes) -> None:
    write_capture(path, data)


# ---- the corpus: one function per odd capture ----------------------------------------------------------------
def _simple(path, segs: list[Seg], **kw) -> None:
    write_pcap(path, [(s.t_ns, frame(s)) for s in segs], **kw)


def make_empty(path) -> Expect:
    write(path, b"")
    return Expect(notes={"error": "empty file"})


def make_truncated_file_header(path) -> Expect:
    write(path, pcap_header()[:13])
    return Expect(notes={"error": "truncated"})


def make_truncated_pcapng_header(path) -> Expect:
    write(path, pcapng_bytes([(1, 9)], [])[:20])
    return Expect(notes={"error": "truncated"})


def make_wrong_magic(path) -> Expect:
    write(path, b"From: someone\r\nSubject: not a capture\r\n\r\nhello\r\n")
    return Expect(notes={"error": "not a pcap or pcapng file"})


def make_gzip(path) -> Expect:
    write(path, b"\x1f\x8b\x08\x00" + b"\0" * 40)
    return Expect(notes={"error": "gzip"})


def make_bad_version(path) -> Expect:
    write(path, struct.pack("<IHHiIII", 0xA1B2C3D4, 9, 4, 0, 0, 65535, 1))
    return Expect(notes={"error": "corrupt pcap file header"})


def make_clean(path, **kw) -> Expect:
    """A whole, well-formed IMAP session: the baseline the other cases are measured against."""
    segs = conversation()
    _simple(path, segs, **kw)
    up, down = streams()
    return Expect(len(segs), len(segs), up, down)


def make_truncated_last_record(path) -> Expect:
    segs = conversation()
    data = write_pcap(path, [(s.t_ns, frame(s)) for s in segs])
    write(path, data[:-7])  # the last record loses 7 bytes
    up, down = streams()
    return Expect(len(segs) - 1, len(segs) - 1, up, down, notes={"warning": "truncated last record"})


def make_truncated_record_header(path) -> Expect:
    segs = conversation()
    data = write_pcap(path, [(s.t_ns, frame(s)) for s in segs])
    write(path, data + b"\x01\x02\x03")
    up, down = streams()
    return Expect(len(segs), len(segs), up, down, notes={"warning": "truncated record header"})


def make_corrupt_record_length(path) -> Expect:
    segs = conversation()
    data = write_pcap(path, [(s.t_ns, frame(s)) for s in segs])
    write(path, data + struct.pack("<IIII", 1, 2, 0x7FFFFFF0, 0x7FFFFFF0) + b"junk")
    return Expect(len(segs), len(segs), *streams(), notes={"warning": "corrupt record header"})


def _fcs_uncaptured(t_ns: int, frame: bytes) -> tuple[int, bytes, int]:
    """A record of ``frame`` whose original length also counts a 4-byte frame check sequence that was not
    captured (as some capture drivers write): write_pcap's (time, frame on the wire, captured length)."""
    return t_ns, frame + b"\xc0\xff\xee\x00", len(frame)


def make_snaplen(path, fcs: bool = False) -> Expect:
    """snaplen 64: Ethernet 14 + IPv4 20 + TCP 20 leaves 10 payload bytes per packet. ``fcs``: each record's
    original length also counts an uncaptured FCS; the gaps are still the segments' missing bytes, as the IP
    length says, not 4 bytes more."""
    segs = conversation()
    frames = [(s.t_ns, frame(s)) for s in segs]
    write_pcap(path, [_fcs_uncaptured(*f) for f in frames] if fcs else frames, snaplen=64)
    cut = [s for s in segs if len(s.payload) > 10]
    up = b"".join(s.payload[:10] for s in segs if s.sport == 40000)
    down = b"".join(s.payload[:10] for s in segs if s.sport == 143)
    return Expect(len(segs), len(segs), up, down,
                  notes={"cut_packets": len(cut), "keep": 10, "gap_bytes": sum(len(s.payload) - 10 for s in cut)})


def make_tso_length_zero(path, snaplen: int = 262144) -> Expect:
    """Raw IPv4 packets whose total length is 0, as TSO/GSO captures carry: the captured bytes are the packet,
    and only the record's own lengths can tell that the snap length cut one (here: to 10 payload bytes)."""
    segs = conversation(BIG, mss=20)
    frames = []
    for s in segs:
        f = bytearray(frame(s, 101))
        f[2:4] = b"\0\0"
        frames.append((s.t_ns, bytes(f)))
    write_pcap(path, frames, linktype=101, snaplen=snaplen)
    keep = snaplen - 40
    cut = [s for s in segs if len(s.payload) > keep]
    up = b"".join(s.payload[:keep] for s in segs if s.sport == 40000)
    down = b"".join(s.payload[:keep] for s in segs if s.sport == 143)
    return Expect(len(segs), len(segs), up, down,
                  notes={"cut_packets": len(cut), "gap_bytes": sum(len(s.payload) - keep for s in cut)})


def make_snaplen_tcp_header_cut(path) -> Expect:
    """snaplen 40: the TCP header itself is cut; such packets are skipped with a warning, never a crash."""
    segs = conversation()
    _simple(path, segs, snaplen=40)
    return Expect(len(segs), 0, connections=0, notes={"warning": "tcp header cut"})


def make_non_tcp(path) -> Expect:
    segs = conversation()
    udp = Seg(CLIENT, "10.0.0.53", 5353, 53, 0, 0, 0)
    udp_l4 = struct.pack("!HHHH", 5353, 53, 12, 0) + b"dns?"
    arp = ether(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\0" * 20, 0x0806)
    icmp = ipv4(udp, proto=1, l4=b"\x08\x00\x00\x00\x00\x01\x00\x01")
    frames = [(T0_NS, ether(ipv4(udp, proto=17, l4=udp_l4))), (T0_NS + 1, arp), (T0_NS + 2, ether(icmp))]
    frames += [(s.t_ns + 10, frame(s)) for s in segs]
    write_pcap(path, frames)
    return Expect(len(segs) + 3, len(segs), *streams(), notes={"kinds": {"udp": 1, "arp": 1, "icmp": 1}})


def _data_index(segs: list[Seg], n: int, up: bool | None = None) -> int:
    """Index of the n-th segment carrying payload (optionally only one direction)."""
    k = -1
    for i, s in enumerate(segs):
        if s.payload and (up is None or (s.sport == 40000) == up):
            k += 1
            if k == n:
                return i
    raise IndexError(n)


BIG = [
    (b"", b"* OK ready\r\n"),
    (b"a1 FETCH 1 BODY[]\r\n", b"* 1 FETCH (BODY[] {60}\r\n" + b"0123456789" * 6 + b")\r\na1 OK done\r\n"),
    (b"a2 LOGOUT\r\n", b"* BYE\r\na2 OK bye\r\n"),
]


def make_retransmission(path) -> Expect:
    segs = conversation(BIG, mss=20)
    i = _data_index(segs, 3, up=False)
    segs.insert(i + 2, replace(segs[i], t_ns=segs[i + 1].t_ns + 1))  # the same bytes again, a bit later
    _simple(path, sorted(segs, key=lambda s: s.t_ns))
    return Expect(len(segs), len(segs), *streams(BIG), notes={"dup": len(segs[i].payload)})


def make_out_of_order(path) -> Expect:
    segs = conversation(BIG, mss=20)
    i = _data_index(segs, 2, up=False)
    segs[i], segs[i + 1] = segs[i + 1], segs[i]  # two server segments swap places
    t = [s.t_ns for s in segs]
    for s, tt in zip(segs, sorted(t)):
        s.t_ns = tt
    _simple(path, segs)
    return Expect(len(segs), len(segs), *streams(BIG), notes={"late_t_ns": segs[i + 1].t_ns})


def make_conflicting_overlap(path) -> Expect:
    segs = conversation(BIG, mss=20)
    i = _data_index(segs, 3, up=False)
    bad = replace(segs[i], payload=segs[i].payload[:5] + b"XXXXX" + segs[i].payload[10:])
    segs.insert(i + 2, bad)
    _simple(path, segs)
    return Expect(len(segs), len(segs), *streams(BIG), notes={"conn_warning": "conflicting overlap"})


def make_gap(path) -> Expect:
    """One server segment never made it into the capture (the client did get it: its ACK says so)."""
    segs = conversation(BIG, mss=20)
    i = _data_index(segs, 3, up=False)
    lost = segs.pop(i)
    up, down = streams(BIG)
    at = sum(len(s.payload) for s in segs[:i] if s.sport == 143)
    _simple(path, segs)
    return Expect(len(segs), len(segs), up, down[:at] + down[at + len(lost.payload):],
                  notes={"gap_bytes": len(lost.payload), "gap_offset": at})


def make_hole_acked_in_steps(path) -> Expect:
    """Two server segments in a row never made it into the capture, and the client's ACKs climb through the
    hole: the first acknowledges only the first lost segment, the next one everything. One hole, one gap."""
    segs = conversation(BIG, mss=10)
    i = _data_index(segs, 3, up=False)
    lost = segs[i:i + 2]
    assert all(s.sport == 143 and s.payload for s in lost + [segs[i + 2], segs[i + 3]])
    cs = next(s.seq for s in segs[i:] if s.sport == 40000)  # the client sends nothing while the reply comes

    def ack(after: Seg, upto: int) -> Seg:
        return Seg(CLIENT, SERVER, 40000, 143, cs, upto & 0xFFFFFFFF, ACK, b"", after.t_ns + 1)

    part = ack(segs[i + 2], lost[0].seq + len(lost[0].payload))  # inside the hole
    whole = ack(segs[i + 3], segs[i + 3].seq + len(segs[i + 3].payload))  # past it
    kept = segs[:i] + [segs[i + 2], part, segs[i + 3], whole] + segs[i + 4:]
    _simple(path, kept)
    up, down = streams(BIG)
    at = sum(len(s.payload) for s in segs[:i] if s.sport == 143)
    size = sum(len(s.payload) for s in lost)
    return Expect(len(kept), len(kept), up, down[:at] + down[at + size:], notes={"gap_bytes": size,
                                                                                  "gap_offset": at})


def make_gap_at_end(path) -> Expect:
    """The capture misses the last server segment and nothing follows it but the client's ACK."""
    segs = conversation(BIG, mss=20, close=False)
    i = max(j for j, s in enumerate(segs) if s.payload and s.sport == 143)
    lost = segs.pop(i)
    _simple(path, segs)
    up, down = streams(BIG)
    return Expect(len(segs), len(segs), up, down[:-len(lost.payload)], notes={"gap_bytes": len(lost.payload)})


def make_fcs_not_captured(path, v6: bool = False, ng: bool = False) -> Expect:
    """Every record's original length counts a 4-byte frame check sequence the capture left out (as some
    capture drivers write): each packet is whole, nothing was cut, no byte is missing."""
    segs = conversation(BIG, mss=20, **(dict(client=CLIENT6, server=SERVER6) if v6 else {}))
    frames = [(s.t_ns, frame(s, v6=v6)) for s in segs]
    if ng:
        write(path, pcapng_bytes([(1, 9)], [(0, t, f, len(f) + 4) for t, f in frames]))
    else:
        write_pcap(path, [_fcs_uncaptured(*f) for f in frames])
    return Expect(len(segs), len(segs), *streams(BIG), notes={"truncated_records": len(segs)})


def make_mid_session(path) -> Expect:
    """The capture starts after the handshake and the greeting; the client uses the higher port."""
    segs = conversation()
    i = _data_index(segs, 1)  # the client's first command
    _simple(path, segs[i:])
    up, down = streams()
    return Expect(len(segs) - i, len(segs) - i, up, down[len(EXCHANGES[0][1]):])


def make_mid_session_server_first(path) -> Expect:
    """Mid-session, and the first packet caught is the server's (port 110 must still be the server)."""
    ex = [(b"", b"+OK POP3\r\n"), (b"STAT\r\n", b"+OK 2 320\r\n"), (b"QUIT\r\n", b"+OK bye\r\n")]
    segs = conversation(ex, sport=110, cport=50000)
    i = _data_index(segs, 2)  # the server's reply to STAT
    _simple(path, segs[i:])
    return Expect(len(segs) - i, len(segs) - i, b"QUIT\r\n", b"+OK 2 320\r\n+OK bye\r\n")


def make_port_reuse(path) -> Expect:
    a = conversation()
    b = conversation([(b"", b"* OK again\r\n"), (b"b1 NOOP\r\n", b"b1 OK\r\n")], c_isn=777_777, s_isn=12,
                     t0_ns=a[-1].t_ns + 1_000_000_000)
    _simple(path, a + b)
    return Expect(len(a) + len(b), len(a) + len(b), *streams(), connections=2,
                  notes={"second": (b"b1 NOOP\r\n", b"* OK again\r\nb1 OK\r\n")})


def make_syn_retry_after_rst(path) -> Expect:
    """A client retries its SYN (same ISN) after a RST: one connection attempt, as tshark counts it."""
    syn = Seg(CLIENT, SERVER, 40000, 143, 5000, 0, SYN, b"", T0_NS)
    rst = Seg(SERVER, CLIENT, 143, 40000, 0, 5001, RST | ACK, b"", T0_NS + 1000)
    segs = [syn, rst, replace(syn, t_ns=T0_NS + 3_000_000_000), replace(rst, t_ns=T0_NS + 3_000_001_000)]
    _simple(path, segs)
    return Expect(4, 4, connections=1)


def make_seq_wrap(path) -> Expect:
    """Sequence numbers wrap past 2**32 in the middle of the server's reply."""
    segs = conversation(BIG, mss=20, s_isn=0xFFFFFFFF - 30)
    _simple(path, segs)
    return Expect(len(segs), len(segs), *streams(BIG))


def make_pcapng_two_interfaces(path, endian: str = "<") -> Expect:
    """Client packets on interface 0 (microseconds), server packets on interface 1 (nanoseconds)."""
    segs = conversation(step_ns=1_234_567)
    pkts = [(0 if s.sport == 40000 else 1, s.t_ns, frame(s)) for s in segs]
    write(path, pcapng_bytes([(1, 6), (1, 9)], pkts, endian))
    times = [s.t_ns // 1000 * 1000 if s.sport == 40000 else s.t_ns for s in segs]
    return Expect(len(segs), len(segs), *streams(), notes={"t_ns": times})


def make_pcapng_simple_and_pow2(path) -> Expect:
    """An interface with a power-of-two resolution (2^-20 s) and simple packet blocks (no timestamps)."""
    segs = conversation()
    pkts = [(0, s.t_ns, frame(s)) for s in segs[:3]]
    write(path, pcapng_bytes([(1, 0x80 | 20)], pkts, simple=[frame(s) for s in segs[3:]]))
    return Expect(len(segs), len(segs), *streams(), notes={"warning": "simple packet blocks"})


def make_pcapng_truncated(path) -> Expect:
    segs = conversation()
    data = pcapng_bytes([(1, 9)], [(0, s.t_ns, frame(s)) for s in segs])
    write(path, data[:-10])
    return Expect(len(segs) - 1, len(segs) - 1, *streams(), notes={"warning": "truncated last block"})


def make_link(path, link: int, v6: bool = False, vlans: tuple[int, ...] = (), nano: bool = True,
              endian: str = "<") -> Expect:
    ex = EXCHANGES
    kw = dict(client=CLIENT6, server=SERVER6) if v6 else {}
    segs = conversation(ex, **kw)
    write_pcap(path, [(s.t_ns, frame(s, link, v6, vlans)) for s in segs], linktype=link, nano=nano,
               endian=endian)
    return Expect(len(segs), len(segs), *streams(ex))


def make_ipv6_ext_and_fragment(path) -> Expect:
    """IPv6 with hop-by-hop + destination-options headers before TCP, and one non-first fragment."""
    segs = conversation(client=CLIENT6, server=SERVER6)
    hop = bytes([60, 0]) + b"\x01\x04\0\0\0\0"  # next: dest options; 8 bytes
    dst = bytes([6, 0]) + b"\x01\x04\0\0\0\0"  # next: TCP
    frames = [(s.t_ns, ether(ipv6(s, hop + dst, first_nh=0), 0x86DD)) for s in segs]
    frag = bytes([6, 0, 0x00, 0x08 | 0, 0, 0, 0, 1])  # fragment offset 1 (x8 bytes): not the first
    frames.append((T0_NS + 10**9, ether(ipv6(segs[0], frag, first_nh=44), 0x86DD)))
    write_pcap(path, frames)
    return Expect(len(segs) + 1, len(segs), *streams(), notes={"warning": "fragment"})


def make_unknown_linktype(path) -> Expect:
    write_pcap(path, [(T0_NS, b"\x01\x02\x03\x04")], linktype=147)
    return Expect(1, 0, connections=0, notes={"warning": "link type 147"})


# The corpus of inputs that must end in a clean error or a clean result: name -> maker.
CORPUS = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("make_") and name != "make_link"}
CORPUS.update({
    "sll": partial(make_link, link=113),
    "sll2": partial(make_link, link=276),
    "null": partial(make_link, link=0),
    "null_ipv6": partial(make_link, link=0, v6=True),
    "loop": partial(make_link, link=108),
    "raw": partial(make_link, link=101),
    "raw12": partial(make_link, link=12),
    "raw14_ipv6": partial(make_link, link=14, v6=True),
    "vlan": partial(make_link, link=1, vlans=(0x8100,)),
    "qinq": partial(make_link, link=1, vlans=(0x88A8, 0x8100)),
    "ipv6": partial(make_link, link=1, v6=True),
    "ipv6_vlan": partial(make_link, link=1, v6=True, vlans=(0x8100,)),
    "big_endian_micro": partial(make_link, link=1, nano=False, endian=">"),
    "big_endian_nano": partial(make_link, link=1, nano=True, endian=">"),
    "little_endian_micro": partial(make_link, link=1, nano=False),
    "pcapng_big_endian": partial(make_pcapng_two_interfaces, endian=">"),
    "snaplen_fcs": partial(make_snaplen, fcs=True),
    "fcs_not_captured_ipv6": partial(make_fcs_not_captured, v6=True),
    "tso_length_zero_cut": partial(make_tso_length_zero, snaplen=50),
    "fcs_not_captured_pcapng": partial(make_fcs_not_captured, ng=True),
})
