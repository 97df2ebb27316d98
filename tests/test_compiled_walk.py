"""The compiled walk (mailstudy/net/_walk.pyx, mailstudy/offline/_drive.pyx) gives exactly what the pure-Python
reference gives.

``SessionStream`` walks a classic pcap in C when the extensions are built (``mailstudy.compiled``) and cuts
each hand-over into runs in C; the reference is the reader's tuples through ``Reassembler.feed``
(``columns=False``) with every module pure (``MAILSTUDY_PURE=1``). Every field of every session, exchange,
connection and warning, and the file's stats, must be equal: on the project's captures, the peer captures, the
odd captures built byte for byte (tests/badpcaps.py: other link types, byte orders and resolutions, IPv6,
non-TCP, cut and corrupt records, gaps, disorder, port reuse), a compressed capture, and the bench capture at
a small size, at several batch sizes. Where a C compiler and Cython are present the extension must be built
(CI builds it through ``make test``'s editable install): its absence is a failure, not a skip.
"""

from __future__ import annotations

import gzip
import random
import struct
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import badpcaps
import needs
from mailstudy.compiled import PURE_ENV
from mailstudy.offline.analyze import SessionStream
from peers import PEER
from test_fast_path import _view

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import make_big_pcap  # noqa: E402

PROJECT = sorted((ROOT / "captures").glob("*.pcap"))
PEERS = sorted(PEER.glob("*.pcap")) if PEER.is_dir() else []


@pytest.fixture(scope="module")
def walk():
    """The compiled walk (with the compiled drive loop); a failure where it could have been built, a skip (with
    the reason) where not (needs.compiled)."""
    module, _drive = needs.compiled("mailstudy.net._walk", "mailstudy.offline._drive")
    return module


def _run(path: Path, **kw) -> tuple:
    stream = SessionStream(path, **kw)
    sessions = [_view(s) for s in stream]
    return (sessions, stream.warnings, stream.connections, stream.non_mail, stream.late_packets, stream.stats,
            stream._walker is not None)


def _same(path: Path, walked: bool = True, **kw) -> list:
    """The compiled walk (the default path) against the reference (the reader's tuples, ``feed``)."""
    got = _run(path, **kw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PURE_ENV, "1")
        ref = _run(path, columns=False, **kw)
    assert got[6] is walked  # the walker really ran (or, for a file it cannot walk, really did not)
    assert got[:6] == ref[:6]
    return got[0]


@pytest.mark.parametrize("path", PROJECT + PEERS, ids=lambda p: p.name)
@pytest.mark.parametrize("batch", [1, 7, 1000, 16384])
def test_the_walk_equals_the_reference_on_real_captures(walk, path: Path, batch: int) -> None:
    _same(path, batch=batch)
    _same(path, batch=batch, linger_s=0.0)


ODD = ["make_clean", "make_gap", "make_hole_acked_in_steps",
       "make_fcs_not_captured", "make_gap_at_end", "make_port_reuse", "make_mid_session",
       "make_mid_session_server_first", "make_out_of_order", "make_retransmission", "make_conflicting_overlap",
       "make_syn_retry_after_rst", "make_seq_wrap", "make_snaplen", "make_snaplen_tcp_header_cut", "make_non_tcp",
       "make_truncated_last_record", "make_truncated_record_header", "make_corrupt_record_length",
       "make_ipv6_ext_and_fragment"]


@pytest.mark.parametrize("make", ODD)
def test_the_walk_equals_the_reference_on_odd_captures(walk, make: str, tmp_path: Path) -> None:
    path = tmp_path / "odd.pcap"
    getattr(badpcaps, make)(path)
    for batch in (1, 3, 1000):
        _same(path, batch=batch, linger_s=0.0)
        _same(path, batch=batch)


def _write(path: Path, segs: list) -> None:
    badpcaps.write_pcap(path, [(s.t_ns, badpcaps.frame(s)) for s in segs])


def _data_after_fin(path: Path) -> None:
    """The client's FIN, then data at the FIN's own sequence number (a broken stack): dropped, with a warning."""
    segs = badpcaps.conversation()
    i = max(j for j, s in enumerate(segs) if s.flags & badpcaps.FIN and s.sport == 40000)
    segs.insert(i + 1, replace(segs[i], flags=badpcaps.ACK, payload=b"late\r\n", t_ns=segs[i].t_ns + 1))
    _write(path, segs)


