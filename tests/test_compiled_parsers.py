"""The compiled parsers (mailstudy/protocol/_parsers_c.pyx) give exactly what the pure-Python reference gives.

``mailstudy.protocol`` hands out the compiled ``ImapParser``/``Pop3Parser`` when they are built (and
``MAILSTUDY_PURE`` is not set); ``REFERENCE_PARSERS`` keeps the pure ones. Every field of every session, exchange,
connection, warning and stat must be equal (tests/test_fast_path.py's view), on the project's captures, the peer
captures, the odd captures of tests/badpcaps.py and the bench capture at a small size, at several batch sizes;
and every event, count and byte total when the streams are fed as the live engine and the explorer feed them:
whole, byte by byte, in random chunkings, with gaps, with payloads kept or not. Where a C compiler is found the
compiled module must be there (an editable install builds it): its absence fails, it never skips silently.
"""

from __future__ import annotations

import random
import sys
from itertools import groupby
from pathlib import Path

import pytest

import badpcaps
import needs
from mailstudy import protocol
from mailstudy.compiled import pure_requested
from mailstudy.net.pcap import read_tcp_tuples
from mailstudy.net.reassembly import reassemble_tuples
from mailstudy.offline.analyze import SessionStream
from mailstudy.protocol.imap import _TAGGED  # the reference's own regex, compared with the C reading
from mailstudy.protocol.imap_lexer import literal_marker
from peers import PEER
from test_fast_path import _view

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import make_big_pcap  # noqa: E402

PROJECT = sorted((ROOT / "captures").glob("*.pcap"))
PEERS = sorted(PEER.glob("*.pcap")) if PEER.is_dir() else []
ODD = ["make_clean", "make_gap", "make_hole_acked_in_steps",
       "make_fcs_not_captured", "make_gap_at_end", "make_port_reuse", "make_mid_session",
       "make_mid_session_server_first", "make_out_of_order", "make_retransmission", "make_conflicting_overlap",
       "make_syn_retry_after_rst", "make_seq_wrap", "make_snaplen", "make_non_tcp", "make_truncated_last_record",
       "make_truncated_record_header", "make_corrupt_record_length", "make_ipv6_ext_and_fragment"]


@pytest.fixture(scope="module")
def C():
    """The compiled module; a failure where a C compiler is found (it should have been built), a skip where not
    (needs.compiled)."""
    (module,) = needs.compiled("mailstudy.protocol._parsers_c")
    return module


def _parsers(C, compiled: bool) -> dict:
    ref = protocol.REFERENCE_PARSERS
    return {**ref, "imap": C.ImapParser, "pop3": C.Pop3Parser} if compiled else dict(ref)


def _stream(path: Path, parsers: dict, monkeypatch, **kw) -> tuple:
    with monkeypatch.context() as m:
        for name, cls in parsers.items():
            m.setitem(protocol.PARSERS, name, cls)
        stream = SessionStream(path, **kw)
        sessions = [_view(s) for s in stream]
        return sessions, stream.warnings, stream.connections, stream.non_mail, stream.late_packets, stream.stats


def _same(C, path: Path, monkeypatch, **kw) -> list:
    fast = _stream(path, _parsers(C, True), monkeypatch, **kw)
    assert fast == _stream(path, _parsers(C, False), monkeypatch, **kw)
    return fast[0]


# ---- which parsers run --------------------------------------------------------------------------------------
def test_the_package_hands_out_the_compiled_parsers(C) -> None:
    assert issubclass(C.ImapParser, protocol.REFERENCE_PARSERS["imap"])
    assert issubclass(C.Pop3Parser, protocol.REFERENCE_PARSERS["pop3"])
    if pure_requested():  # MAILSTUDY_PURE=1: the reference everywhere
        assert protocol.PARSERS["imap"] is protocol.REFERENCE_PARSERS["imap"]
    else:
        assert protocol.PARSERS["imap"] is C.ImapParser and protocol.PARSERS["pop3"] is C.Pop3Parser
        assert type(protocol.make_parser("imap")) is C.ImapParser


