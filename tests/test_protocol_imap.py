"""The IMAP parser on hand-written Dovecot-like transcripts, plus chunking and junk properties (hypothesis)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol_helpers import assert_bytes_add_up, exchanges, one_byte_chunks, rechunked, timeless, warnings
from protocol_helpers import feed as _feed
from mailstudy.protocol import Encrypted, Exchange, Greeting, ImapParser, parse_session
from mailstudy.protocol.imap import redacted_arguments

CAPS = b"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN"
GREETING = b"* OK [CAPABILITY " + CAPS + b"] Dovecot (Debian) ready.\r\n"

H1 = b"From: Alice <alice@example.org>\r\nSubject: Lunch?\r\n\r\n"
H2 = b"From: Bob <bob@example.org>\r\nSubject: =?UTF-8?Q?R=C3=A9union?=\r\n\r\n"
# a body whose lines look like IMAP responses: they must stay inside the literal
MSG = (
    b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: tricky\r\n"
    b"Message-ID: <1@example.org>\r\n\r\n"
    b"These lines look like protocol:\r\nKIPB5 OK Fetch completed.\r\n* 3 EXISTS\r\n+ go ahead\r\n{5}\r\nend.\r\n"
)
HDR2 = b"From: Bob <bob@example.org>\r\nSubject: two parts\r\n\r\n"
TEXT2 = b"Hello,\r\nKIPB6 OK not really\r\n"


def lit(payload: bytes) -> bytes:
    return b"{%d}\r\n" % len(payload) + payload


# (client bytes, server bytes) per exchange; the greeting goes first
SESSION1 = [
    (
        b"KIPB1 CAPABILITY\r\n",
        b"* CAPABILITY " + CAPS + b"\r\nKIPB1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n",
    ),
    (b'KIPB2 LOGIN alice "s3cret pass"\r\n', b"KIPB2 OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS MOVE] Logged in\r\n"),
    (
        b"KIPB3 SELECT INBOX\r\n",
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n"
        b"* 2 EXISTS\r\n* 0 RECENT\r\n* OK [UNSEEN 1] First unseen.\r\n"
        b"* OK [UIDVALIDITY 1732630000] UIDs valid\r\n* OK [UIDNEXT 3] Predicted next UID\r\n"
        b"KIPB3 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n",
    ),
    (
        b"KIPB4 UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])\r\n",
        b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (FROM SUBJECT)] " + lit(H1) + b")\r\n"
        b"* 2 FETCH (UID 2 BODY[HEADER.FIELDS (FROM SUBJECT)] " + lit(H2) + b")\r\n"
        b"KIPB4 OK Fetch completed (0.001 + 0.000 secs).\r\n",
    ),
    (
        b"KIPB5 FETCH 1 (BODY[])\r\n",
        b"* 1 FETCH (FLAGS (\\Seen) BODY[] " + lit(MSG) + b")\r\nKIPB5 OK Fetch completed (0.002 + 0.000 secs).\r\n",
    ),
    (
        b"KIPB6 UID FETCH 2 (BODY[HEADER] BODY[TEXT])\r\n",
        b"* 2 FETCH (UID 2 BODY[HEADER] " + lit(HDR2) + b" BODY[TEXT] " + lit(TEXT2) + b")\r\n"
        b"KIPB6 OK Fetch completed (0.001 + 0.000 secs).\r\n",
    ),
    (b"KIPB7 LOGOUT\r\n", b"* BYE Logging out\r\nKIPB7 OK Logout completed (0.001 + 0.000 secs).\r\n"),
]


def session1_chunks() -> list[tuple[str, bytes]]:
    chunks = [("down", GREETING)]
    for up, down in SESSION1:
        chunks.append(("up", up))
        if len(down) > 200:  # big responses arrive in two reads, cut inside a literal
            chunks += [("down", down[:150]), ("down", down[150:])]
        else:
            chunks.append(("down", down))
    return chunks


PLAIN = base64.b64encode(b"\0alice\0s3cret").decode()
APPENDED = b"From: carol@example.org\r\nSubject: appended\r\n\r\nbody\r\n"

SESSION2 = [
    ("down", GREETING),
    # AUTHENTICATE PLAIN with a continuation request; the SASL line is not a command
    ("up", b"A001 AUTHENTICATE PLAIN\r\n"),
    ("down", b"+ \r\n"),
    ("up", PLAIN.encode() + b"\r\n"),
    ("down", b"A001 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"),
    # APPEND with a synchronizing literal
    ("up", b"A002 APPEND INBOX (\\Seen) {%d}\r\n" % len(APPENDED)),
    ("down", b"+ OK\r\n"),
    ("up", APPENDED + b"\r\n"),
    ("down", b"A002 OK [APPENDUID 1732630000 3] Append completed.\r\n"),
    # LITERAL+: no wait
    ("up", b"A003 APPEND INBOX {%d+}\r\n" % len(APPENDED) + APPENDED + b"\r\n"),
    ("down", b"A003 OK [APPENDUID 1732630000 4] Append completed.\r\n"),
    # a refused synchronizing literal is never sent
    ("up", b"A004 APPEND INBOX {999999}\r\n"),
    ("down", b"A004 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n"),
    # three pipelined commands completing out of order
    ("up", b"A005 SELECT INBOX\r\nA006 UID SEARCH ALL\r\nA007 NOOP\r\n"),
    ("down", b"* 4 EXISTS\r\n* 0 RECENT\r\nA007 OK NOOP completed.\r\n"),
    ("down", b"* SEARCH 1 2 3 4\r\nA006 OK Search completed (0.001 + 0.000 secs).\r\n"),
    ("down", b"A005 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"),
    # IDLE: DONE belongs to it
    ("up", b"A008 IDLE\r\n"),
    ("down", b"+ idling\r\n"),
    ("down", b"* 5 EXISTS\r\n"),
    ("up", b"DONE\r\n"),
    ("down", b"A008 OK Idle completed (0.001 + 2.000 secs).\r\n"),
    # LOGIN with two synchronizing literals
    ("up", b"A009 LOGIN {5}\r\n"),
    ("down", b"+ Ready for literal data\r\n"),
    ("up", b"alice {11}\r\n"),
    ("down", b"+ Ready for literal data\r\n"),
    ("up", b"s3cret pass\r\n"),
    ("down", b"A009 BAD Error in IMAP command LOGIN: Already authenticated\r\n"),
    ("up", b"A010 LOGOUT\r\n"),
    ("down", b"* BYE Logging out\r\nA010 OK Logout completed (0.001 + 0.000 secs).\r\n"),
]


def feed(chunks, parser=None):
    return _feed(chunks, parser or ImapParser())


# -- session 1: a plain Dovecot session ----------------------------------------------------------------------


def test_session1_exchanges_match_the_transcript_byte_for_byte():
    parser, events = feed(session1_chunks())
    assert warnings(events) == []
    assert events[0] == Greeting("OK", "[CAPABILITY " + CAPS.decode() + "] Dovecot (Debian) ready.", 0, len(GREETING))
    ex = exchanges(events)
    assert [e.command for e in ex] == ["CAPABILITY", "LOGIN", "SELECT", "UID FETCH", "FETCH", "UID FETCH", "LOGOUT"]
    assert [e.tag for e in ex] == [f"KIPB{i}" for i in range(1, 8)]
    assert all(e.status == "OK" for e in ex)
    for e, (up, down) in zip(ex, SESSION1):
        assert (e.bytes_up, e.bytes_down) == (len(up), len(down)), e.command
    assert ex[3].arguments == "1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])"
    assert ex[2].status_text == "[READ-WRITE] Select completed (0.001 + 0.000 secs)."
    assert parser.unattributed == {"up": 0, "down": 0}
    assert_bytes_add_up(parser, events)


def test_literals_are_collected_in_order_and_hide_fake_status_lines():
    _, events = feed(session1_chunks())
    ex = exchanges(events)
    assert ex[3].literals == (H1, H2)
    assert ex[4].literals == (MSG,)  # "KIPB5 OK" inside the body did not complete KIPB5
    assert ex[4].status_text == "Fetch completed (0.002 + 0.000 secs)."
    assert ex[5].literals == (HDR2, TEXT2)
    assert ex[6].literals == ()


def test_times_come_from_the_chunks_that_carried_the_bytes():
    _, events = feed(session1_chunks())
    fetch_body = exchanges(events)[4]
    # chunks: 0 greeting, then per exchange one up chunk and one or two down chunks
    assert fetch_body.t_sent < fetch_body.t_first_response < fetch_body.t_done
    assert fetch_body.t_done == fetch_body.t_first_response + 1  # the response came in two reads


def test_logout_gets_the_bye():
    _, events = feed(session1_chunks())
    logout = exchanges(events)[-1]
    bye, tagged = b"* BYE Logging out\r\n", b"KIPB7 OK Logout completed (0.001 + 0.000 secs).\r\n"
    assert logout.bytes_down == len(bye) + len(tagged)


# -- session 2: AUTHENTICATE, literals, pipelining, IDLE ------------------------------------------------------


def test_session2_commands_and_statuses():
    parser, events = feed(SESSION2)
    assert warnings(events) == []
    ex = exchanges(events)
    assert [(e.tag, e.command, e.status) for e in ex] == [
        ("A001", "AUTHENTICATE", "OK"),
        ("A002", "APPEND", "OK"),
        ("A003", "APPEND", "OK"),
        ("A004", "APPEND", "NO"),
        ("A005", "SELECT", "OK"),
        ("A006", "UID SEARCH", "OK"),
        ("A007", "NOOP", "OK"),
        ("A008", "IDLE", "OK"),
        ("A009", "LOGIN", "BAD"),
        ("A010", "LOGOUT", "OK"),
    ]
    assert_bytes_add_up(parser, events)
    assert parser.unattributed == {"up": 0, "down": 0}


def test_sasl_response_belongs_to_authenticate():
    _, events = feed(SESSION2)
    auth = exchanges(events)[0]
    assert auth.bytes_up == len(b"A001 AUTHENTICATE PLAIN\r\n") + len(PLAIN) + 2
    assert auth.bytes_down == len(b"+ \r\n") + len(b"A001 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
    assert auth.arguments == "PLAIN"


def test_synchronizing_and_nonsynchronizing_literals_count_as_the_commands_bytes():
    _, events = feed(SESSION2)
    ex = exchanges(events)
    sync_line = b"A002 APPEND INBOX (\\Seen) {%d}\r\n" % len(APPENDED)
    assert ex[1].bytes_up == len(sync_line) + len(APPENDED) + 2
    assert ex[1].bytes_down == len(b"+ OK\r\n") + len(b"A002 OK [APPENDUID 1732630000 3] Append completed.\r\n")
    assert ex[1].arguments == "INBOX (\\Seen) {%d}" % len(APPENDED)
    assert ex[2].bytes_up == len(b"A003 APPEND INBOX {%d+}\r\n" % len(APPENDED)) + len(APPENDED) + 2
    assert ex[2].literals == ()  # client literals are not response literals


def test_refused_synchronizing_literal_does_not_swallow_the_next_commands():
    _, events = feed(SESSION2)
    ex = exchanges(events)
    assert ex[3].bytes_up == len(b"A004 APPEND INBOX {999999}\r\n")
    assert ex[3].status_text == "[OVERQUOTA] Quota exceeded (mailbox for user is full)"
    assert ex[4].command == "SELECT"


def test_pipelined_tags_complete_out_of_order_and_untagged_data_goes_to_the_oldest():
    _, events = feed(SESSION2)
    done_order = [e.tag for e in events if isinstance(e, Exchange)]
    assert done_order.index("A007") < done_order.index("A006") < done_order.index("A005")
    ex = {e.tag: e for e in exchanges(events)}
    # A005 is the oldest outstanding for all untagged lines, including the SEARCH result
    assert ex["A005"].bytes_down == len(b"* 4 EXISTS\r\n* 0 RECENT\r\n* SEARCH 1 2 3 4\r\n") + len(
        b"A005 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"
    )
    assert ex["A007"].bytes_down == len(b"A007 OK NOOP completed.\r\n")
    assert ex["A006"].bytes_down == len(b"A006 OK Search completed (0.001 + 0.000 secs).\r\n")
    assert [ex[t].index for t in ("A005", "A006", "A007")] == [4, 5, 6]


def test_idle_done_belongs_to_idle():
    _, events = feed(SESSION2)
    idle = {e.tag: e for e in exchanges(events)}["A008"]
    assert idle.bytes_up == len(b"A008 IDLE\r\nDONE\r\n")
    assert idle.bytes_down == len(b"+ idling\r\n* 5 EXISTS\r\nA008 OK Idle completed (0.001 + 2.000 secs).\r\n")


def test_login_with_literals_shows_sizes_not_secrets():
    _, events = feed(SESSION2)
    login = {e.tag: e for e in exchanges(events)}["A009"]
    assert login.arguments == "{5} {11}"
    assert login.bytes_up == len(b"A009 LOGIN {5}\r\nalice {11}\r\ns3cret pass\r\n")
    assert login.bytes_down == 2 * len(b"+ Ready for literal data\r\n") + len(
        b"A009 BAD Error in IMAP command LOGIN: Already authenticated\r\n"
    )


def test_redacted_arguments():
    assert redacted_arguments("LOGIN", 'alice "s3cret pass"') == "*** ***"
    assert redacted_arguments("login", "{5} {11}") == "*** ***"
    assert redacted_arguments("AUTHENTICATE", "PLAIN " + PLAIN) == "PLAIN ***"
    assert redacted_arguments("AUTHENTICATE", "PLAIN") == "PLAIN"
    assert redacted_arguments("SELECT", "INBOX") == "INBOX"


# -- TLS -----------------------------------------------------------------------------------------------------

CLIENT_HELLO = b"\x16\x03\x01\x00\x05" + b"hello"
SERVER_FLIGHT = b"\x16\x03\x03\x00\x02" + b"hi" + b"\x17\x03\x03\x00\x01" + b"x"


def test_starttls_ok_switches_to_counting_tls_records():
    chunks = [
        ("down", GREETING),
        ("up", b"a1 STARTTLS\r\n"),
        ("down", b"a1 OK Begin TLS negotiation now.\r\n"),
        ("up", CLIENT_HELLO),
        ("down", SERVER_FLIGHT),
        ("up", b"\x17\x03\x03\x00\x03abc"),
    ]
    parser, events = feed(chunks)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Greeting", "Exchange", "Encrypted"]
    assert events[2].reason == "STARTTLS accepted"
    assert (parser.tls.bytes_up, parser.tls.records_up) == (len(CLIENT_HELLO) + 8, 2)
    assert (parser.tls.bytes_down, parser.tls.records_down) == (len(SERVER_FLIGHT), 2)
    assert_bytes_add_up(parser, events)


def test_starttls_refused_stays_plain():
    chunks = [
        ("down", GREETING),
        ("up", b"a1 STARTTLS\r\n"),
        ("down", b"a1 NO TLS not configured\r\n"),
        ("up", b"a2 NOOP\r\n"),
        ("down", b"a2 OK NOOP completed.\r\n"),
    ]
    _, events = feed(chunks)
    assert not any(isinstance(e, Encrypted) for e in events)
    assert [e.command for e in exchanges(events)] == ["STARTTLS", "NOOP"]


def test_implicit_tls_is_noticed_from_the_first_bytes():
    parser, events = feed([("up", CLIENT_HELLO[:1]), ("up", CLIENT_HELLO[1:]), ("down", SERVER_FLIGHT)])
    assert isinstance(events[0], Encrypted)
    assert "implicit TLS" in events[0].reason
    assert parser.tls.records_up == 1 and parser.tls.records_down == 2
    assert not exchanges(events)


# -- end of stream, bad input ---------------------------------------------------------------------------------


def test_close_turns_outstanding_commands_into_unfinished_exchanges():
    chunks = [
        ("down", GREETING),
        ("up", b"a1 FETCH 1 (BODY[])\r\n"),
        ("down", b"* 1 FETCH (BODY[] {100}\r\nonly part of it"),
    ]
    parser, events = feed(chunks)
    ex = exchanges(events)
    assert len(ex) == 1 and ex[0].status is None and ex[0].t_done is None
    assert ex[0].literals == (b"only part of it",)
    assert any("outstanding" in w.message for w in warnings(events))
    assert_bytes_add_up(parser, events)


def test_unknown_tag_and_unsolicited_data_are_unattributed_with_warnings():
    chunks = [("down", GREETING), ("down", b"* BYE Disconnected for inactivity.\r\nzz9 OK what\r\n")]
    parser, events = feed(chunks)
    assert parser.unattributed["down"] == len(b"* BYE Disconnected for inactivity.\r\nzz9 OK what\r\n")
    assert len(warnings(events)) == 2
    assert_bytes_add_up(parser, events)


def test_runaway_line_is_cut_warned_and_parsing_goes_on():
    parser = ImapParser(max_line=64)
    chunks = [
        ("down", GREETING[:60] + b"\r\n"),
        ("up", b"a1 NOOP\r\n"),
        ("down", b"* " + b"x" * 500 + b"\r\na1 OK done\r\n"),
    ]
    parser, events = feed(chunks, parser)
    ex = exchanges(events)
    assert ex[0].status == "OK" and ex[0].bytes_down == 504 + len(b"a1 OK done\r\n")
    assert any("longer than 64 bytes" in w.message for w in warnings(events))
    assert_bytes_add_up(parser, events)


def test_parse_session_accepts_tuples_and_bad_protocols_say_so():
    events = parse_session("imap", [(d, i, b) for i, (d, b) in enumerate(session1_chunks())])
    assert len(exchanges(events)) == 7
    with pytest.raises(ValueError, match="unknown protocol"):
        parse_session("smtp", [])
    with pytest.raises(ValueError, match="direction"):
        ImapParser().feed("sideways", b"x", 0)


def test_next_event_drains_in_order():
    parser = ImapParser()
    parser.feed("down", GREETING, 0)
    parser.feed("up", b"a1 NOOP\r\n", 1)
    parser.feed("down", b"a1 OK done\r\n", 2)
    assert isinstance(parser.next_event(), Greeting)
    assert isinstance(parser.next_event(), Exchange)
    assert parser.next_event() is None


# -- properties -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["session1", "session2"])
def test_one_byte_chunks_give_the_same_events(name):
    chunks = session1_chunks() if name == "session1" else SESSION2
    _, whole = feed(chunks)
    _, tiny = feed(one_byte_chunks(chunks))
    assert timeless(tiny) == timeless(whole)
    assert warnings(tiny) == []


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_random_chunking_gives_the_same_exchanges(data):
    for chunks in (session1_chunks(), SESSION2):
        _, expected = feed(chunks)
        parser, events = feed(data.draw(rechunked(chunks)))
        assert timeless(events) == timeless(expected)
        assert_bytes_add_up(parser, events)


TOKENS = [
    b"a1 ", b"a2 ", b"* ", b"+ ", b"OK ", b"NO ", b"BAD ", b"{3}\r\n", b"{2+}\r\n", b"{0}\r\n", b"~{1}\r\n",
    b"\r\n", b"\n", b"UID ", b"FETCH ", b"AUTHENTICATE PLAIN", b"IDLE", b"DONE", b"STARTTLS", b"LOGIN x y",
    b"xyz", b"\x00\xff", b"\x16\x03", b"{99999999999999999999}\r\n", b"(", b")",
]
junk_bytes = st.one_of(st.binary(max_size=80), st.lists(st.sampled_from(TOKENS), max_size=25).map(b"".join))
junk_session = st.lists(st.tuples(st.sampled_from(["up", "down"]), junk_bytes), max_size=12)


@SETTINGS
@given(junk_session, st.data())
def test_junk_never_raises_bytes_add_up_and_chunking_does_not_matter(chunks, data):
    parser, events = feed(chunks, ImapParser(max_line=40))
    assert_bytes_add_up(parser, events)
    assert parser.total == {d: sum(len(b) for dd, b in chunks if dd == d) for d in ("up", "down")}
    assert not any("internal parser error" in w.message for w in warnings(events))
    other, events2 = feed(data.draw(rechunked(chunks)), ImapParser(max_line=40))
    assert [e for e in timeless(events2) if isinstance(e, Exchange)] == [
        e for e in timeless(events) if isinstance(e, Exchange)
    ]
    assert other.unattributed == parser.unattributed and other.tls == parser.tls


def test_parse_session_accepts_trace_chunks():
    from mailstudy.live.trace import Chunk

    chunks = [Chunk(d, 1000 + i, b) for i, (d, b) in enumerate(session1_chunks())]
    ex = exchanges(parse_session("imap", chunks))
    assert [e.tag for e in ex] == [f"KIPB{i}" for i in range(1, 8)]
    assert ex[0].t_sent == 1001 and ex[0].t_done == 1002