def _server_ack_before_its_data(path: Path) -> None:
    """Caught mid-stream: the server's first packet is a pure ACK 10 bytes before its next data (the capture
    missed them): its sequence number, not the data's, is where the down stream starts."""
    segs = badpcaps.conversation()
    first = next(i for i, s in enumerate(segs) if s.payload and s.sport == 40000)  # the client's first command
    segs = segs[first:]
    data = next(s for s in segs if s.payload and s.sport == 143)
    segs.insert(1, replace(data, seq=(data.seq - 10) & 0xFFFFFFFF, flags=badpcaps.ACK, payload=b"",
                           t_ns=segs[0].t_ns + 1))
    _write(path, segs)


def _fcs_not_captured(path: Path) -> None:
    """Records whose wire length counts 4 bytes more than was captured (a frame check sequence the capture left
    out): the IP packet is whole, and the IP length, not the record's, says so: no gap, in the walker as in the
    reference. Every record from the 8th on, and before it one data packet in order (the client's first
    command)."""
    segs = badpcaps.conversation()
    command = next(i for i, s in enumerate(segs) if s.payload and s.sport == 40000)
    _write(path, segs)
    path.write_bytes(_count_fcs(path.read_bytes(), lambda i: i == command or i >= 8))


def _count_fcs(pcap: bytes, which=lambda i: True) -> bytes:
    """A little-endian classic pcap whose records ``which(i)`` (0-based) say 4 bytes more on the wire than
    they say now: a frame check sequence that was not captured."""
    data, pos, i = bytearray(pcap), 24, 0
    assert struct.unpack_from("<I", data)[0] in (0xA1B2C3D4, 0xA1B23C4D)
    while pos + 16 <= len(data):
        incl, orig = struct.unpack_from("<II", data, pos + 8)
        if which(i):
            struct.pack_into("<I", data, pos + 12, orig + 4)
        pos += 16 + incl
        i += 1
    return bytes(data)


# (imaps.pcap is TLS on a port no rule names: read without its key log it holds no session to compare)
@pytest.mark.parametrize("path", [p for p in PROJECT if p.name != "imaps.pcap"], ids=lambda p: p.name)
def test_a_real_capture_whose_records_count_an_uncaptured_fcs_reads_the_same(walk, path: Path,
                                                                              tmp_path: Path) -> None:
    """Every record of a real capture told to be 4 bytes longer on the wire than captured: every session,
    exchange and warning as in the capture itself, walked and pure alike (before, each packet was a 4-byte gap)."""
    fcs = tmp_path / path.name
    fcs.write_bytes(_count_fcs(path.read_bytes()))

    def named(views: list, file: Path) -> list:  # each session names its file: the two files' names are one
        return [tuple(path.name if x == str(file) else x for x in v) for v in views]

    plain = named(_same(path), path)
    assert plain and named(_same(fcs), fcs) == plain


def _warned(held: list) -> bool:
    return any("after FIN" in w or "gap" in w or "snap" in w for w in held[0][0][16])


def _whole(held: list) -> bool:
    return not held[0][0][16] and not held[0][2]  # no warning, no gap mark


# name -> (the maker, what the case is about, seen in what the walk gave)
CRAFTED = {"data_after_fin": (_data_after_fin, _warned),
           "server_ack_before_its_data": (_server_ack_before_its_data, _warned),
           "fcs_not_captured": (_fcs_not_captured, _whole)}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_the_walk_equals_the_reference_on_what_only_the_reference_takes(walk, name: str, tmp_path: Path) -> None:
    """Packets the walker must leave to the reference although they look like its own (data where a FIN was,
    a first packet of a direction that carries no data), and whole packets in records that look cut (an
    uncaptured FCS). Chunks, gap marks and warnings compared."""
    path = tmp_path / "crafted.pcap"
    make, point = CRAFTED[name]
    make(path)
    for batch in (1, 2, 1000):
        held = [(_view(s), s.connection.chunk_tuples, s.connection.gap_marks)
                for s in SessionStream(path, keep_streams=True, batch=batch)]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(PURE_ENV, "1")
            assert [(_view(s), s.connection.chunk_tuples, s.connection.gap_marks)
                    for s in SessionStream(path, keep_streams=True, batch=batch, columns=False)] == held
        _same(path, batch=batch)
    assert held and point(held)  # the case's point


# (link type, IPv6, VLAN tags, nanoseconds, byte order): the walker takes the link types the reader's fast path
# takes (Ethernet, SLL, raw IP, NULL, LOOP), and hands every record it cannot decode (IPv6, tags) to the reader
LINKS = [(1, False, (), True, "<"), (1, False, (), False, ">"), (1, True, (), True, "<"), (1, False, (0x8100, 0x88A8), True, "<"),
         (113, False, (), True, "<"), (101, False, (), False, "<"), (0, False, (), True, ">"),
         (108, True, (), True, "<")]