# ---- whole captures through the analyzer ------------------------------------------------------------------------
@pytest.mark.parametrize("path", PROJECT + PEERS, ids=lambda p: p.name)
@pytest.mark.parametrize("batch", [1, 7, 16384])
def test_compiled_equals_the_reference_on_real_captures(C, path: Path, batch: int, monkeypatch) -> None:
    _same(C, path, monkeypatch, batch=batch)
    _same(C, path, monkeypatch, batch=batch, linger_s=0.0, keep_payloads=True)


@pytest.mark.parametrize("make", ODD)
def test_compiled_equals_the_reference_on_odd_captures(C, make: str, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "odd.pcap"
    getattr(badpcaps, make)(path)
    for batch in (1, 3, 1000):
        _same(C, path, monkeypatch, batch=batch, linger_s=0.0)
        _same(C, path, monkeypatch, batch=batch, keep_payloads=True)


def test_compiled_equals_the_reference_on_the_bench_capture(C, tmp_path: Path, monkeypatch) -> None:
    """Thousands of exchanges; batches fall inside literals and POP3 data, which the compiled parsers count in
    place."""
    path = tmp_path / "big.pcap"
    make_big_pcap.make(str(path), 30_000)
    sessions = _same(C, path, monkeypatch, batch=4096)
    assert len(sessions) > 50 and sum(len(s[21]) for s in sessions) > 4000
    _same(C, path, monkeypatch, batch=997, linger_s=0.0)
    _same(C, path, monkeypatch, batch=613, keep_payloads=True)


# ---- streams fed as the live engine and the explorer feed them --------------------------------------------------
def _connections() -> list[tuple[str, list]]:
    """(protocol, [(direction, t, data)]) of every IMAP/POP3 connection in the project's and peer captures."""
    out = []
    for path in PROJECT + PEERS:
        for conn in reassemble_tuples(read_tcp_tuples(path)):
            port = conn.server[1]
            name = path.name.lower()
            proto = "pop3" if port in (110, 995) or "pop3" in name else "imap" if port in (143, 993) or \
                "imap" in name else None
            if proto is not None and conn.chunk_tuples:
                out.append((proto, list(conn.chunk_tuples)))
    return out


def _outcome(parser, events) -> tuple:
    return (events, parser.total, parser.unattributed, parser.missing, parser.tls, parser.completed,
            parser.continuations, parser.greeting, parser.progress())


def _feed(cls, proto_chunks: list, how: str, rng: random.Random, **kw) -> tuple:
    """Feed ``(direction, t, data)`` chunks to a new ``cls(**kw)`` the way ``how`` says; close; the outcome."""
    parser = cls(**kw)
    if how == "feed":
        for d, t, data in proto_chunks:
            parser.feed(d, data, t)
    elif how == "bytes":
        for d, t, data in proto_chunks:
            for i in range(len(data)):
                parser.feed(d, data[i:i + 1], t)
    elif how == "lists":
        for d, run in groupby(proto_chunks, lambda c: c[0]):
            run = list(run)
            parser.feed_lists(d, [c[2] for c in run], [c[1] for c in run])
    else:  # "runs": random cuts, one feed_runs call per random group of runs, gaps in between
        runs = []
        for d, t, data in proto_chunks:
            cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 4)))) if len(data) > 1 \
                else []
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
            if runs and runs[-1][0] == d:
                runs[-1][1].extend(pieces)
                runs[-1][2].extend([t] * len(pieces))
            else:
                runs.append((d, pieces, [t] * len(pieces)))
        i = 0
        while i < len(runs):
            k = rng.randint(1, 4)
            parser.feed_runs(runs[i:i + k])
            i += k
            if how == "gaps" and rng.random() < 0.2:
                parser.gap(rng.choice(["up", "down"]), rng.randint(1, 3000), None)
    parser.close(proto_chunks[-1][1] if proto_chunks else None)
    return _outcome(parser, parser.events())


CONNECTIONS = _connections()


