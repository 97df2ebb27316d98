"""Streaming analysis (``iter_sessions``) gives what the whole-file analysis gives, in bounded memory.

Each session a stream yields, put back in the order of its connection, must equal the session ``analyze_pcap``
finds (metrics, exchanges, warnings), whatever the batch size: hand-overs to the parser can fall anywhere,
also inside a literal, and a connection is summarized as soon as it is over. The captures are the project's
real ones, the peer captures and odd ones built byte for byte (gaps, port reuse, mid-stream starts).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import badpcaps
from mailstudy.offline.analyze import SessionStream, analyze_pcap, iter_sessions
from peers import PEER

ROOT = Path(__file__).resolve().parent.parent
PROJECT = sorted((ROOT / "captures").glob("*.pcap"))
PEERS = sorted(PEER.glob("*.pcap")) if PEER.is_dir() else []


def _view(s) -> tuple:
    ex = [(e.index, e.tag, e.command, e.arguments, e.status, e.t_sent, e.t_first_response, e.t_done, e.bytes_up,
           e.bytes_down, e.missing) for e in s.exchanges]
    return s.connection.index, s.protocol, s.metrics, ex, s.warnings


def _same(path: Path, batch: int, linger_s: float = 0.0) -> list:
    whole = analyze_pcap(path)
    stream = SessionStream(path, batch=batch, linger_s=linger_s)
    got = sorted(stream, key=lambda s: s.connection.index)
    assert [_view(s) for s in got] == [_view(s) for s in whole.sessions]
    assert sorted(s.index for s in got) == list(range(len(got)))
    assert stream.connections == whole.connections and stream.non_mail == whole.non_mail
    assert stream.warnings == whole.warnings
    return got


@pytest.mark.parametrize("path", PROJECT + PEERS, ids=lambda p: p.name)
@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_stream_equals_the_whole_file(path: Path, batch: int) -> None:
    _same(path, batch, linger_s=1e9)  # no early ends: only the hand-overs differ


@pytest.mark.parametrize("path", PROJECT, ids=lambda p: p.name)
def test_sessions_end_early_and_stay_equal(path: Path) -> None:
    """linger 0: a session is summarized in the batch after its last packet, while the file is still read."""
    _same(path, 3, linger_s=0.0)


@pytest.mark.parametrize("make", ["make_gap", "make_hole_acked_in_steps",
                                  "make_fcs_not_captured", "make_gap_at_end", "make_port_reuse", "make_mid_session",
                                  "make_mid_session_server_first", "make_out_of_order", "make_retransmission",
                                  "make_conflicting_overlap", "make_syn_retry_after_rst", "make_seq_wrap"])
def test_stream_equals_the_whole_file_on_odd_captures(make: str, tmp_path: Path) -> None:
    path = tmp_path / "odd.pcap"
    getattr(badpcaps, make)(path)
    # the conflicting copy comes two packets after the first: batches of one hand the first copy out two
    # hand-overs before, and only the last hand-over is kept for comparisons (Reassembler's doc)
    for batch in ((2, 5) if make == "make_conflicting_overlap" else (1, 2, 5)):
        _same(path, batch, linger_s=1e9)


def test_released_sessions_hold_no_stream(tmp_path: Path) -> None:
    """What the stream yields keeps no payload: the connection's chunks were handed to the parser and dropped."""
    path = ROOT / "captures" / "pop3-keep.pcap"
    got = list(iter_sessions(path))
    assert len(got) == 1
    s = got[0]
    assert s.connection.chunk_tuples == [] and s.connection.bytes_down == s.metrics["bytes_down"] > 30_000
    assert s.metrics["commands"] == 12


def test_exchanges_iterator_follows_the_sessions() -> None:
    path = ROOT / "captures" / "imap-header-first.pcap"
    pairs = list(iter_sessions(path).exchanges())
    whole = analyze_pcap(path)
    assert [e.command for _s, e in pairs] == [e.command for e in whole.sessions[0].exchanges]


def test_no_parser_outlives_its_session_with_the_garbage_collector_off() -> None:
    """``mailstudy analyze`` runs with the garbage collector off: a session's parser (and the IMAP inflater that
    holds it) must be freed by reference counting when the session is summarized, or memory grows with the file
    (it did: 426 MiB peak RSS for the 5 M-packet bench capture, about 22 KB per IMAP session)."""
    import gc

    from mailstudy.offline.inflate import Inflater
    from mailstudy.protocol.imap import ImapParser
    from mailstudy.protocol.pop3 import Pop3Parser

    def alive() -> int:
        return sum(isinstance(o, (ImapParser, Pop3Parser, Inflater)) for o in gc.get_objects())

    paths = [ROOT / "captures" / "imap-header-first.pcap", ROOT / "captures" / "pop3-keep.pcap"]
    gc.collect()
    before = alive()
    gc.disable()
    try:
        sessions = [s for path in paths for s in SessionStream(path)]
        assert {s.protocol for s in sessions} == {"imap", "pop3"} and all(s.exchanges for s in sessions)
        assert alive() == before
    finally:
        gc.enable()