@pytest.mark.parametrize("link, v6, vlans, nano, endian", LINKS)
def test_the_walk_equals_the_reference_on_every_link_type(walk, tmp_path: Path, link, v6, vlans, nano,
                                                          endian) -> None:
    path = tmp_path / "link.pcap"
    badpcaps.make_link(path, link, v6=v6, vlans=vlans, nano=nano, endian=endian)
    sessions = _same(path, batch=5)
    assert len(sessions) == 1 and sessions[0][21]  # a session with exchanges came through


@pytest.mark.parametrize("make", ["make_pcapng_two_interfaces", "make_unknown_linktype"])
def test_a_file_the_walk_does_not_take_is_read_the_reference_way(walk, make: str, tmp_path: Path) -> None:
    """pcapng, and link types the reader's fast path does not take (SLL2, unknown), are not walked."""
    path = tmp_path / "other.pcap"
    getattr(badpcaps, make)(path)
    _same(path, walked=False, batch=3)


def test_a_compressed_capture_is_walked_through_its_decompressor(walk, tmp_path: Path) -> None:
    path = tmp_path / "big.pcap.gz"
    raw = tmp_path / "big.pcap"
    make_big_pcap.make(str(raw), 3_000)
    path.write_bytes(gzip.compress(raw.read_bytes(), compresslevel=1))
    sessions = _same(path, batch=1000)
    assert len(sessions) > 3 and [s[:-1] for s in sessions] == [s[:-1] for s in _same(raw, batch=1000)]


def test_the_walk_equals_the_reference_on_the_bench_capture(walk, tmp_path: Path) -> None:
    """Thousands of sessions: batches fall inside sessions and literals; block reads fall inside records."""
    path = tmp_path / "big.pcap"
    make_big_pcap.make(str(path), 40_000)  # about 9 MB: several of the walker's 2 MiB reads
    sessions = _same(path, batch=4096)
    assert len(sessions) > 50 and sum(len(s[21]) for s in sessions) > 4000
    _same(path, batch=997, linger_s=0.0)
    _same(path, batch=16384)


def test_times_are_pythons_division(walk) -> None:
    """``t_ns / 1e9`` correctly rounded, as Python's ``int / int``: a double division would differ."""
    rng = random.Random(21)
    values = [0, 1, 999_999_999, 10**9, 2**53, 2**63 - 1, 2**64 - 1]
    values += [rng.randrange(2**64) for _ in range(20_000)]
    values += [1_700_000_000 * 10**9 + rng.randrange(10**9) for _ in range(100_000)]
    values += [rng.randrange(2**32) * 10**9 + rng.randrange(2**32) * 1000 for _ in range(20_000)]
    wrong = [v for v in values if walk.exact_seconds(v) != v / 1_000_000_000]
    assert not wrong, wrong[:5]
    assert any(float(v) / 1e9 != v / 1_000_000_000 for v in values)  # the naive division would not do


def test_the_runs_are_the_references(walk) -> None:
    """``runs_and_flights`` cuts chunks as ``_feed_runs`` does: same runs, same flights, odd times included."""
    from mailstudy.offline import _drive, analyze
    from mailstudy.wire import Flight

    class Feeder:
        def feed_runs(self, runs):
            self.runs = runs

    rng = random.Random(5)
    for _ in range(300):
        chunks = [(rng.choice(["up", "down"]), rng.choice([1.5, 2.0, 0.25, rng.random()]), b"x" * rng.randint(1, 9))
                  for _ in range(rng.randint(0, 12))]
        a, b = Feeder(), Feeder()
        flights = analyze._feed_runs(a, chunks)
        assert analyze._feed_runs(b, chunks, _drive) == flights
        assert getattr(a, "runs", None) == getattr(b, "runs", None)
        assert all(type(f) is Flight and len(f) == 4 for f in _drive.runs_and_flights(chunks, Flight)[1])


@pytest.mark.parametrize("path", PROJECT[:3] + PEERS[:2] + ODD, ids=lambda p: getattr(p, "name", p))
def test_analyze_pcap_holding_every_stream_is_the_references(walk, path, tmp_path: Path) -> None:
    """``analyze_pcap`` (every connection held to the end of the file) walks the same way: the same chunks in
    the same order with the same times, and each gap at the same place among them."""
    from mailstudy.offline.analyze import analyze_pcap

    if isinstance(path, str):
        getattr(badpcaps, path)(tmp_path / "odd.pcap")
        path = tmp_path / "odd.pcap"

    def view(a):
        return ([(_view(s), s.connection.chunk_tuples, s.connection.gap_marks) for s in a.sessions],
                a.warnings, a.stats, a.connections, a.non_mail)

    def held(batch, **kw):  # analyze_pcap's stream, at another batch size
        stream = SessionStream(path, keep_streams=True, batch=batch, **kw)
        return [(_view(s), s.connection.chunk_tuples, s.connection.gap_marks) for s in stream], stream.stats

    got = view(analyze_pcap(path))
    walked = [held(batch) for batch in (1, 7)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PURE_ENV, "1")
        assert view(analyze_pcap(path)) == got
        assert [held(batch, columns=False) for batch in (1, 7)] == walked


