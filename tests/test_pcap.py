"""The pcap/pcapng reader: real peer captures against tshark, every odd capture in tests/badpcaps.py, scapy as
a second oracle for field values, and property tests that garbage never ends in a traceback."""

from __future__ import annotations

import shutil
import subprocess
import struct
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import badpcaps
from mailstudy.net.reassembly import packets_frame
from mailstudy.net.pcap import PcapError, PcapReader, PcapStats, TcpPacket, read_tcp, \
    read_tcp_with_stats

import needs
from peers import PEER_FILES
TSHARK = shutil.which("tshark")

needs_tshark = pytest.mark.usefixtures("tshark")  # skip where missing, fail under CI (tests/needs.py)
needs_peer = pytest.mark.usefixtures("peer_captures")


def tshark_fields(path, *fields: str, display_filter: str = "tcp") -> list[list[str]]:
    cmd = [TSHARK, "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


# ---- real captures -------------------------------------------------------------------------------------------
@needs_peer
@pytest.mark.parametrize("path", PEER_FILES, ids=lambda p: p.name)
def test_peer_capture_reads_without_warnings(path):
    packets, stats = read_tcp_with_stats(path)
    assert stats.tcp_packets == len(packets) > 0
    assert stats.packets_total == stats.tcp_packets + stats.non_tcp
    assert stats.warnings == []
    assert all(isinstance(p, TcpPacket) and not p.truncated for p in packets)
    assert [p.index for p in packets] == sorted(p.index for p in packets)


@needs_peer
@needs_tshark
@pytest.mark.parametrize("path", PEER_FILES, ids=lambda p: p.name)
def test_peer_capture_matches_tshark_packet_by_packet(path):
    ours = packets_frame(path)
    packets = list(read_tcp(path))
    theirs = tshark_fields(path, "frame.number", "tcp.stream", "tcp.len", "tcp.srcport", "tcp.seq_raw",
                           "frame.time_epoch")
    assert [p.index for p in packets] == [int(r[0]) for r in theirs]
    assert list(ours["stream"]) == [int(r[1]) for r in theirs]
    assert list(ours["payload_len"]) == [int(r[2]) for r in theirs]
    assert list(ours["sport"]) == [int(r[3]) for r in theirs]
    assert list(ours["seq"]) == [int(r[4]) for r in theirs]
    assert [round(p.t, 6) for p in packets] == [round(float(r[5]), 6) for r in theirs]


@needs_peer
def test_redis_capture_is_tcp_on_6379():
    path = needs.peer("redis-50-pings.pcap")
    packets = list(read_tcp(path))
    assert len(packets) == 116
    assert all(6379 in (p.sport, p.dport) for p in packets)
    assert b"PING" in b"".join(p.payload for p in packets)


@needs_peer
def test_null_linktype_peer_capture():
    path = needs.peer("pop3-starttls.pcap")
    reader = PcapReader(path)
    packets = list(reader)
    assert reader.stats.link_types == [0]
    assert {p.dport for p in packets} | {p.sport for p in packets} >= {110}


# ---- the corpus of odd captures ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(badpcaps.CORPUS))
def test_corpus_gives_one_line_error_or_correct_result(name, tmp_path):
    path = tmp_path / f"{name}.pcap"
    expect = badpcaps.CORPUS[name](path)
    error = expect.notes.get("error")
    if error:
        with pytest.raises(PcapError) as exc:
            read_tcp(path)
        msg = str(exc.value)
        assert "\n" not in msg and error in msg and path.name in msg
        return
    packets, stats = read_tcp_with_stats(path)
    assert stats.packets_total == expect.packets_total
    assert stats.tcp_packets == len(packets) == expect.tcp_packets
    if "warning" in expect.notes:
        assert any(expect.notes["warning"] in w for w in stats.warnings), stats.warnings
    elif "kinds" not in expect.notes:
        assert stats.warnings == []


@pytest.mark.parametrize("name", ["empty", "truncated_file_header", "wrong_magic", "gzip", "bad_version",
                                  "truncated_pcapng_header"])
def test_unreadable_files_raise_at_open_not_at_first_next(name, tmp_path):
    path = tmp_path / "f.pcap"
    badpcaps.CORPUS[name](path)
    with pytest.raises(PcapError):
        PcapReader(path)
    with pytest.raises(ValueError):  # PcapError is a ValueError for callers that catch broadly
        read_tcp_with_stats(path)


def test_empty_file_message(tmp_path):
    path = tmp_path / "empty.pcap"
    badpcaps.make_empty(path)
    with pytest.raises(PcapError, match="empty file"):
        read_tcp(path)


def test_missing_file_is_a_pcap_error(tmp_path):
    with pytest.raises(PcapError, match="cannot open nothing.pcap"):
        read_tcp(tmp_path / "nothing.pcap")


def test_fields_of_a_clean_capture(tmp_path):
    path = tmp_path / "clean.pcap"
    badpcaps.make_clean(path)
    segs = badpcaps.conversation()
    packets = list(read_tcp(path))
    assert len(packets) == len(segs)
    for p, s in zip(packets, segs):
        assert (p.src, p.sport, p.dst, p.dport, p.seq, p.ack, p.flags, p.payload) == \
            (s.src, s.sport, s.dst, s.dport, s.seq, s.ack, s.flags, s.payload)
        assert p.t_ns == s.t_ns  # nanosecond file: exact
        assert p.t == s.t_ns / 1_000_000_000  # correctly rounded: int / int
        assert p.cap_len == p.wire_len == max(60, 54 + len(s.payload))  # padded frames keep their length...
        assert not p.truncated  # ...but padding is not payload
    assert [p.index for p in packets] == list(range(1, len(segs) + 1))


def test_microsecond_file_keeps_microseconds(tmp_path):
    path = tmp_path / "us.pcap"
    badpcaps.make_clean(path, nano=False)
    packets = list(read_tcp(path))
    assert packets[0].t_ns == badpcaps.T0_NS // 1000 * 1000


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcapng_two_interfaces_with_their_own_resolution(endian, tmp_path):
    path = tmp_path / "two.pcapng"
    expect = badpcaps.make_pcapng_two_interfaces(path, endian)
    reader = PcapReader(path)
    packets = list(reader)
    assert reader.stats.format == "pcapng"
    assert [p.t_ns for p in packets] == expect.notes["t_ns"]
    assert packets[0].t_ns != badpcaps.T0_NS and packets[1].t_ns == badpcaps.T0_NS + 1_234_567


def test_pcapng_power_of_two_resolution_and_simple_blocks(tmp_path):
    path = tmp_path / "spb.pcapng"
    badpcaps.make_pcapng_simple_and_pow2(path)
    packets, stats = read_tcp_with_stats(path)
    segs = badpcaps.conversation()
    for p, s in zip(packets[:3], segs):
        assert abs(p.t_ns - s.t_ns) <= 1000  # 2^-20 s is about 0.95 microseconds
    assert all(p.t_ns == packets[2].t_ns for p in packets[3:])
    assert [p.payload for p in packets] == [s.payload for s in segs]


def test_snap_length_cut_packets(tmp_path):
    path = tmp_path / "snap.pcap"
    expect = badpcaps.make_snaplen(path)
    packets, stats = read_tcp_with_stats(path)
    cut = [p for p in packets if p.truncated]
    assert len(cut) == expect.notes["cut_packets"] == stats.truncated_records
    for p in cut:
        assert p.cap_len == 64 < p.wire_len
        assert len(p.payload) == 10
    assert all(not p.truncated for p in packets if len(p.payload) < 10)


def test_tcp_header_cut_by_snap_length_is_counted_not_yielded(tmp_path):
    path = tmp_path / "snap40.pcap"
    badpcaps.make_snaplen_tcp_header_cut(path)
    packets, stats = read_tcp_with_stats(path)
    assert packets == []
    assert stats.non_tcp_kinds == {"tcp-header-cut": stats.packets_total}


def test_non_tcp_is_counted_by_kind(tmp_path):
    path = tmp_path / "mixed.pcap"
    expect = badpcaps.make_non_tcp(path)
    packets, stats = read_tcp_with_stats(path)
    assert stats.non_tcp == 3
    assert stats.non_tcp_kinds == expect.notes["kinds"]
    assert len(packets) == expect.tcp_packets


def test_truncated_last_record_keeps_the_packets_before_it(tmp_path):
    path = tmp_path / "cut.pcap"
    expect = badpcaps.make_truncated_last_record(path)
    stats = PcapStats()
    packets = list(read_tcp(path, stats))
    assert len(packets) == expect.tcp_packets
    assert len(stats.warnings) == 1 and "truncated last record" in stats.warnings[0]


@pytest.mark.parametrize("name", ["ipv6", "ipv6_vlan", "null_ipv6", "raw14_ipv6"])
def test_ipv6_addresses(name, tmp_path):
    path = tmp_path / "v6.pcap"
    badpcaps.CORPUS[name](path)
    packets = list(read_tcp(path))
    assert packets[0].src == badpcaps.CLIENT6 and packets[0].dst == badpcaps.SERVER6


def test_ipv6_extension_headers_and_fragment(tmp_path):
    path = tmp_path / "v6ext.pcap"
    expect = badpcaps.make_ipv6_ext_and_fragment(path)
    packets, stats = read_tcp_with_stats(path)
    assert [p.payload for p in packets] == [s.payload for s in badpcaps.conversation()]
    assert stats.non_tcp_kinds == {"ipv6-fragment": 1}
    assert len(packets) == expect.tcp_packets


# ---- oracles on the corpus -----------------------------------------------------------------------------------
ORACLE_CASES = ["clean", "vlan", "qinq", "sll", "sll2", "null", "loop", "raw", "ipv6", "big_endian_micro",
                "pcapng_two_interfaces", "pcapng_big_endian", "non_tcp", "snaplen", "port_reuse"]


@needs_tshark
@pytest.mark.parametrize("name", ORACLE_CASES)
def test_corpus_against_tshark(name, tmp_path):
    path = tmp_path / f"{name}.pcap"
    badpcaps.CORPUS[name](path)
    theirs = tshark_fields(path, "frame.number", "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.len",
                           "tcp.stream")
    ours = packets_frame(path)
    packets = list(read_tcp(path))
    assert [p.index for p in packets] == [int(r[0]) for r in theirs]
    assert list(ours["sport"]) == [int(r[1]) for r in theirs]
    assert list(ours["dport"]) == [int(r[2]) for r in theirs]
    assert list(ours["seq"]) == [int(r[3]) for r in theirs]
    # tcp.len is the segment's length from the IP header; ours is what was captured of it
    assert [p.wire_len - p.cap_len + len(p.payload) for p in packets] == [int(r[4]) for r in theirs]
    assert list(ours["stream"]) == [int(r[5]) for r in theirs]


@pytest.mark.parametrize("name", ["clean", "vlan", "sll", "ipv6", "null", "big_endian_nano"])
def test_corpus_against_scapy(name, tmp_path):
    scapy_all = pytest.importorskip("scapy.all", reason="scapy is not installed")
    path = tmp_path / f"{name}.pcap"
    badpcaps.CORPUS[name](path)
    theirs = [pkt for pkt in scapy_all.rdpcap(str(path)) if pkt.haslayer(scapy_all.TCP)]
    ours = list(read_tcp(path))
    assert len(ours) == len(theirs)
    for p, q in zip(ours, theirs):
        tcp = q[scapy_all.TCP]
        ip = tcp.underlayer
        assert (p.src, p.dst, p.sport, p.dport, p.seq, p.ack) == (ip.src, ip.dst, tcp.sport, tcp.dport, tcp.seq,
                                                                  tcp.ack)
        assert p.flags == int(tcp.flags)
        assert p.payload == bytes(tcp.payload).rstrip(b"\x00")[:len(p.payload)] or p.payload == b""
        assert len(p.payload) == len(bytes(tcp.payload).rstrip(b"\x00")) or not p.payload


def test_scapy_written_pcapng_reads(tmp_path):
    scapy_all = pytest.importorskip("scapy.all", reason="scapy is not installed")
    pkts = [scapy_all.Ether() / scapy_all.IP(src="10.1.1.1", dst="10.1.1.2") /
            scapy_all.TCP(sport=1234, dport=993, seq=7, flags="PA") / scapy_all.Raw(b"x" * n) for n in (1, 50, 500)]
    pkts.append(scapy_all.Ether() / scapy_all.IP() / scapy_all.UDP() / scapy_all.Raw(b"u"))
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i / 4
    path = tmp_path / "scapy.pcapng"
    with scapy_all.PcapNgWriter(str(path)) as w:
        for p in pkts:
            w.write(p)
    packets, stats = read_tcp_with_stats(path)
    assert [len(p.payload) for p in packets] == [1, 50, 500]
    assert [p.t for p in packets] == [1_700_000_000, 1_700_000_000.25, 1_700_000_000.5]
    assert stats.non_tcp_kinds == {"udp": 1} and stats.format == "pcapng"


def test_packets_frame_columns(tmp_path):
    path = tmp_path / "reuse.pcap"
    expect = badpcaps.make_port_reuse(path)
    df = packets_frame(path)
    assert list(df.columns) == ["time", "src", "sport", "dst", "dport", "flags", "seq", "ack", "payload_len",
                                "stream"]
    assert len(df) == expect.tcp_packets
    assert sorted(Counter(df["stream"]).keys()) == [0, 1]
    second = sum(len(x) for x in expect.notes["second"])
    assert int(df["payload_len"].sum()) == len(expect.up) + len(expect.down) + second


# ---- garbage never ends in a traceback -----------------------------------------------------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_are_an_error_or_a_result(tmp_path, data):
    path = tmp_path / "random.pcap"
    path.write_bytes(data)
    try:
        list(read_tcp(path))
    except PcapError as e:
        assert "\n" not in str(e)


CLEAN_FILE = None


def _clean_bytes(tmp_path_factory) -> bytes:
    global CLEAN_FILE
    if CLEAN_FILE is None:
        p = tmp_path_factory.mktemp("clean") / "clean.pcap"
        badpcaps.make_clean(p)
        CLEAN_FILE = p.read_bytes()
    return CLEAN_FILE


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_corrupted_capture_never_tracebacks(tmp_path_factory, data):
    """Flip, cut and overwrite bytes anywhere in a valid capture: a PcapError or packets, nothing else."""
    raw = bytearray(_clean_bytes(tmp_path_factory))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    raw = raw[:data.draw(st.integers(0, len(raw)))]
    path = tmp_path_factory.mktemp("corrupt") / "c.pcap"
    path.write_bytes(bytes(raw))
    try:
        packets, stats = read_tcp_with_stats(path)
    except PcapError as e:
        assert "\n" not in str(e)
    else:
        assert stats.packets_total == stats.tcp_packets + stats.non_tcp
        from mailstudy.net.reassembly import reassemble
        reassemble(packets)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_corrupted_pcapng_never_tracebacks(tmp_path_factory, data):
    segs = badpcaps.conversation()
    raw = bytearray(badpcaps.pcapng_bytes([(1, 9), (113, 6)], [(i % 2, s.t_ns, badpcaps.frame(s, 1 if i % 2 == 0
                                                                                             else 113))
                                                               for i, s in enumerate(segs)]))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("ng") / "c.pcapng"
    path.write_bytes(bytes(raw[:data.draw(st.integers(0, len(raw)))]))
    try:
        read_tcp_with_stats(path)
    except PcapError as e:
        assert "\n" not in str(e)


def test_many_warnings_are_capped(tmp_path):
    segs = badpcaps.conversation()
    frames = []
    for i in range(150):
        frag = badpcaps.ipv4(segs[0], frag=0x0010)  # a non-first fragment
        frames.append((badpcaps.T0_NS + i, badpcaps.ether(frag)))
    path = tmp_path / "frags.pcap"
    badpcaps.write_pcap(path, frames)
    packets, stats = read_tcp_with_stats(path)
    assert packets == [] and stats.non_tcp == 150
    assert len(stats.warnings) == 100 and stats.suppressed_warnings == 50


def test_record_spanning_read_blocks(tmp_path):
    """Records larger than what is left of a 1 MiB read block are stitched across reads."""
    segs = badpcaps.conversation([(b"", b"x" * 60_000)] * 40, mss=60_000)
    path = tmp_path / "big.pcap"
    badpcaps.write_pcap(path, [(s.t_ns, badpcaps.frame(s)) for s in segs])
    packets = list(read_tcp(path))
    assert sum(len(p.payload) for p in packets) == 40 * 60_000
    assert len(packets) == len(segs)


# ---- the pcap format lives once: layouts, file offsets, the writer ------------------------------------------------
@pytest.mark.parametrize("name", ["clean", "vlan", "qinq", "sll", "sll2", "null_ipv6", "loop", "raw", "ipv6",
                                  "ipv6_vlan", "big_endian_micro", "pcapng_two_interfaces",
                                  "pcapng_simple_and_pow2", "ipv6_ext_and_fragment", "snaplen", "non_tcp"])
def test_tcp_offset_is_where_each_packets_tcp_header_sits_in_the_file(tmp_path, name):
    path = tmp_path / f"{name}.pcap"
    badpcaps.CORPUS[name](path)
    data = path.read_bytes()
    packets = list(read_tcp(path))
    assert packets
    for p in packets:
        at = p.tcp_offset
        sport, dport, seq, ack = struct.unpack_from("!HHII", data, at)
        assert (sport, dport, seq, ack) == (p.sport, p.dport, p.seq, p.ack), p.index
        start = at + ((data[at + 12] >> 4) << 2)
        assert data[start:start + len(p.payload)] == p.payload, p.index


def test_layouts_pack_and_unpack_symmetrically_and_match_the_wire_offsets():
    from mailstudy.net.layouts import IPV4, IPV6, LINKS, TCP, TCP_FLAGS

    hdr = TCP.pack(sport=40000, dport=143, seq=7, ack=9, flags=TCP_FLAGS["SYN"] | TCP_FLAGS["ACK"])
    assert TCP.size == 20 and TCP.unpack(hdr)["flags"] == 0x12 and TCP.offsets["sum"] == 16
    assert IPV4.size == 20 and IPV4.offsets["src"] == 12 and IPV6.size == 40 and IPV6.offsets["src"] == 8
    assert {lt: link.length for lt, link in LINKS.items()} == {1: 14, 113: 16, 276: 20, 101: 0, 12: 0, 14: 0,
                                                              0: 4, 108: 4}
    with pytest.raises(TypeError, match="no field 'bogus'"):
        TCP.pack(bogus=1)


def test_the_writer_is_the_readers_mirror(tmp_path):
    """What pcap_write writes, the reader reads back field for field, on every declared link layout."""
    from mailstudy.net.layouts import LINKS
    from mailstudy.net.pcap_write import pcap_bytes, tcp_frame, write_capture

    for lt in LINKS:
        for src, dst in (("10.1.2.3", "10.3.2.1"), ("fd00::3", "fd00::4")):
            path = tmp_path / f"{lt}-{len(src)}.pcap"
            frames = [(badpcaps.T0_NS + i, tcp_frame(src, dst, 50000 + i, 993, 10 * i, 0, 0x18, b"p%d" % i, lt,
                                                     checksums=True)) for i in range(3)]
            write_capture(path, pcap_bytes(frames, lt))
            got = [(p.t_ns, p.src, p.dst, p.sport, p.dport, p.seq, p.flags, p.payload) for p in read_tcp(path)]
            assert got == [(badpcaps.T0_NS + i, src, dst, 50000 + i, 993, 10 * i, 0x18, b"p%d" % i)
                           for i in range(3)], lt