@pytest.mark.parametrize("how", ["feed", "bytes", "lists", "runs", "gaps"])
@pytest.mark.parametrize("keep", [True, False])
def test_compiled_parsers_equal_the_reference_however_the_bytes_come(C, how: str, keep: bool) -> None:
    assert len(CONNECTIONS) >= 6
    for n, (proto, chunks) in enumerate(CONNECTIONS):
        if how == "bytes" and sum(len(c[2]) for c in chunks) > 200_000:
            chunks = chunks[:40]  # byte by byte: the start of a long session is enough
        for seed in range(3 if how in ("runs", "gaps") else 1):
            args = dict(keep_payloads=keep, spans=bool(n % 2), max_line=64 if seed == 2 else 1 << 20)
            got = _feed(_parsers(C, True)[proto], chunks, how, random.Random(seed), **args)
            want = _feed(protocol.REFERENCE_PARSERS[proto], chunks, how, random.Random(seed), **args)
            assert got == want, (proto, n, how, seed)


IMAP_SCRIPT = [
    ("down", b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n"),
    ("up", b"a1 LOGIN {4}\r\n"), ("down", b"+ go on\r\n"), ("up", b"user {6+}\r\nsecret\r\n"),
    ("down", b"a1 OK done\r\n"),
    ("up", b"a2 AUTHENTICATE PLAIN\r\n"), ("down", b"+ \r\n"), ("up", b"AGFiAGM=\r\n"), ("down", b"a2 NO no\r\n"),
    ("up", b"a3 SELECT INBOX\r\na4 UID FETCH 1:3 (UID BODY[])\r\na5 FETCH 2 FLAGS\r\n"),
    ("down", b"* 3 EXISTS\r\n* 1 FETCH (UID 2 BODY[] {12}\r\n.hello\r\n{3}\r\n)\r\n"
             b"* 2 FETCH (FLAGS (\\Seen))\r\na3 ok\r\n* 2 FETCH (UID 3 BODY[] ~{0}\r\n)\r\na4 OK x\r\na5 BAD\r\n"),
    ("up", b"a6 IDLE\r\n"), ("down", b"+ idling\r\n* 4 EXISTS\r\n"), ("up", b"DONE\r\n"), ("down", b"a6 OK\r\n"),
    ("up", b"a7 APPEND INBOX {5}\r\n"), ("down", b"a7 NO [TOOBIG]\r\n"), ("up", b"a8 NOOP\r\n"),
    ("down", b"a8 OK \r\nzz weird\r\n* BYE\r\n"), ("up", b"\r\n a9\r\na10 STARTTLS\r\n"),
    ("down", b"a10 OK go\r\n\x16\x03\x01\x00\x02ab"), ("up", b"\x16\x03\x01\x00\x01z"),
]
POP3_SCRIPT = [
    ("down", b"+OK POP3 ready\r\n"), ("up", b"USER a b\r\nPASS c d\r\nCAPA\r\n"),
    ("down", b"+OK\r\n+ok\r\n+OK caps\r\nTOP\r\n..dot\r\n.\r\n"),
    ("up", b"AUTH PLAIN\r\n"), ("down", b"+ \r\n"), ("up", b"AGFiAGM=\r\n"), ("down", b"-ERR no\r\n"),
    ("up", b"LIST\r\nRETR 1\r\nTOP 1 0\r\nUIDL 1\r\nDELE 1\r\n\r\n"),
    ("down", b"+OK 1 10\r\n.\r\n+OK\r\nline\n..\r\n.x\r\n.\n+OK h\r\n.\r\n+OKAY\r\n-ERR gone\r\n-err\r\n"),
    ("down", b"stray\r\n"), ("up", b"STLS\r\n"), ("down", b"+OK begin\r\n\x16\x03\x01\x00\x02ab"),
]


@pytest.mark.parametrize("proto,script", [("imap", IMAP_SCRIPT), ("pop3", POP3_SCRIPT)])
@pytest.mark.parametrize("seed", range(12))
def test_compiled_parsers_equal_the_reference_on_every_rule(C, proto: str, script: list, seed: int) -> None:
    """A session that takes every rule (literals both ways, LITERAL+ and literal8, a refused literal, SASL, IDLE,
    pipelined FETCHes by UID and sequence set, dot-stuffing, statuses in any case, junk, STARTTLS/STLS), cut at
    random places, with gaps, runaway lines and payloads kept or not."""
    chunks = [(d, i, data) for i, (d, data) in enumerate(script)]
    rng_how = random.Random(seed)
    how = rng_how.choice(["feed", "bytes", "lists", "runs", "gaps"])
    args = dict(keep_payloads=seed % 2 == 0, spans=seed % 3 == 0, max_line=12 if seed % 4 == 3 else 1 << 20)
    got = _feed(_parsers(C, True)[proto], chunks, how, random.Random(seed), **args)
    want = _feed(protocol.REFERENCE_PARSERS[proto], chunks, how, random.Random(seed), **args)
    assert got == want
    assert [e for e in got[0] if type(e).__name__ == "Exchange"]


# ---- the pieces read in C ---------------------------------------------------------------------------------------
def test_the_literal_marker_is_read_as_literal_marker_reads_it(C) -> None:
    rng = random.Random(2)
    found = 0
    for _ in range(60_000):
        line = bytes(rng.choice(b"ab {}~+0123456789\r\n") for _ in range(rng.randint(0, 14)))
        if rng.random() < 0.5:
            line += rng.choice([b"{5}\r\n", b"~{12}\n", b"{3+}", b"{}\r\n", b"~{0+}\r\n", b"}\r\n",
                                b"{" + b"9" * 20 + b"}\r\n", b"{" + b"9" * 21 + b"}\r\n"])
        m = literal_marker(line)
        assert C.marker(line) == (None if m is None else (int(m.group(2)), bool(m.group(3)))), line
        found += m is not None
    assert found > 10_000


def test_the_tagged_status_is_read_as_the_regex_reads_it(C) -> None:
    rng = random.Random(3)
    matched = 0
    parts = [b"a1", b"A", b"*", b" ", b"OK", b"ok", b"No", b"BAD", b"bAd", b"OKAY", b"text", b"\r", b"\n", b"\t", b"]"]
    for _ in range(60_000):
        line = b"".join(rng.choice(parts) for _ in range(rng.randint(0, 7)))
        if rng.random() < 0.5:  # shaped like a status line, often a valid one
            line = rng.choice(parts[:3]) + b" " + rng.choice(parts[4:10]) + line
        if rng.random() < 0.6:
            line += rng.choice([b"\r\n", b"\n", b" \r\n", b"\r\r\n", b""])
        m = _TAGGED.match(line)
        assert C.tagged(line) == (None if m is None else m.groups()), line
        matched += m is not None
    assert matched > 1_500


# ---- junk, as the parsers' own property tests make it -----------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import test_protocol_imap  # noqa: E402
import test_protocol_pop3  # noqa: E402

JUNK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@JUNK
@given(st.sampled_from(["imap", "pop3"]), st.data())
def test_compiled_parsers_equal_the_reference_on_junk(C, proto: str, data) -> None:
    """Random junk of each protocol's tokens, fed in random runs with random gaps: the same outcome."""
    junk = (test_protocol_imap if proto == "imap" else test_protocol_pop3).junk_session
    chunks = [(d, i, b) for i, (d, b) in enumerate(data.draw(junk)) if b]
    seed = data.draw(st.integers(0, 1000))
    how = data.draw(st.sampled_from(["feed", "runs", "gaps"]))
    args = dict(keep_payloads=data.draw(st.booleans()), spans=data.draw(st.booleans()),
                max_line=data.draw(st.sampled_from([8, 40, 1 << 20])))
    got = _feed(_parsers(C, True)[proto], chunks, how, random.Random(seed), **args)
    assert got == _feed(protocol.REFERENCE_PARSERS[proto], chunks, how, random.Random(seed), **args)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_server_line_cut_by_tls_from_the_client_still_counts(C, compiled: bool) -> None:
    """Found by the junk property test (both implementations): the server's 40 bytes of a line not yet ended, then
    the client's first bytes are a TLS record; those 40 bytes were read but counted nowhere."""
    parser = _parsers(C, compiled)["imap"](max_line=40)
    parser.feed("down", b"\x00" * 40, 0)
    parser.feed("up", b"\x16\x03", 1)
    parser.close(2)
    events = parser.events()
    assert parser.unattributed["down"] == 40 and parser.tls.bytes_up == 2
    assert any("40 bytes not attributed: server response cut short" in getattr(e, "message", "") for e in events)