def test_the_walk_equals_the_reference_on_damaged_captures(walk, tmp_path: Path) -> None:
    """Bytes overwritten, cut out and repeated anywhere in a capture (seeded): lengths, flags, sequence numbers
    and addresses go wrong, records get cut, segments repeat and go missing. Every path the walker hands to
    the reference (and back) is taken; the results must still be the reference's."""
    src = tmp_path / "src.pcap"
    make_big_pcap.make(str(src), 2_000)
    base = src.read_bytes()
    rng = random.Random(21)
    path = tmp_path / "damaged.pcap"
    for _ in range(25):
        data = bytearray(base)
        for _ in range(rng.randint(1, 30)):
            at = rng.randrange(24, len(data))
            kind = rng.random()
            if kind < 0.7:
                data[at] = rng.randrange(256)
            elif kind < 0.85:
                del data[at:at + rng.randint(1, 3000)]
            else:
                data[at:at] = data[at:at + rng.randint(1, 3000)]
        path.write_bytes(bytes(data))
        _same(path, batch=rng.choice([1, 5, 64, 1000]), linger_s=rng.choice([0.0, 2.0]))


def test_the_walk_equals_the_reference_on_interleaved_connections(walk, tmp_path: Path) -> None:
    """Several captures' records interleaved a few at a time (their clients renumbered apart): many connections
    open in one batch, so the walker's key cache and per-connection state hold several at once."""
    import struct

    head, mixed = b"", []
    for k in range(4):
        raw = tmp_path / f"{k}.pcap"
        make_big_pcap.make(str(raw), 3_000)
        data, pos, recs = raw.read_bytes(), 24, []
        head = data[:24]
        while pos + 16 <= len(data):
            rec = bytearray(data[pos:pos + 16 + struct.unpack_from("<I", data, pos + 8)[0]])
            for at in (16 + 14 + 12, 16 + 14 + 16):  # the client's address 10.1.x.y -> 10.(1+k).x.y
                if rec[at:at + 2] == b"\x0a\x01":
                    rec[at + 1] = 1 + k
            recs.append(bytes(rec))
            pos += len(rec)
        mixed.append(recs)
    rng = random.Random(3)
    out, at = [head], [0] * len(mixed)
    while any(i < len(m) for i, m in zip(at, mixed)):
        k = rng.randrange(len(mixed))
        n = rng.randint(1, 20)
        out.extend(mixed[k][at[k]:at[k] + n])
        at[k] += n
    path = tmp_path / "mixed.pcap"
    path.write_bytes(b"".join(out))
    sessions = _same(path, batch=16384)
    assert len(sessions) > 20 and len({s[2][0].split(".")[1] for s in sessions}) == 4  # four captures mixed
    _same(path, batch=333, linger_s=0.0)


def test_the_walk_equals_the_reference_with_every_connection_open_at_once(walk, tmp_path: Path) -> None:
    """One capture's records shuffled across its connections (each connection's own order kept): every
    connection is open from the first batch to the last, so the key cache's slots are shared and refilled."""
    import struct

    src = tmp_path / "src.pcap"
    make_big_pcap.make(str(src), 20_000)
    data, pos, by = src.read_bytes(), 24, {}
    ip = 16 + 14
    while pos + 16 <= len(data):
        rec = data[pos:pos + 16 + struct.unpack_from("<I", data, pos + 8)[0]]
        pos += len(rec)
        ends = sorted([rec[ip + 12:ip + 16] + rec[ip + 20:ip + 22], rec[ip + 16:ip + 20] + rec[ip + 22:ip + 24]])
        by.setdefault(tuple(ends), []).append(rec)
    conns = [list(reversed(c)) for c in by.values()]
    rng = random.Random(8)
    out = [data[:24]]
    while conns:
        k = rng.randrange(len(conns))
        out.append(conns[k].pop())
        if not conns[k]:
            conns.pop(k)
    path = tmp_path / "shuffled.pcap"
    path.write_bytes(b"".join(out))
    sessions = _same(path, batch=16384)
    assert len(by) > 40 and len(sessions) == len(by) and sum(len(s[21]) for s in sessions) > 1000
    _same(path, batch=100, linger_s=0.0)
