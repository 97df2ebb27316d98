"""The fast path (numpy columns, bulk reassembly) gives exactly what the pure-Python reference path gives.

``SessionStream(columns=True)`` reads a classic pcap a block at a time with numpy
(:mod:`mailstudy.net.pcap_batches`) and moves runs of in-order segments in bulk
(``Reassembler.feed_columns``); ``columns=False`` is the reference: the reader's tuples through ``feed``. Every
field of every session, exchange, connection and warning must be equal, on the project's captures, the peer
captures, the odd captures built byte for byte, and the bench capture at a small size, at several batch sizes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import badpcaps
from mailstudy.net.pcap import PcapReader, read_tcp_tuples
from mailstudy.net.reassembly import Reassembler
from mailstudy.offline.analyze import SessionStream
from peers import PEER

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import make_big_pcap  # noqa: E402

PROJECT = sorted((ROOT / "captures").glob("*.pcap"))
PEERS = sorted(PEER.glob("*.pcap")) if PEER.is_dir() else []


def _view(s) -> tuple:
    c = s.connection
    ex = [(e.index, e.tag, e.command, e.arguments, e.status, e.status_text, e.t_sent, e.t_first_response,
           e.t_done, e.bytes_up, e.bytes_down, e.missing, e.literals, e.data) for e in s.exchanges]
    return (s.index, c.index, c.client, c.server, c.t_first, c.t_syn, c.t_last, c.packets, c.bytes_up,
            c.bytes_down, c.gaps, c.gap_bytes, c.dup_bytes, c.reset, c.closed, c.mid_stream, c.warnings,
            s.protocol, s.encrypted, s.partial, s.metrics, ex, s.warnings, s.file)


def _run(path: Path, columns: bool, **kw) -> tuple:
    stream = SessionStream(path, columns=columns, **kw)
    sessions = [_view(s) for s in stream]
    return sessions, stream.warnings, stream.connections, stream.non_mail, stream.late_packets, stream.stats


def _same(path: Path, **kw) -> list:
    fast = _run(path, True, **kw)
    assert fast == _run(path, False, **kw)
    return fast[0]


@pytest.mark.parametrize("path", PROJECT + PEERS, ids=lambda p: p.name)
@pytest.mark.parametrize("batch", [1, 7, 1000, 16384])
def test_fast_path_equals_the_reference_on_real_captures(path: Path, batch: int) -> None:
    _same(path, batch=batch)
    _same(path, batch=batch, linger_s=0.0)


@pytest.mark.parametrize("make", ["make_clean", "make_gap", "make_hole_acked_in_steps",
                                  "make_fcs_not_captured", "make_gap_at_end", "make_port_reuse",
                                  "make_mid_session", "make_mid_session_server_first", "make_out_of_order",
                                  "make_retransmission", "make_conflicting_overlap", "make_syn_retry_after_rst",
                                  "make_seq_wrap", "make_snaplen", "make_non_tcp", "make_truncated_last_record",
                                  "make_truncated_record_header", "make_corrupt_record_length",
                                  "make_ipv6_ext_and_fragment"])
def test_fast_path_equals_the_reference_on_odd_captures(make: str, tmp_path: Path) -> None:
    path = tmp_path / "odd.pcap"
    getattr(badpcaps, make)(path)
    for batch in (1, 3, 1000):
        _same(path, batch=batch, linger_s=0.0)
        _same(path, batch=batch)


def test_fast_path_equals_the_reference_on_the_bench_capture(tmp_path: Path, monkeypatch) -> None:
    """Thousands of sessions: long runs take the bulk path, and batches fall inside sessions and literals."""
    path = tmp_path / "big.pcap"
    make_big_pcap.make(str(path), 30_000)
    monkeypatch.setenv("MAILSTUDY_PURE", "1")  # the numpy path (tests/test_compiled_walk.py: the compiled walk)
    moved = []
    bulk = Reassembler._bulk
    monkeypatch.setattr(Reassembler, "_bulk", lambda self, cols, rows: moved.append(bulk(self, cols, rows))
                        or moved[-1])
    sessions = _same(path, batch=4096)
    assert sum(moved) > 50  # the bulk path really ran (about one run per session)
    assert len(sessions) > 50 and sum(len(s[21]) for s in sessions) > 4000
    _same(path, batch=997, linger_s=0.0)


@pytest.mark.parametrize("path", PROJECT + PEERS, ids=lambda p: p.name)
def test_the_pieces_hold_the_readers_tuples(path: Path) -> None:
    """Column pieces turned back into tuples equal what the reader yields, field for field, offsets included."""
    got = []
    for piece in PcapReader(path).pieces(50):
        got.extend(piece if isinstance(piece, list) else piece.tuples(range(len(piece))))
    assert got == list(read_tcp_tuples(path))
    assert any(not isinstance(p, list) for p in PcapReader(path).pieces(50))  # all are IPv4 TCP captures


def test_a_block_with_a_non_tcp_record_is_read_the_readers_way(tmp_path: Path) -> None:
    """A block holding anything but plain IPv4 TCP is read by the reader's own loop: same tuples, same stats."""
    path = tmp_path / "mixed.pcap"
    badpcaps.make_non_tcp(path)
    reader = PcapReader(path)
    pieces = list(reader.pieces(1000))
    assert pieces and all(isinstance(p, list) for p in pieces)
    ref = PcapReader(path)
    assert [t for p in pieces for t in p] == list(ref.tuples())
    assert reader.stats == ref.stats


