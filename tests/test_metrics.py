"""Session metrics: round trips, byte sums, durations and the per-exchange table, on parsed transcripts."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailstudy.protocol.metrics import FRAME_COLUMNS, exchanges_frame, round_trips, session_metrics
from mailstudy.wire import METRIC_KEYS, Chunk, chunk_parts
from mailstudy.protocol import Exchange, parse_session

IMAP = [
    ("down", b"* OK [CAPABILITY IMAP4rev1 LITERAL+] Dovecot (Debian) ready.\r\n"),
    ("up", b"a1 LOGIN alice s3cret\r\n"),
    ("down", b"a1 OK Logged in\r\n"),
    ("up", b"a2 SELECT INBOX\r\n"),
    ("down", b"* 1 EXISTS\r\n* 0 RECENT\r\n"),
    ("down", b"a2 OK [READ-WRITE] Select completed.\r\n"),
    ("up", b"a3 FETCH 1 (BODY[])\r\n"),
    ("down", b"* 1 FETCH (BODY[] {4}\r\nabcd)\r\na3 OK Fetch completed.\r\n"),
    ("up", b"a4 SELECT Nope\r\n"),
    ("down", b"a4 NO Mailbox doesn't exist: Nope\r\n"),
    ("up", b"a5 LOGOUT\r\n"),
    ("down", b"* BYE Logging out\r\na5 OK Logout completed.\r\n"),
]

POP3_PIPELINED = [
    ("down", b"+OK Dovecot (Debian) ready.\r\n"),
    ("up", b"USER alice\r\nPASS s3cret\r\nSTAT\r\n"),
    ("down", b"+OK\r\n+OK Logged in.\r\n+OK 1 4\r\n"),
    ("up", b"RETR 1\r\nRETR 2\r\nQUIT\r\n"),
    ("down", b"+OK 4 octets\r\nabcd\r\n.\r\n-ERR There's no message 2.\r\n+OK Logging out.\r\n"),
]

T0 = 1_000_000_000  # perf_counter_ns-like integers, 1 ms apart


def timed(chunks):
    """``(direction, t, data)`` tuples: a chunk's fields in :class:`mailstudy.wire.Chunk`'s order."""
    return [(d, T0 + (i + 1) * 1_000_000, data) for i, (d, data) in enumerate(chunks)]


def sized(chunks):
    return [(d, t, len(data)) for d, t, data in chunks]


def exchanges(chunks, protocol):
    return [e for e in parse_session(protocol, chunks) if isinstance(e, Exchange)]


def test_a_chunk_tuple_is_a_wire_chunks_fields_in_their_order():
    """Issue 15: one order of a chunk's fields. A tuple the parsers and the metrics take is a
    :class:`~mailstudy.wire.Chunk`'s fields in order, and both read a tuple and a Chunk alike."""
    as_tuples = timed(IMAP)
    chunks = [Chunk(*t) for t in as_tuples]
    assert [dataclasses.astuple(c) for c in chunks] == as_tuples
    assert [chunk_parts(c) for c in chunks] == [chunk_parts(t) for t in as_tuples] == as_tuples
    assert chunk_parts(("up", b"a1 NOOP\r\n")) == ("up", None, b"a1 NOOP\r\n")  # a pair: no time
    ex = exchanges(chunks, "imap")
    assert ex == exchanges(as_tuples, "imap") and len(ex) == 5
    m = session_metrics(chunks, ex, T0)
    assert m == session_metrics(as_tuples, ex, T0) == session_metrics(sized(as_tuples), ex, T0)
    assert m.bytes_up == sum(len(b) for d, b in IMAP if d == "up") and m.round_trips == 5


def test_round_trips_equal_commands_without_pipelining():
    chunks = timed(IMAP)
    ex = exchanges(chunks, "imap")
    assert len(ex) == 5
    assert round_trips((d, n) for d, _, n in sized(chunks)) == len(ex)


def test_pipelining_needs_fewer_round_trips_than_commands():
    chunks = timed(POP3_PIPELINED)
    ex = exchanges(chunks, "pop3")
    assert len(ex) == 6
    assert round_trips((d, n) for d, _, n in sized(chunks)) == 2


