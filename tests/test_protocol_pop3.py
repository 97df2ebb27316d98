"""The POP3 parser on hand-written Dovecot-like transcripts, plus chunking and junk properties (hypothesis)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol_helpers import assert_bytes_add_up, exchanges, one_byte_chunks, rechunked, timeless, warnings
from protocol_helpers import feed as _feed
from mailstudy.protocol import Encrypted, Exchange, Greeting, Pop3Parser, parse_session
from mailstudy.protocol.pop3 import is_multiline, redacted_arguments

GREETING = b"+OK Dovecot (Debian) ready.\r\n"
HEADERS = (
    b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: dots\r\n"
    b"Message-ID: <1@example.org>\r\n\r\n"
)
# lines starting with dots, including one that is a lone "." and one that is ".."
MESSAGE = HEADERS + b"Hi Bob,\r\n.hidden line\r\n..\r\n.\r\n...three\r\nbye\r\n"


def dot_stuff(message: bytes) -> bytes:
    return b"".join(b"." + line if line.startswith(b".") else line for line in message.splitlines(keepends=True))


STUFFED = dot_stuff(MESSAGE)
CAPA_LINES = b"CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n"
CAPA = b"+OK\r\n" + CAPA_LINES + b".\r\n"
PLAIN = base64.b64encode(b"\0alice\0s3cret")

# (client bytes, server bytes) per exchange, after the greeting
SESSION = [
    (b"CAPA\r\n", CAPA),
    (b"USER alice\r\n", b"+OK\r\n"),
    (b"PASS s3cret\r\n", b"+OK Logged in.\r\n"),
    (b"STAT\r\n", b"+OK 3 1234\r\n"),
    (b"LIST\r\n", b"+OK 3 messages:\r\n1 %d\r\n2 500\r\n3 334\r\n.\r\n" % len(MESSAGE)),
    (b"LIST 1\r\n", b"+OK 1 %d\r\n" % len(MESSAGE)),
    (b"UIDL\r\n", b"+OK\r\n1 00000001674c8f10\r\n2 00000002674c8f10\r\n3 00000003674c8f10\r\n.\r\n"),
    (b"TOP 1 0\r\n", b"+OK\r\n" + HEADERS + b".\r\n"),
    (b"RETR 1\r\n", b"+OK %d octets\r\n" % len(MESSAGE) + STUFFED + b".\r\n"),
    (b"DELE 1\r\n", b"+OK Marked to be deleted.\r\n"),
    (b"RETR 1\r\n", b"-ERR Message is deleted.\r\n"),
    (b"RSET\r\n", b"+OK\r\n"),
    (b"LIST 9\r\n", b"-ERR There's no message 9.\r\n"),
    (b"XYZZY\r\n", b"-ERR Unknown command: XYZZY\r\n"),
    (b"QUIT\r\n", b"+OK Logging out.\r\n"),
]


def session_chunks() -> list[tuple[str, bytes]]:
    chunks = [("down", GREETING)]
    for up, down in SESSION:
        chunks.append(("up", up))
        if len(down) > 100:
            chunks += [("down", down[:41]), ("down", down[41:])]
        else:
            chunks.append(("down", down))
    return chunks


PIPELINED = [
    ("down", GREETING),
    ("up", b"USER alice\r\nPASS s3cret\r\nSTAT\r\nLIST\r\nUIDL 2\r\n"),
    ("down", b"+OK\r\n+OK Logged in.\r\n+OK 2 900\r\n"),
    ("down", b"+OK 2 messages:\r\n1 400\r\n2 500\r\n.\r\n+OK 2 00000002674c8f10\r\n"),
    ("up", b"QUIT\r\n"),
    ("down", b"+OK Logging out.\r\n"),
]

AUTH = [
    ("down", GREETING),
    ("up", b"AUTH\r\n"),
    ("down", b"+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n"),
    ("up", b"AUTH PLAIN\r\n"),
    ("down", b"+ \r\n"),
    ("up", b"*\r\n"),
    ("down", b"-ERR Authentication aborted\r\n"),
    ("up", b"AUTH PLAIN\r\n"),
    ("down", b"+ \r\n"),
    ("up", PLAIN + b"\r\n"),
    ("down", b"+OK Logged in.\r\n"),
    ("up", b"NOOP\r\n"),
    ("down", b"+OK\r\n"),
]


def feed(chunks, parser=None):
    return _feed(chunks, parser or Pop3Parser())


# -- a plain Dovecot session ----------------------------------------------------------------------------------


def test_session_exchanges_match_the_transcript_byte_for_byte():
    parser, events = feed(session_chunks())
    assert warnings(events) == []
    assert events[0] == Greeting("+OK", "Dovecot (Debian) ready.", 0, len(GREETING))
    ex = exchanges(events)
    assert [e.command for e in ex] == [
        "CAPA", "USER", "PASS", "STAT", "LIST", "LIST", "UIDL", "TOP", "RETR", "DELE", "RETR", "RSET", "LIST",
        "XYZZY", "QUIT",
    ]  # fmt: skip
    for e, (up, down) in zip(ex, SESSION):
        assert (e.bytes_up, e.bytes_down) == (len(up), len(down)), e.command
        assert e.tag is None and e.protocol == "pop3"
    assert [e.status for e in ex].count("-ERR") == 3
    assert [e.index for e in ex] == list(range(len(SESSION)))
    assert parser.unattributed == {"up": 0, "down": 0}
    assert_bytes_add_up(parser, events)


def test_multiline_replies_are_recognized_by_command_and_status():
    _, events = feed(session_chunks())
    ex = exchanges(events)
    assert [e.multiline for e in ex] == [
        True, False, False, False, True, False, True, True, True, False, False, False, False, False, False,
    ]  # fmt: skip
    assert ex[0].data == CAPA_LINES
    assert ex[4].status_text == "3 messages:"
    assert ex[6].data.count(b"\r\n") == 3


def test_retr_data_is_the_original_message_after_dot_unstuffing():
    assert b"\r\n..hidden line\r\n...\r\n..\r\n....three\r\n" in STUFFED  # the wire form really is stuffed
    _, events = feed(session_chunks())
    retr = exchanges(events)[8]
    assert retr.data == MESSAGE
    assert retr.status_text == "%d octets" % len(MESSAGE)
    top = exchanges(events)[7]
    assert top.data == HEADERS


def test_stuffing_is_undone_whatever_the_cut_around_the_dots():
    wire = b"+OK\r\n" + STUFFED + b".\r\n"
    for cut in range(len(wire)):
        _, events = feed([("down", GREETING), ("up", b"RETR 1\r\n"), ("down", wire[:cut]), ("down", wire[cut:])])
        assert exchanges(events)[0].data == MESSAGE, cut


def test_is_multiline():
    assert is_multiline("LIST", "") and not is_multiline("LIST", "1")
    assert is_multiline("uidl", " ") and not is_multiline("UIDL", "1")
    assert is_multiline("AUTH", "") and not is_multiline("AUTH", "PLAIN")
    assert is_multiline("TOP", "1 0") and is_multiline("RETR", "1") and is_multiline("CAPA", "")
    assert not is_multiline("STAT", "") and not is_multiline("XYZZY", "")


def test_redacted_arguments():
    assert redacted_arguments("USER", "alice") == "***"
    assert redacted_arguments("PASS", "s3cret pass") == "***"
    assert redacted_arguments("APOP", "alice c4c9334bac560ecc979e58001b3e22fb") == "*** ***"
    assert redacted_arguments("AUTH", "PLAIN " + PLAIN.decode()) == "PLAIN ***"
    assert redacted_arguments("AUTH", "PLAIN") == "PLAIN"
    assert redacted_arguments("RETR", "1") == "1"


def test_user_and_pass_arguments_are_kept_as_sent():
    _, events = feed(session_chunks())
    ex = exchanges(events)
    assert (ex[1].arguments, ex[2].arguments) == ("alice", "s3cret")


# -- pipelining, AUTH, STLS -----------------------------------------------------------------------------------


def test_pipelined_commands_are_answered_in_order():
    parser, events = feed(PIPELINED)
    assert warnings(events) == []
    ex = exchanges(events)
    assert [(e.command, e.arguments, e.status) for e in ex] == [
        ("USER", "alice", "+OK"),
        ("PASS", "s3cret", "+OK"),
        ("STAT", "", "+OK"),
        ("LIST", "", "+OK"),
        ("UIDL", "2", "+OK"),
        ("QUIT", "", "+OK"),
    ]
    assert ex[3].data == b"1 400\r\n2 500\r\n"
    assert ex[3].bytes_down == len(b"+OK 2 messages:\r\n1 400\r\n2 500\r\n.\r\n")
    assert ex[4].status_text == "2 00000002674c8f10" and not ex[4].multiline
    assert [e.t_sent for e in ex[:5]] == [1] * 5
    assert ex[2].t_done == 2 and ex[3].t_done == 3
    assert_bytes_add_up(parser, events)


def test_auth_continuations_belong_to_auth_and_star_cancels():
    parser, events = feed(AUTH)
    assert warnings(events) == []
    ex = exchanges(events)
    assert [(e.command, e.arguments, e.status) for e in ex] == [
        ("AUTH", "", "+OK"),
        ("AUTH", "PLAIN", "-ERR"),
        ("AUTH", "PLAIN", "+OK"),
        ("NOOP", "", "+OK"),
    ]
    assert ex[0].data == b"PLAIN\r\nLOGIN\r\n"
    assert ex[1].bytes_up == len(b"AUTH PLAIN\r\n*\r\n")
    assert ex[2].bytes_up == len(b"AUTH PLAIN\r\n") + len(PLAIN) + 2
    assert ex[2].bytes_down == len(b"+ \r\n+OK Logged in.\r\n")
    assert_bytes_add_up(parser, events)


def test_stls_then_junk_is_only_counted():
    tls_up = b"\x16\x03\x01\x00\x04abcd"
    junk_down = b"this is not TLS at all\r\n"
    chunks = [("down", GREETING), ("up", b"STLS\r\n"), ("down", b"+OK Begin TLS negotiation now.\r\n"), ("up", tls_up)]
    chunks.append(("down", junk_down))
    parser, events = feed(chunks)
    assert [type(e).__name__ for e in events[:3]] == ["Greeting", "Exchange", "Encrypted"]
    assert events[2].reason == "STLS accepted"
    assert parser.tls.bytes_up == len(tls_up) and parser.tls.records_up == 1
    assert parser.tls.bytes_down == len(junk_down) and parser.tls.records_down == 0
    assert any("not a TLS record header" in w.message for w in warnings(events))
    assert len(exchanges(events)) == 1
    assert_bytes_add_up(parser, events)


def test_stls_refused_stays_plain():
    chunks = [("down", GREETING), ("up", b"STLS\r\n"), ("down", b"-ERR TLS support isn't enabled.\r\n")]
    chunks += [("up", b"STAT\r\n"), ("down", b"+OK 0 0\r\n")]
    _, events = feed(chunks)
    assert not any(isinstance(e, Encrypted) for e in events)
    assert [e.status for e in exchanges(events)] == ["-ERR", "+OK"]


def test_implicit_tls_from_the_first_bytes():
    parser, events = feed([("up", b"\x16\x03\x01\x00\x02hi"), ("down", b"\x16\x03\x03\x00\x01x")])
    assert isinstance(events[0], Encrypted) and "implicit TLS" in events[0].reason
    assert (parser.tls.records_up, parser.tls.records_down) == (1, 1)


# -- end of stream, bad input ---------------------------------------------------------------------------------


def test_stream_ending_inside_retr_gives_an_unfinished_exchange():
    chunks = [("down", GREETING), ("up", b"RETR 1\r\nSTAT\r\n"), ("down", b"+OK 400 octets\r\nFrom: a\r\n")]
    parser, events = feed(chunks)
    ex = exchanges(events)
    assert [(e.command, e.status) for e in ex] == [("RETR", None), ("STAT", None)]
    assert ex[0].data == b"From: a\r\n" and ex[0].status_text == "400 octets"
    assert any("multi-line" in w.message for w in warnings(events))
    assert_bytes_add_up(parser, events)


def test_reply_without_command_is_unattributed():
    parser, events = feed([("down", GREETING), ("down", b"-ERR Disconnected for inactivity.\r\n")])
    assert parser.unattributed["down"] == len(b"-ERR Disconnected for inactivity.\r\n")
    assert len(warnings(events)) == 1


def test_parse_session_with_tuples():
    events = parse_session("pop3", [(d, float(i), b) for i, (d, b) in enumerate(PIPELINED)])
    assert len(exchanges(events)) == 6
    with pytest.raises(ValueError, match="direction"):
        Pop3Parser().feed("left", b"x", 0)


# -- properties -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["session", "pipelined", "auth"])
def test_one_byte_chunks_give_the_same_events(name):
    chunks = {"session": session_chunks(), "pipelined": PIPELINED, "auth": AUTH}[name]
    _, whole = feed(chunks)
    _, tiny = feed(one_byte_chunks(chunks))
    assert timeless(tiny) == timeless(whole)
    assert warnings(tiny) == []


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_random_chunking_gives_the_same_exchanges(data):
    for chunks in (session_chunks(), PIPELINED, AUTH):
        _, expected = feed(chunks)
        parser, events = feed(data.draw(rechunked(chunks)))
        assert timeless(events) == timeless(expected)
        assert_bytes_add_up(parser, events)


TOKENS = [
    b"+OK", b"-ERR", b"+ ", b" ", b"\r\n", b"\n", b".", b"..", b".\r\n", b"\r\n.\r\n", b"RETR 1", b"LIST", b"TOP 1 0",
    b"CAPA", b"UIDL", b"AUTH", b"AUTH PLAIN", b"*", b"STLS", b"USER x", b"\x00\xff", b"\x16\x03", b"xyz",
]  # fmt: skip
junk_bytes = st.one_of(st.binary(max_size=80), st.lists(st.sampled_from(TOKENS), max_size=25).map(b"".join))
junk_session = st.lists(st.tuples(st.sampled_from(["up", "down"]), junk_bytes), max_size=12)


@SETTINGS
@given(junk_session, st.data())
def test_junk_never_raises_bytes_add_up_and_chunking_does_not_matter(chunks, data):
    parser, events = feed(chunks, Pop3Parser(max_line=40))
    assert_bytes_add_up(parser, events)
    assert parser.total == {d: sum(len(b) for dd, b in chunks if dd == d) for d in ("up", "down")}
    assert not any("internal parser error" in w.message for w in warnings(events))
    other, events2 = feed(data.draw(rechunked(chunks)), Pop3Parser(max_line=40))
    assert [e for e in timeless(events2) if isinstance(e, Exchange)] == [
        e for e in timeless(events) if isinstance(e, Exchange)
    ]
    assert other.unattributed == parser.unattributed and other.tls == parser.tls
