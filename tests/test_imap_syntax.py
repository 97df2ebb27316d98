"""The one IMAP tokenizer (lexer -> values -> typed FETCH data) and the parsers' public spans and progress."""

from __future__ import annotations

from mailstudy.protocol import ImapParser, Pop3Parser
from mailstudy.protocol.events import Span
from mailstudy.protocol.imap_lexer import lex, literal_marker
from mailstudy.protocol.imap_response import (
    parse_fetch,
    split_responses,
    untagged_number,
    values,
)


def test_lexer_spans_of_atoms_quoted_strings_and_literal_markers():
    line = b'a1 LOGIN bob "pa ss\\"w" ~{12+}\r\n'
    toks = lex(line)
    assert [t.kind for t in toks] == ["atom", "atom", "atom", "quoted", "literal"]
    assert line[toks[2].start:toks[2].end] == b"bob"
    assert line[slice(*toks[3].inner)] == b'pa ss\\"w' and toks[3].value == b'pa ss"w'
    assert line[toks[4].start:toks[4].end] == b"~{12+}" and toks[4].value == b"12"
    m = literal_marker(line)
    assert (m.group(1), m.group(2), m.group(3)) == (b"~", b"12", b"+")
    assert literal_marker(b"a1 LOGIN {5} bob\r\n") is None  # a marker only ends a line
    unclosed = lex(b'x "never closed')[1]
    assert unclosed.kind == "quoted" and not unclosed.closed and unclosed.value == b"never closed"


def test_structure_mode_keeps_sections_whole_and_makes_lists():
    text = b"* 1 FETCH (UID 7 BODY[HEADER.FIELDS (FROM TO)]<0> {3}\r\n FLAGS (\\Seen) X NIL 12)\r\n"
    toks = lex(text, structure=True)
    assert b"BODY[HEADER.FIELDS (FROM TO)]<0>" in [t.value for t in toks]
    assert values(toks, [b"abc"])[3] == [b"UID", 7, b"BODY[HEADER.FIELDS (FROM TO)]<0>", b"abc",
                                         b"FLAGS", [b"\\Seen"], b"X", None, 12]
    # without structure, parentheses are bytes of an atom (a password may hold one)
    assert [t.value for t in lex(b"pa(ss w)rd")] == [b"pa(ss", b"w)rd"]


def test_responses_and_fetch_items():
    down = (b"* 2 EXISTS\r\n* 1 FETCH (UID 5 RFC822.SIZE 4 BODY[] {4}\r\nab\r\n FLAGS ())\r\n"
            b"* 2 FETCH (BODY[HEADER] {2}\r\nhi UID 6)\r\nt OK done\r\n* 3 FETCH (BODY[] {9}\r\ncut")
    resps = list(split_responses(down))
    assert len(resps) == 5
    assert parse_fetch(resps[4]).items["BODY[]"] == b"cut"  # cut off by the end: what the stream has of it
    assert untagged_number(resps[0], b"EXISTS") == 2 and untagged_number(resps[1], b"EXISTS") is None
    f1, f2 = parse_fetch(resps[1]), parse_fetch(resps[2])
    assert (f1.seq, f1.uid, f1.size, f1.items["BODY[]"], f1.items["FLAGS"]) == (1, 5, 4, b"ab\r\n", [])
    assert (f2.seq, f2.uid, f2.items["BODY[HEADER]"]) == (2, 6, b"hi")  # UID after the literal
    assert parse_fetch(resps[3]) is None  # "t OK done"


def test_progress_counts_continuations_and_completed_exchanges():
    p = ImapParser()
    assert not p.progress().greeted
    p.feed("down", b"* OK hi\r\n")
    p.feed("up", b"a LOGIN {3}\r\n")
    assert p.progress().settled is False
    p.feed("down", b"+ go\r\n")
    p.feed("up", b"bob pw\r\n")
    now = p.progress()
    assert (now.greeted, now.completed, now.continuations, now.settled) == (True, 0, 1, False)
    p.feed("down", b"a OK\r\n")
    assert p.progress().completed == 1 and p.progress().settled
    q = Pop3Parser()
    q.feed("down", b"+OK\r\n")
    q.feed("up", b"AUTH PLAIN\r\n")
    q.feed("down", b"+ \r\n")
    assert (q.progress().continuations, q.progress().settled) == (1, False)


def test_spans_of_a_client_stream_cut_inside_a_credential():
    """A capture that ends inside ``PASS secret`` or a LOGIN line still yields the credential's span."""
    p = Pop3Parser()
    p.feed("down", b"+OK\r\n")
    p.feed("up", b"USER bob\r\nPASS sec")
    p.close()
    up = b"USER bob\r\nPASS sec"
    assert [(e.kind, up[e.start:e.end]) for e in p.events() if isinstance(e, Span)] == [
        ("pop3-user", b"bob"), ("pop3-pass", b"sec")]
    q = ImapParser(spans=True)
    q.feed("down", b"* OK\r\n")
    q.feed("up", b"a UID FETCH 4:7 (FLAGS)\r\nb LOGIN bob pw")
    q.close()
    up = b"a UID FETCH 4:7 (FLAGS)\r\nb LOGIN bob pw"
    assert [(e.kind, up[e.start:e.end]) for e in q.events() if isinstance(e, Span)] == [
        ("uid-set", b"4:7"), ("imap-login-user", b"bob"), ("imap-login-password", b"pw")]