def test_round_trips_rules():
    assert round_trips([]) == 0
    assert round_trips([("down", 10)]) == 0
    # consecutive client chunks are one flight; empty chunks (pure ACKs) neither start nor end one
    assert round_trips([("up", 5), ("up", 7), ("down", 0), ("up", 1), ("down", 3), ("up", 0), ("up", 2)]) == 2
    assert round_trips([("up", b"abc"), ("down", b"x"), ("up", b"d")]) == 2
    with pytest.raises(ValueError, match="direction"):
        round_trips([("sideways", 1)])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["up", "down"]), st.integers(0, 5))))
def test_round_trips_never_exceed_client_chunks_and_merging_client_chunks_keeps_them(seq):
    n = round_trips(seq)
    assert n <= sum(1 for d, s in seq if d == "up" and s > 0)
    doubled = [c for d, s in seq for c in ([(d, s)] if d == "down" else [(d, s), (d, s)])]
    assert round_trips(doubled) == n


def test_session_metrics_from_a_parsed_session():
    chunks = timed(IMAP)
    m = session_metrics(sized(chunks), exchanges(chunks, "imap"), t_start=T0, t_list_ready=T0 + 8_000_000)
    assert m.bytes_up == sum(len(b) for d, b in IMAP if d == "up")
    assert m.bytes_down == sum(len(b) for d, b in IMAP if d == "down")
    assert m.commands == 5 and m.round_trips == 5
    assert math.isclose(m.duration_s, 0.012)
    assert math.isclose(m.time_to_list_s, 0.008)
    assert m.exchanges_failed == 1  # a4 NO


def test_session_metrics_bytes_equal_exchange_bytes_plus_greeting():
    chunks = timed(IMAP)
    events = parse_session("imap", chunks)
    ex = [e for e in events if isinstance(e, Exchange)]
    m = session_metrics(sized(chunks), ex, t_start=T0)
    greeting = events[0].nbytes
    assert m.bytes_up == sum(e.bytes_up for e in ex)
    assert m.bytes_down == sum(e.bytes_down for e in ex) + greeting


def test_session_metrics_with_float_seconds_and_unfinished_exchanges():
    chunks = [(d, 10.0 + i * 0.5, data) for i, (d, data) in enumerate(POP3_PIPELINED[:-1])]
    ex = exchanges(chunks, "pop3")  # RETR 1, RETR 2, QUIT never answered
    m = session_metrics(sized(chunks), ex, t_start=9.5, time_scale=1.0)
    assert math.isclose(m.duration_s, 2.0)
    assert m.time_to_list_s is None
    assert m.commands == 6 and m.exchanges_failed == 3
    assert m.round_trips == 2


def test_session_metrics_accepts_byte_chunks_and_empty_sessions():
    chunks = timed(POP3_PIPELINED)
    assert session_metrics(chunks, [], T0).bytes_up == sum(len(b) for d, b in POP3_PIPELINED if d == "up")
    empty = session_metrics([], [], T0)
    assert empty.duration_s == 0 and empty.round_trips == 0 and empty.commands == 0
    assert tuple(empty.as_row()) == METRIC_KEYS  # the one key list, in order


def test_exchanges_frame_redacts_and_orders_by_index():
    chunks = timed(IMAP)
    ex = exchanges(chunks, "imap")
    frame = exchanges_frame(list(reversed(ex)), time_scale=1e-9, t_start=T0)
    assert list(frame.columns) == FRAME_COLUMNS
    assert list(frame["index"]) == [0, 1, 2, 3, 4]
    assert frame.loc[0, "arguments"] == "*** ***"  # LOGIN alice s3cret
    assert frame.loc[2, "arguments"] == "1 (BODY[])"
    assert list(frame["status"]) == ["OK", "OK", "OK", "NO", "OK"]
    assert math.isclose(frame.loc[0, "t_sent_s"], 0.002)
    assert math.isclose(frame.loc[1, "latency_s"], 0.002)  # sent in chunk 3, done in chunk 5
    assert math.isclose(frame.loc[1, "t_first_response_s"], 0.005)
    assert frame["bytes_up"].sum() == sum(len(b) for d, b in IMAP if d == "up")


def test_exchanges_frame_pop3_and_missing_times():
    chunks = timed(POP3_PIPELINED[:-1])
    frame = exchanges_frame(exchanges(chunks, "pop3"))
    assert list(frame["arguments"][:2]) == ["***", "***"]
    assert frame["tag"].isna().all()
    assert frame["latency_s"].isna().sum() == 3
    assert frame["latency_s"].dtype == "float64"


def test_exchanges_frame_empty():
    frame = exchanges_frame([])
    assert isinstance(frame, pd.DataFrame) and frame.empty and list(frame.columns) == FRAME_COLUMNS
