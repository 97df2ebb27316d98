"""TCP reassembly: streams of real captures against tshark's "follow", every odd case in tests/badpcaps.py, and
a property test that any segmentation, duplication and reordering of a stream gives the stream back."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import badpcaps
from mailstudy.net.pcap import TcpPacket, read_tcp, read_tcp_with_stats
from mailstudy.net.reassembly import StreamChunk, TcpConnection, reassemble

import needs
from peers import PEER
PEER_FILES = sorted(PEER.glob("*.pcap*")) if PEER.is_dir() else []
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.usefixtures("tshark")  # skip where missing, fail under CI (tests/needs.py)
needs_peer = pytest.mark.usefixtures("peer_captures")


def conns_of(path) -> list[TcpConnection]:
    return reassemble(read_tcp(path))


def tshark_follow(path, n_streams: int) -> list[dict]:
    """tshark's reassembled payload per stream: {"node0": "ip:port", "0": bytes, "1": bytes}."""
    cmd = [TSHARK, "-r", str(path), "-q"]
    for i in range(n_streams):
        cmd += ["-z", f"follow,tcp,raw,{i}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result: dict[int, dict] = {}  # tshark prints the streams in reverse order: key them by the filter line
    for block in out.split("Follow: tcp,raw")[1:]:
        d = {"0": b"", "1": b""}
        for line in block.splitlines():
            if line.startswith("Filter: tcp.stream eq "):
                result[int(line.rsplit(" ", 1)[1])] = d
            elif line.startswith("Node 0: "):
                d["node0"] = line[8:].strip()
            elif line.startswith("\t") and line.strip():
                d["1"] += bytes.fromhex(line.strip())
            elif line and all(ch in "0123456789abcdef" for ch in line):
                d["0"] += bytes.fromhex(line)
    return [result[i] for i in sorted(result)]


# ---- real captures -------------------------------------------------------------------------------------------
@needs_peer
@needs_tshark
@pytest.mark.parametrize("path", PEER_FILES, ids=lambda p: p.name)
def test_peer_streams_equal_tshark_follow(path):
    conns = conns_of(path)
    theirs = tshark_follow(path, len(conns))
    assert len(theirs) == len(conns)
    for c, t in zip(conns, theirs):
        client = f"{c.client[0]}:{c.client[1]}"
        up, down = (t["0"], t["1"]) if t["node0"] == client else (t["1"], t["0"])
        assert c.stream("up") == up
        assert c.stream("down") == down
        assert c.gaps == 0 and not any("conflict" in w for w in c.warnings)


@needs_peer
@needs_tshark
@pytest.mark.parametrize("path", PEER_FILES, ids=lambda p: p.name)
def test_peer_payload_per_connection_equals_tshark(path):
    conns = conns_of(path)
    out = subprocess.run([TSHARK, "-r", str(path), "-Y", "tcp", "-T", "fields", "-e", "tcp.stream", "-e",
                          "tcp.len"], capture_output=True, text=True, check=True).stdout
    frames: dict[int, int] = {}
    payload: dict[int, int] = {}
    for line in out.splitlines():
        s, n = map(int, line.split("\t"))
        frames[s] = frames.get(s, 0) + 1
        payload[s] = payload.get(s, 0) + n
    assert sorted(frames) == [c.index for c in conns]
    for c in conns:
        assert c.packets == frames[c.index]
        assert c.bytes_up + c.bytes_down + c.dup_bytes == payload[c.index]


@needs_peer
def test_peer_pop3_sessions():
    path = needs.peer("pop3.pcap")
    conns = conns_of(path)
    assert len(conns) == 7
    assert all(c.server[1] == 110 and c.t_syn is not None and not c.mid_stream and c.closed for c in conns)
    assert conns[0].bytes_up == conns[0].bytes_down == 0  # connection refused: SYN, RST, retried
    full = [c for c in conns if c.bytes_down]
    assert len(full) == 5
    assert all(c.stream("down").startswith(b"+OK") for c in full)
    assert all(c.stream("up").startswith((b"CAPA\r\n", b"AUTH\r\n")) for c in full)
    assert b"RETR 3\r\nQUIT\r\n" in full[-1].stream("up") and len(full[-1].stream("down")) == 19651


@needs_peer
def test_peer_redis_is_one_session_on_6379():
    path = needs.peer("redis-50-pings.pcap")
    (c,) = conns_of(path)
    assert c.server == ("127.0.0.1", 6379)
    assert c.stream("up").count(b"PING") == 50
    assert c.t_syn == c.t_first and c.closed


# ---- the corpus ----------------------------------------------------------------------------------------------
STREAM_CASES = sorted(n for n in badpcaps.CORPUS if n not in ("empty", "truncated_file_header", "wrong_magic",
                                                               "gzip", "bad_version", "truncated_pcapng_header"))


@pytest.mark.parametrize("name", STREAM_CASES)
def test_corpus_streams(name, tmp_path):
    path = tmp_path / f"{name}.pcap"
    expect = badpcaps.CORPUS[name](path)
    conns = conns_of(path)
    assert len(conns) == expect.connections
    if not conns:
        return
    c = conns[0]
    assert c.stream("up") == expect.up
    assert c.stream("down") == expect.down
    assert c.bytes_up == len(expect.up) and c.bytes_down == len(expect.down)
    assert c.gap_bytes == expect.notes.get("gap_bytes", 0)
    if "conn_warning" in expect.notes:
        assert any(expect.notes["conn_warning"] in w for w in c.warnings), c.warnings
    elif not c.gaps and not c.mid_stream:
        assert c.warnings == []
    for conn in conns:
        assert conn.client[1] in (40000, 50000) and conn.server[1] in (143, 110)
        assert sum(len(ch.data) for ch in conn.chunks) == conn.bytes_up + conn.bytes_down


def test_clean_session(tmp_path):
    path = tmp_path / "clean.pcap"
    badpcaps.make_clean(path)
    (c,) = conns_of(path)
    segs = badpcaps.conversation()
    assert c.client == (badpcaps.CLIENT, 40000) and c.server == (badpcaps.SERVER, 143)
    assert c.t_syn == c.t_first == segs[0].t_ns / 1_000_000_000
    assert c.t_last == segs[-1].t_ns / 1_000_000_000
    assert c.packets == len(segs) and c.closed and not c.reset and not c.mid_stream
    assert (c.gaps, c.gap_bytes, c.dup_bytes) == (0, 0, 0)
    # one chunk per data segment, each stamped with its own packet's time, in capture order
    data_segs = [s for s in segs if s.payload]
    assert [(ch.direction, ch.t, ch.data) for ch in c.chunks] == [
        ("up" if s.sport == 40000 else "down", s.t_ns / 1_000_000_000, s.payload) for s in data_segs]
    assert all(isinstance(ch, StreamChunk) for ch in c.chunks)


def test_retransmission_is_counted_not_repeated(tmp_path):
    path = tmp_path / "rexmit.pcap"
    expect = badpcaps.make_retransmission(path)
    (c,) = conns_of(path)
    assert c.stream("down") == expect.down
    assert c.dup_bytes == expect.notes["dup"]
    assert c.warnings == [] and c.gaps == 0


def test_out_of_order_is_delivered_in_order_at_the_filling_time(tmp_path):
    path = tmp_path / "ooo.pcap"
    expect = badpcaps.make_out_of_order(path)
    (c,) = conns_of(path)
    assert c.stream("down") == expect.down and c.warnings == []
    t_late = expect.notes["late_t_ns"] / 1_000_000_000
    # the early segment waits for the late one: both become readable when the late one arrives
    assert [ch.t for ch in c.chunks].count(t_late) == 2
    times = [ch.t for ch in c.chunks]
    assert times == sorted(times)


def test_conflicting_overlap_keeps_first_copy_and_warns(tmp_path):
    path = tmp_path / "conflict.pcap"
    expect = badpcaps.make_conflicting_overlap(path)
    (c,) = conns_of(path)
    assert c.stream("down") == expect.down  # the first copy won
    assert b"XXXXX" not in c.stream("down")
    (w,) = [w for w in c.warnings if "conflicting" in w]
    assert "5 of 20" in w and "down stream" in w and "offset 52" in w


@pytest.mark.parametrize("name", ["gap", "hole_acked_in_steps"])
def test_a_gap_is_reported_once_and_the_stream_goes_on(tmp_path, name):
    """One lost segment; and two in a row, with an ACK inside the hole before the one past it: one gap of both,
    not one per ACK (CI once saw two warnings for one hole, on a loopback where the ACKs came that way)."""
    path = tmp_path / f"{name}.pcap"
    expect = badpcaps.CORPUS[name](path)
    (c,) = conns_of(path)
    assert (c.gaps, c.gap_bytes) == (1, expect.notes["gap_bytes"])
    (w,) = c.warnings
    assert f"{expect.notes['gap_bytes']} bytes missing at offset {expect.notes['gap_offset']}" in w
    assert c.stream("down") == expect.down
    assert c.stream("down").endswith(b"a2 OK bye\r\n")  # delivered after the gap


@pytest.mark.parametrize("name", ["fcs_not_captured", "fcs_not_captured_ipv6", "fcs_not_captured_pcapng"])
def test_an_uncaptured_frame_check_sequence_is_not_a_gap(tmp_path, name):
    """Records whose original length counts 4 bytes of FCS the capture left out hold whole packets: the IP
    length says so (the fast path, the decoding path and pcapng alike), so no packet is cut and no byte missing."""
    path = tmp_path / f"{name}.pcap"
    expect = badpcaps.CORPUS[name](path)
    packets, stats = read_tcp_with_stats(path)
    assert stats.truncated_records == expect.notes["truncated_records"] == len(packets)
    assert all(p.wire_len == p.cap_len + 4 and not p.truncated for p in packets)
    (c,) = conns_of(path)
    assert (c.gaps, c.gap_bytes, c.warnings) == (0, 0, [])
    assert (c.stream("up"), c.stream("down")) == (expect.up, expect.down)


def test_gap_at_the_end(tmp_path):
    path = tmp_path / "gap_end.pcap"
    expect = badpcaps.make_gap_at_end(path)
    (c,) = conns_of(path)
    assert (c.gaps, c.gap_bytes) == (1, expect.notes["gap_bytes"])
    assert not c.closed


def test_mid_session_guesses_the_server_by_port(tmp_path):
    path = tmp_path / "mid.pcap"
    badpcaps.make_mid_session(path)
    (c,) = conns_of(path)
    assert c.mid_stream and c.t_syn is None and c.server[1] == 143
    path2 = tmp_path / "mid2.pcap"
    expect = badpcaps.make_mid_session_server_first(path2)
    (c2,) = conns_of(path2)
    assert c2.mid_stream and c2.server == (badpcaps.SERVER, 110) and c2.client[1] == 50000
    assert c2.stream("down") == expect.down and c2.stream("up") == expect.up


def test_port_reuse_makes_two_connections(tmp_path):
    path = tmp_path / "reuse.pcap"
    expect = badpcaps.make_port_reuse(path)
    a, b = conns_of(path)
    assert (a.index, b.index) == (0, 1)
    assert a.client == b.client and a.server == b.server
    assert (b.stream("up"), b.stream("down")) == expect.notes["second"]
    assert a.closed and b.closed and a.t_last < b.t_syn


def test_syn_retried_after_rst_is_one_attempt(tmp_path):
    path = tmp_path / "retry.pcap"
    badpcaps.make_syn_retry_after_rst(path)
    (c,) = conns_of(path)
    assert c.reset and c.closed and c.packets == 4


def test_sequence_numbers_wrap(tmp_path):
    path = tmp_path / "wrap.pcap"
    expect = badpcaps.make_seq_wrap(path)
    (c,) = conns_of(path)
    assert c.stream("down") == expect.down and c.warnings == []


@pytest.mark.parametrize("name", ["snaplen", "snaplen_fcs", "tso_length_zero", "tso_length_zero_cut"])
def test_snap_length_cut_segments_are_gaps(tmp_path, name):
    """Each segment the snap length cut is a gap of what it lost, as the IP length says (an uncaptured FCS
    counted in the record is not lost payload); with no IP length (TSO), as the record's lengths say."""
    path = tmp_path / f"{name}.pcap"
    expect = badpcaps.CORPUS[name](path)
    (c,) = conns_of(path)
    assert c.gaps == expect.notes["cut_packets"] and (c.gaps > 0) == ("cut" in name or "snaplen" in name)
    assert c.gap_bytes == expect.notes["gap_bytes"]
    assert all("snap length" in w for w in c.warnings)
    assert (c.stream("up"), c.stream("down")) == (expect.up, expect.down)


def test_stream_direction_is_checked():
    c = TcpConnection(0, ("a", 1), ("b", 2), 0.0)
    with pytest.raises(ValueError, match="direction"):
        c.stream("sideways")


# ---- any segmentation, duplication and reordering gives the stream back ------------------------------------
def _packets(up: bytes, down: bytes, cuts_up, cuts_down, isn_c: int, isn_s: int, rng: random.Random,
             dup_p: float, swap_p: float) -> list[TcpPacket]:
    C, S = ("10.9.0.2", 50123), ("10.9.0.1", 993)
    pk: list[tuple] = [(C, S, isn_c, 0, 0x02, b""), (S, C, isn_s, isn_c + 1, 0x12, b""),
                       (C, S, isn_c + 1, isn_s + 1, 0x10, b"")]

    def pieces(data, cuts):
        points = sorted({0, len(data), *[c % (len(data) + 1) for c in cuts]})
        return [(a, data[a:b]) for a, b in zip(points, points[1:])]

    segs = [(C, S, isn_c + 1 + a, isn_s + 1, 0x18, d) for a, d in pieces(up, cuts_up)]
    # the server's data acknowledges no client data: on a real path no ACK is seen before the data it covers
    segs += [(S, C, isn_s + 1 + a, isn_c + 1, 0x18, d) for a, d in pieces(down, cuts_down)]
    out = []
    for s in segs:
        out.append(s)
        if rng.random() < dup_p:
            out.append(s)
    for i in range(len(out) - 1):  # local reordering, as on a real path
        if rng.random() < swap_p:
            out[i], out[i + 1] = out[i + 1], out[i]
    pk += out
    # the last ACKs come after everything, and FINs close both ways
    pk += [(C, S, isn_c + 1 + len(up), isn_s + 1 + len(down), 0x11, b""),
           (S, C, isn_s + 1 + len(down), isn_c + 2 + len(up), 0x11, b""),
           (C, S, isn_c + 2 + len(up), isn_s + 2 + len(down), 0x10, b"")]
    return [TcpPacket(i * 0.001, a[0], a[1], b[0], b[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, f, d, 54 + len(d),
                      54 + len(d), False, i + 1) for i, (a, b, seq, ack, f, d) in enumerate(pk)]


@settings(max_examples=120, deadline=None)
@given(up=st.binary(min_size=1, max_size=300), down=st.binary(min_size=1, max_size=600),
       cuts_up=st.lists(st.integers(0, 10_000), max_size=8), cuts_down=st.lists(st.integers(0, 10_000), max_size=12),
       isn_c=st.integers(0, 2**32 - 1), isn_s=st.sampled_from([0, 2**32 - 1, 2**32 - 100, 2**31, 12345]),
       seed=st.integers(0, 2**16), dup_p=st.sampled_from([0.0, 0.3]), swap_p=st.sampled_from([0.0, 0.3]))
def test_any_segmentation_and_disorder_gives_the_stream_back(up, down, cuts_up, cuts_down, isn_c, isn_s, seed,
                                                            dup_p, swap_p):
    packets = _packets(up, down, cuts_up, cuts_down, isn_c, isn_s, random.Random(seed), dup_p, swap_p)
    (c,) = reassemble(packets)
    assert c.stream("up") == up
    assert c.stream("down") == down
    assert (c.gaps, c.gap_bytes) == (0, 0)
    assert c.warnings == []
    assert c.closed and c.packets == len(packets)
    assert c.dup_bytes == sum(len(p.payload) for p in packets) - len(up) - len(down)


def test_reassemble_accepts_a_list_or_a_stream(tmp_path):
    path = tmp_path / "clean.pcap"
    badpcaps.make_clean(path)
    packets, _ = read_tcp_with_stats(path)
    a = reassemble(packets)
    b = reassemble(read_tcp(path))
    assert [(c.stream("up"), c.stream("down")) for c in a] == [(c.stream("up"), c.stream("down")) for c in b]
