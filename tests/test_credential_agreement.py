"""Redaction, replay and the parsers agree on which bytes are credentials (issue 10, "Done when").

Random IMAP and POP3 sessions are built from a plan (LOGIN with atom, quoted, synchronizing literal and LITERAL+
arguments; AUTHENTICATE / AUTH PLAIN and LOGIN with and without an initial response, the SASL lines sent only
after the server's ``+``; USER/PASS; APOP), once with the captured account's credentials and once with the
replay account's. The plan knows every credential's bytes, so each side is checked against the truth:

* the parser's credential spans are exactly the planned credentials, however the streams are cut into chunks;
* redaction (``find_credentials``) reports those same spans;
* the replay's rewrite turns the first session's client stream into the second's, byte for byte.
"""

from __future__ import annotations

import base64

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailstudy.offline.redact import find_credentials
from mailstudy.offline.replay import rewrite_client_stream
from mailstudy.protocol import make_parser
from mailstudy.protocol.events import Span
from mailstudy.servers.base import Account

REPLAY = Account("alice", "wonderland-42")
_ATOM_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.-_"
#: the captured account: a user that is an atom, a password that may need quoting (space, quote, backslash)
captured_accounts = st.builds(Account, st.text(_ATOM_CHARS, min_size=1, max_size=12),
                              st.text(_ATOM_CHARS + ' "\\', min_size=1, max_size=12))


class Session:
    """Chunks in order plus the credentials (kind, bytes) the client sent."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []
        self.secrets: list[tuple[str, bytes]] = []

    def up(self, data: bytes, kind: str | None = None, secret: bytes | None = None) -> None:
        if data:
            self.chunks.append(("up", data))
        if kind and secret:
            self.secrets.append((kind, secret))

    def down(self, data: bytes) -> None:
        self.chunks.append(("down", data))

    @property
    def up_stream(self) -> bytes:
        return b"".join(d for k, d in self.chunks if k == "up")


def _astring(s: Session, form: str, value: bytes, kind: str) -> None:
    if form == "atom":
        s.up(value, kind, value)
    elif form == "quoted":
        inner = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        s.up(b'"'), s.up(inner, kind, inner), s.up(b'"')
    else:  # "sync" or "plus"
        s.up(b"{%d%s}\r\n" % (len(value), b"+" if form == "plus" else b""))
        if form == "sync":
            s.down(b"+ go ahead\r\n")
        s.up(value, kind, value)


def _sasl_values(mech: str, account: Account) -> list[bytes]:
    if mech == "PLAIN":
        return [base64.b64encode(b"\0" + account.user.encode() + b"\0" + account.password.encode())]
    return [base64.b64encode(account.user.encode()), base64.b64encode(account.password.encode())]


def imap_session(plan: list[tuple], account: Account, like: Account | None = None) -> Session:
    """The session of ``plan`` logging in as ``account``, in the forms a client chose for ``like`` (the
    captured account: a rewrite keeps the captured form)."""
    like = like or account
    s = Session()
    s.down(b"* OK IMAP4rev1 ready\r\n")
    for i, step in enumerate(plan):
        tag = b"a%d" % i
        if step[0] == "login":
            _, user_form, pass_form = step
            s.up(tag + b" LOGIN ")
            user = account.user.encode()
            password = account.password.encode()
            if pass_form == "atom" and any(c not in _ATOM_CHARS for c in like.password):
                pass_form = "quoted"  # an atom cannot hold it: a client quotes it
            _astring(s, user_form, user, "imap-login-user")
            s.up(b" ")
            _astring(s, pass_form, password, "imap-login-password")
            s.up(b"\r\n")
            s.down(tag + b" OK LOGIN completed\r\n")
        elif step[0] == "auth":
            _, mech, initial = step
            values = _sasl_values(mech, account)
            if initial:
                s.up(tag + b" AUTHENTICATE " + mech.encode() + b" ")
                s.up(values[0], "imap-authenticate", values[0])
                s.up(b"\r\n")
                rest = values[1:]
            else:
                s.up(tag + b" AUTHENTICATE " + mech.encode() + b"\r\n")
                rest = values
            for v in rest:
                s.down(b"+ \r\n")
                s.up(v, "imap-sasl-response", v)
                s.up(b"\r\n")
            s.down(tag + b" OK AUTHENTICATE completed\r\n")
        else:
            s.up(tag + b" NOOP\r\n")
            s.down(tag + b" OK NOOP completed\r\n")
    return s


def pop3_session(plan: list[tuple], account: Account) -> Session:
    s = Session()
    s.down(b"+OK POP3 ready\r\n")
    for step in plan:
        if step[0] == "userpass":
            s.up(b"USER "), s.up(account.user.encode(), "pop3-user", account.user.encode()), s.up(b"\r\n")
            s.down(b"+OK\r\n")
            s.up(b"PASS "), s.up(account.password.encode(), "pop3-pass", account.password.encode()), s.up(b"\r\n")
            s.down(b"+OK logged in\r\n")
        elif step[0] == "apop":  # cannot be mapped: the same in both sessions
            s.up(b"APOP "), s.up(b"mrose", "pop3-apop", b"mrose"), s.up(b" ")
            s.up(b"c4c9334bac560ecc979e58001b3e22fb", "pop3-apop", b"c4c9334bac560ecc979e58001b3e22fb")
            s.up(b"\r\n")
            s.down(b"+OK\r\n")
        elif step[0] == "auth":
            _, mech, initial = step
            values = _sasl_values(mech, account)
            if initial:
                s.up(b"AUTH " + mech.encode() + b" "), s.up(values[0], "pop3-auth", values[0]), s.up(b"\r\n")
                rest = values[1:]
            else:
                s.up(b"AUTH " + mech.encode() + b"\r\n")
                rest = values
            for v in rest:
                s.down(b"+ \r\n")
                s.up(v, "pop3-sasl-response", v)
                s.up(b"\r\n")
            s.down(b"+OK\r\n")
        else:
            s.up(b"STAT\r\n")
            s.down(b"+OK 0 0\r\n")
    return s


_forms = st.sampled_from(["atom", "quoted", "sync", "plus"])
_mechs = st.sampled_from(["PLAIN", "LOGIN"])
imap_plans = st.lists(st.one_of(st.tuples(st.just("login"), _forms, _forms),
                                st.tuples(st.just("auth"), _mechs, st.booleans()),
                                st.tuples(st.just("noop"))), min_size=1, max_size=5)
pop3_plans = st.lists(st.one_of(st.tuples(st.just("userpass")), st.tuples(st.just("apop")),
                                st.tuples(st.just("auth"), _mechs, st.booleans()),
                                st.tuples(st.just("stat"))), min_size=1, max_size=5)


def _merge(chunks: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Consecutive chunks of one direction joined (what a capture delivers when nothing interleaves)."""
    out: list[tuple[str, bytes]] = []
    for k, d in chunks:
        if out and out[-1][0] == k:
            out[-1] = (k, out[-1][1] + d)
        else:
            out.append((k, d))
    return out