def test_literal_marker_finds_what_the_regex_search_finds() -> None:
    """``literal_marker`` looks for the marker from the line's last ``{``: the same match as a search."""
    import random

    from mailstudy.protocol.imap_lexer import LITERAL, literal_marker

    rng = random.Random(1)
    found = 0
    for _ in range(50_000):
        line = bytes(rng.choice(b"ab {}~+0123456789\r\n") for _ in range(rng.randint(0, 14)))
        if rng.random() < 0.5:
            line += rng.choice([b"{5}\r\n", b"~{12}\n", b"{3+}", b"{}\r\n", b"~{0+}\r\n", b"}\r\n"])
        ref = LITERAL.search(line) if b"}" in line[-4:] else None
        got = literal_marker(line)
        assert (ref is None) == (got is None), line
        if ref is not None:
            found += 1
            assert (ref.span(), ref.groups(), ref.span(3)) == (got.span(), got.groups(), got.span(3)), line
    assert found > 10_000


def test_without_numpy_the_tuples_come(monkeypatch) -> None:
    """The static explorer page's Python has no numpy: the reader then hands out the tuples, and the analysis
    is the same."""
    path = PROJECT[0]
    ref = _run(path, False)
    monkeypatch.setitem(sys.modules, "mailstudy.net.pcap_batches", None)  # import fails as without numpy
    assert all(isinstance(p, list) for p in PcapReader(path).pieces(16))
    assert _run(path, True) == ref


@pytest.mark.parametrize("name", ["imap-header-first.pcap", "pop3-pipelined.pcap", "imap-starttls.pcap"])
def test_feed_runs_gives_what_feed_lists_gives_run_by_run(name: str) -> None:
    """``feed_runs`` (one call for all runs) equals one ``feed_lists`` per run, and stops where ``stop`` says."""
    from itertools import groupby

    from mailstudy.net.reassembly import reassemble_tuples
    from mailstudy.protocol import make_parser

    path = next((p for p in PROJECT + PEERS if p.name == name), None)
    if path is None:
        pytest.skip(f"{name} is not on this machine (peer captures: /work/shared/peer-captures)")
    for conn in reassemble_tuples(read_tcp_tuples(path)):
        runs = [(d, [c[2] for c in run], [c[1] for c in run])
                for d, run in ((d, list(r)) for d, r in groupby(conn.chunk_tuples, lambda c: c[0]))]
        protocol = "imap" if "imap" in name else "pop3"
        one_by_one, together, cut = make_parser(protocol), make_parser(protocol), make_parser(protocol)
        for run in runs:
            one_by_one.feed_lists(*run)
        assert together.feed_runs(runs) == len(runs) > 3
        assert together.events() == one_by_one.events() != []
        half = len(runs) // 2
        asked = []
        first_half = make_parser(protocol)
        for run in runs[:half]:
            first_half.feed_lists(*run)
        assert cut.feed_runs(runs, stop=lambda: asked.append(1) or len(asked) == half) == half
        assert cut.events() == first_half.events()
        assert cut.total == first_half.total