def _cut(chunks: list[tuple[str, bytes]], cuts: list[int]) -> list[tuple[str, bytes]]:
    """Each chunk cut again at the given offsets (modulo its length)."""
    out = []
    for i, (k, d) in enumerate(chunks):
        at = sorted({c % len(d) for c in cuts[i % len(cuts):][:2]} - {0}) if d and cuts else []
        prev = 0
        for a in at + [len(d)]:
            out.append((k, d[prev:a]))
            prev = a
    return out


def _parser_spans(protocol: str, chunks) -> list[tuple[str, bytes]]:
    up = b"".join(d for k, d in chunks if k == "up")
    p = make_parser(protocol)
    for k, d in chunks:
        p.feed(k, d)
    p.close()
    return [(e.kind, up[e.start:e.end]) for e in p.events() if isinstance(e, Span) and e.secret]


def _agree(protocol: str, captured: Session, replayed: Session, cuts: list[int]) -> None:
    chunks = _cut(_merge(captured.chunks), cuts)
    up = captured.up_stream
    assert _parser_spans(protocol, chunks) == captured.secrets
    found, encrypted = find_credentials(protocol, chunks)
    assert [(c.kind, up[c.start:c.end]) for c in found] == captured.secrets and not encrypted
    edits, _warnings = rewrite_client_stream(protocol, chunks, REPLAY)
    out, pos = bytearray(), 0
    for a, b, new in sorted(edits):
        out += up[pos:a] + new
        pos = b
    out += up[pos:]
    assert bytes(out) == replayed.up_stream


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(imap_plans, captured_accounts, st.lists(st.integers(0, 200), min_size=1, max_size=8))
def test_imap_redaction_replay_and_parser_agree(plan, account, cuts):
    _agree("imap", imap_session(plan, account), imap_session(plan, REPLAY, like=account), cuts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pop3_plans, captured_accounts, st.lists(st.integers(0, 200), min_size=1, max_size=8))
def test_pop3_redaction_replay_and_parser_agree(plan, account, cuts):
    _agree("pop3", pop3_session(plan, account), pop3_session(plan, REPLAY), cuts)


def test_a_line_the_server_did_not_ask_for_is_a_command_for_all_three():
    """Without a ``+`` from the server the line after ``AUTHENTICATE PLAIN`` is a command (the parser's rule):
    neither redaction nor replay treats it as a credential."""
    chunks = [("down", b"* OK hi\r\n"), ("up", b"a AUTHENTICATE PLAIN\r\nAGJvYgBidWlsZGVy\r\n"),
              ("down", b"a BAD no\r\n")]
    assert _parser_spans("imap", chunks) == []
    assert find_credentials("imap", chunks)[0] == []
    assert rewrite_client_stream("imap", chunks, REPLAY)[0] == []
