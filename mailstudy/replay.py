"""Replay a captured mail session against a fresh local server, and measure it the same way as the original.

Why: a capture of *any* client (curl, fetchmail, mbsync, Thunderbird, our own engine) says what that client
cost against that server. Replaying its bytes against a fresh server of a chosen kind, with the same mailbox and
the same pipelining, answers "what would the same client behaviour cost on Dovecot / on the embedded server?"
and checks that a capture is understood: replayed on the same server kind, our own sessions give the same
commands, round trips and downloaded bytes, and every message comes back byte for byte.

The steps, for each plain-text session that :func:`mailstudy.analyze.analyze_pcap` finds:

1. **Mailbox** (:func:`rebuild_mailbox`). IMAP: the untagged ``FETCH`` responses of the server's stream give, per
   sequence number, the UID, ``RFC822.SIZE`` and message data. A whole message is ``BODY[]``/``RFC822`` (or
   ``BODY[]<0>`` of the full size), or ``BODY[HEADER]`` + ``BODY[TEXT]`` (what fetchmail fetches). Otherwise the
   message is a *placeholder*: the header (``BODY[HEADER]``, ``RFC822.HEADER``, ``BODY[HEADER.FIELDS ...]``) or
   a partial ``BODY[]<0>``, followed by filler lines up to the ``RFC822.SIZE`` seen, if any. Sequence numbers up
   to the first ``* n EXISTS`` that were never fetched become small placeholders, so ``1:*`` and ``EXISTS``
   mean the same on the new server. POP3: ``RETR`` data (already un-stuffed by the parser) is whole; ``TOP``
   data is a placeholder head, filled to the ``LIST`` size; ``STAT`` gives the count. Order: sequence number
   (IMAP, which is UID order) or message number (POP3).
2. **A fresh server** (``make_server(kind)``) with that mailbox in the INBOX of its default account.
3. **Credentials** are mapped to the new account: IMAP ``LOGIN`` (atom, quoted string or literal, keeping the
   form), ``AUTHENTICATE PLAIN``/``LOGIN`` (initial response or continuation lines); POP3 ``USER``, ``PASS``,
   ``AUTH PLAIN``/``LOGIN``. Other mechanisms and ``APOP`` cannot be mapped: a warning says so and the login
   is replayed as captured (and fails).
4. **UIDs**: a fresh server numbers the messages 1..n in delivery order, so the message at sequence number i gets
   UID i. The first argument (a sequence set) of ``UID FETCH|STORE|COPY|MOVE|EXPUNGE`` is mapped element-wise:
   a captured UID becomes the new UID of the same message; a range ``a:b`` becomes the range of the new UIDs of
   the captured UIDs inside it (order is kept, so it stays a range); ``*`` stays; a number no captured message
   had is kept (a warning says so) unless it lies above every captured UID, where it becomes ``max+1`` (same
   meaning: past the end). Sequence numbers (plain ``FETCH 1:*``) are unchanged. ``UID SEARCH`` criteria are
   not mapped. When the captured UIDs are already 1..n nothing changes, byte for byte.
5. **Flights** (:func:`client_flights`): a flight is a maximal run of client payload not interrupted by server
   payload (``metrics.round_trips``). Each flight is sent with one ``sendall`` on a traced socket; then the
   server's replies are read until the replay has reached the point the original had reached before the next
   flight: as many complete exchanges (and continuation requests ``+``, which is how a synchronizing literal
   or a SASL exchange waits) as the original, judged by feeding what was sent and received into a fresh sans-IO
   parser, and at least one byte when the original had a reply there. A flight that does not get that far
   within ``timeout`` stops the replay of that session with a warning. After a final ``LOGOUT``/``QUIT`` the
   replay reads to the server's close, as our own clients do, so the byte counts are what crossed the wire.
6. **Metrics** of the replay come from the trace through ``parse_session`` and ``metrics.session_metrics``, the
   same definitions the original's analysis used. Messages fetched whole in the replay are compared byte for
   byte with the mailbox (``messages_checked``/``messages_matched``).

What may differ between servers even for a faithful replay: the greeting, capability lists, untagged responses
to ``SELECT`` (Dovecot adds ``HIGHESTMODSEQ``, ``PERMANENTFLAGS`` ...), status texts (Dovecot's ``(0.001 + 0.000
secs)`` timing text varies run to run), UIDL strings; so across server kinds only commands and round trips are
expected to be equal. Sessions that switched to TLS (or to COMPRESS) cannot be replayed: their bytes after the
switch are opaque; the result says so.
"""

from __future__ import annotations

import base64
import binascii
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from .metrics import session_metrics
from .protocol import parse_session
from .protocol.events import DOWN, UP, Encrypted, Exchange
from .protocol.imap import ImapParser
from .protocol.pop3 import Pop3Parser, _status_of
from .servers.base import Account, ServerError, make_server
from .trace import Trace, traced_connection

__all__ = ["Flight", "Mailbox", "ReplayError", "ReplayReport", "SessionReplay", "Target", "METRIC_KEYS",
           "client_flights", "filler", "map_uid_set", "rebuild_mailbox", "replay_pcap", "replay_session",
           "rewrite_client_stream"]

METRIC_KEYS = ("bytes_up", "bytes_down", "commands", "round_trips", "duration_s", "exchanges_failed")
SERVER_KINDS = ("embedded", "dovecot")
DEFAULT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0
FILLER_LINE = 76  # filler body lines: 76 'x' + CRLF


class ReplayError(ValueError):
    """A capture cannot be replayed at all (no mail session, no such session); the message is one line."""


# ---- 1. the mailbox ------------------------------------------------------------------------------------------
@dataclass
class Mailbox:
    """The messages a session's capture carries, in the order the new server must hold them."""

    protocol: str
    messages: list[bytes] = field(default_factory=list)
    whole: list[bool] = field(default_factory=list)  # True: byte-exact from the capture; False: placeholder
    uids: list[int | None] = field(default_factory=list)  # IMAP: the captured UID of each message
    warnings: list[str] = field(default_factory=list)

    @property
    def placeholders(self) -> int:
        return sum(1 for w in self.whole if not w)

    def uid_map(self) -> dict[int, int]:
        """Captured UID -> UID on a fresh server (position + 1)."""
        return {u: i + 1 for i, u in enumerate(self.uids) if u is not None}


def filler(size: int, head: bytes = b"") -> bytes:
    """``head`` followed by filler lines so that the result is ``size`` bytes (just ``head`` if it is longer)."""
    out = bytearray(head)
    if size > len(out) and out and not out.endswith(b"\n"):
        out += b"\r\n"[: size - len(out)]
    while len(out) < size:
        left = size - len(out)
        if left <= FILLER_LINE + 2:
            out += b"x" * (left - 2) + b"\r\n" if left >= 2 else b"x" * left
        else:
            out += b"x" * FILLER_LINE + b"\r\n"
    return bytes(out)


def _placeholder(head: bytes | None, size: int | None, what: str) -> bytes:
    if not head:
        head = (b"Subject: placeholder for " + what.encode() + b" (not in the capture)\r\n"
                b"X-Mailstudy-Replay: placeholder\r\n\r\n")
    return filler(size or 0, head)


_SERVER_LITERAL = re.compile(rb"~?\{(\d{1,20})\}\r?\n\Z")
_FETCH = re.compile(rb"\* (\d+) FETCH \(", re.IGNORECASE)
_EXISTS = re.compile(rb"\* (\d+) EXISTS\r?\n\Z", re.IGNORECASE)
_RECENT = re.compile(rb"\* (\d+) RECENT\r?\n\Z", re.IGNORECASE)
_LIT_REF = re.compile(rb"\x00(\d+)\x00")


def _imap_responses(down: bytes) -> Iterable[tuple[bytes, list[bytes]]]:
    """Server responses as (text with each literal replaced by ``\\x00i\\x00``, literal payloads)."""
    pos, n = 0, len(down)
    while pos < n:
        end = down.find(b"\n", pos)
        if end < 0:
            return
        line = down[pos:end + 1]
        pos = end + 1
        if not line.startswith(b"*"):
            yield line, []
            continue
        text, lits = bytearray(), []
        while True:
            m = _SERVER_LITERAL.search(line)
            if m is None:
                text += line
                break
            size = int(m.group(1))
            text += line[:m.start()] + b"\x00%d\x00" % len(lits)
            lits.append(down[pos:pos + size])
            pos += size
            end = down.find(b"\n", pos)
            if end < 0:
                end = n - 1
            line = down[pos:end + 1]
            pos = end + 1
        yield bytes(text), lits


def _fetch_items(text: bytes, lits: list[bytes]) -> list[tuple[str, Any]]:
    """The (NAME, value) pairs of one ``* n FETCH (...)`` response; values: int, bytes (string/literal), None,
    or raw bytes of a parenthesized list."""
    m = _FETCH.match(text)
    i, n = m.end(), len(text)
    out: list[tuple[str, Any]] = []

    def skip_spaces(j: int) -> int:
        while j < n and text[j:j + 1] == b" ":
            j += 1
        return j

    while True:
        i = skip_spaces(i)
        if i >= n or text[i:i + 1] in (b")", b"\r", b"\n"):
            break
        # item name, with a [section] that may hold spaces and parentheses, and an optional <origin>
        j, depth = i, 0
        while j < n:
            c = text[j:j + 1]
            if c == b"[":
                depth += 1
            elif c == b"]":
                depth -= 1
            elif depth == 0 and c in (b" ", b")", b"\r", b"\n"):
                break
            j += 1
        name = text[i:j].decode("ascii", "replace").upper()
        i = skip_spaces(j)
        c = text[i:i + 1]
        if c == b"\x00":  # a literal
            lm = _LIT_REF.match(text, i)
            value: Any = lits[int(lm.group(1))] if lm else b""
            i = lm.end() if lm else i + 1
        elif c == b'"':
            j, buf = i + 1, bytearray()
            while j < n and text[j:j + 1] != b'"':
                if text[j:j + 1] == b"\\":
                    j += 1
                buf += text[j:j + 1]
                j += 1
            value, i = bytes(buf), j + 1
        elif c == b"(":
            j, depth, quoted = i, 0, False
            while j < n:
                ch = text[j:j + 1]
                if quoted:
                    if ch == b"\\":
                        j += 1
                    elif ch == b'"':
                        quoted = False
                elif ch == b'"':
                    quoted = True
                elif ch == b"(":
                    depth += 1
                elif ch == b")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            value, i = text[i:j + 1], j + 1
        else:
            j = i
            while j < n and text[j:j + 1] not in (b" ", b")", b"\r", b"\n"):
                j += 1
            atom = text[i:j]
            value = int(atom) if atom.isdigit() else (None if atom.upper() == b"NIL" else atom)
            i = j
        out.append((name, value))
    return out


@dataclass
class _Seen:
    uid: int | None = None
    size: int | None = None
    whole: bytes | None = None
    header: bytes | None = None
    fields: bytes | None = None  # BODY[HEADER.FIELDS ...]: a partial header
    text: bytes | None = None
    start: bytes | None = None  # BODY[]<0>: the start of the message


_WHOLE = {"BODY[]", "RFC822"}
_HEADER = {"BODY[HEADER]", "RFC822.HEADER"}
_TEXT = {"BODY[TEXT]", "RFC822.TEXT"}


def imap_fetched(down: bytes) -> tuple[dict[int, _Seen], int | None, int | None]:
    """What the server's FETCH responses carried, per sequence number, and the first EXISTS and RECENT counts
    (one mailbox is assumed)."""
    seen: dict[int, _Seen] = {}
    exists: int | None = None
    recent: int | None = None
    for text, lits in _imap_responses(down):
        if exists is None and (m := _EXISTS.match(text)):
            exists = int(m.group(1))
            continue
        if recent is None and (m := _RECENT.match(text)):
            recent = int(m.group(1))
            continue
        m = _FETCH.match(text)
        if m is None:
            continue
        s = seen.setdefault(int(m.group(1)), _Seen())
        for name, value in _fetch_items(text, lits):
            if name == "UID" and isinstance(value, int):
                s.uid = value
            elif name == "RFC822.SIZE" and isinstance(value, int):
                s.size = value
            elif not isinstance(value, bytes):
                continue
            elif name in _WHOLE:
                s.whole = value
            elif name.startswith("BODY[]<"):
                if name == "BODY[]<0>":
                    s.start = value if s.start is None or len(value) > len(s.start) else s.start
            elif name in _HEADER:
                s.header = value
            elif name in _TEXT:
                s.text = value
            elif name.startswith("BODY[HEADER.FIELDS"):
                s.fields = value
    return seen, exists, recent


def _imap_mailbox(session) -> Mailbox:
    box = Mailbox("imap")
    down = _plain_stream(session, DOWN)
    seen, exists, recent = imap_fetched(down)
    count = max([exists or 0, *seen.keys()] if seen else [exists or 0])
    if exists and recent is not None and recent != exists:
        box.warnings.append(f"the captured mailbox was not fresh ({recent} of {exists} messages \\Recent): "
                            f"flags and \\Recent are not restored, so FETCH FLAGS and SELECT replies may differ")
    for seq in range(1, count + 1):
        s = seen.get(seq, _Seen())
        what = f"message {seq}"
        if s.whole is not None:
            msg, whole = s.whole, True
        elif s.header is not None and s.text is not None:
            msg, whole = s.header + s.text, True
        elif s.start is not None and s.size is not None and len(s.start) >= s.size:
            msg, whole = s.start[:s.size], True
        else:
            msg, whole = _placeholder(s.header or s.start or s.fields, s.size, what), False
        box.messages.append(msg)
        box.whole.append(whole)
        box.uids.append(s.uid)
    _check_uids(box)
    for e in _exchanges(session):
        if e.command in ("SELECT", "EXAMINE") and e.arguments.strip().strip('"').upper() != "INBOX":
            box.warnings.append(f"the client opened {e.arguments.strip()!r}: only one mailbox is rebuilt, "
                                f"and it is the new server's INBOX")
    return box


def _check_uids(box: Mailbox) -> None:
    known = [u for u in box.uids if u is not None]
    if known != sorted(set(known)):
        box.warnings.append("captured UIDs are not increasing with sequence numbers; UID mapping may be wrong")


def _pop3_mailbox(session) -> Mailbox:
    box = Mailbox("pop3")
    count = 0
    sizes: dict[int, int] = {}
    got: dict[int, tuple[bytes, bool]] = {}
    for e in _exchanges(session):
        if not e.ok:
            continue
        args = e.arguments.split()
        if e.command == "STAT":
            parts = e.status_text.split()
            if parts and parts[0].isdigit():
                count = max(count, int(parts[0]))
        elif e.command == "LIST":
            lines = e.data.decode("ascii", "replace").splitlines() if e.multiline else [e.status_text]
            for line in lines:
                p = line.split()
                if len(p) >= 2 and p[0].isdigit() and p[1].isdigit():
                    sizes[int(p[0])] = int(p[1])
        elif e.command == "RETR" and args and args[0].isdigit():
            got[int(args[0])] = (e.data, True)
        elif e.command == "TOP" and args and args[0].isdigit():
            n = int(args[0])
            if n not in got or not got[n][1]:
                got[n] = (e.data, False)
    count = max([count, *sizes, *got]) if (sizes or got) else count
    for n in range(1, count + 1):
        data, whole = got.get(n, (b"", False))
        if not whole and data and sizes.get(n) == len(data):
            whole = True  # TOP n k that returned the whole message
        box.messages.append(data if whole else _placeholder(data, sizes.get(n), f"message {n}"))
        box.whole.append(whole)
        box.uids.append(None)
    return box


def rebuild_mailbox(session) -> Mailbox:
    """The mailbox a session's capture carries (see the module doc, step 1)."""
    box = _imap_mailbox(session) if session.protocol == "imap" else _pop3_mailbox(session)
    if box.placeholders:
        box.warnings.append(f"{box.placeholders} of {len(box.messages)} messages are placeholders "
                            f"(not fetched whole in the capture: header or nothing, filled to the size seen)")
    return box


def _exchanges(session) -> list[Exchange]:
    """The session's exchanges with their payloads (analyze_pcap drops POP3 data unless asked to keep it)."""
    events = parse_session(session.protocol, ((c.direction, c.data, c.t) for c in session.connection.chunks))
    return sorted((e for e in events if isinstance(e, Exchange)), key=lambda e: e.index)


def _plain_stream(session, direction: str) -> bytes:
    return b"".join(c.data for c in session.connection.chunks if c.direction == direction)


# ---- 3./4. rewriting the client's bytes --------------------------------------------------------------------
Edit = tuple[int, int, bytes]  # replace up[start:end] with bytes


def map_uid_set(text: str, uid_map: dict[int, int]) -> tuple[str, list[str]]:
    """Map an IMAP sequence set of captured UIDs to the new server's UIDs (module doc, step 4)."""
    if not uid_map:
        return text, []
    ordered = sorted(uid_map)
    top = ordered[-1]
    new_top = max(uid_map.values())
    warnings: list[str] = []

    def one(x: str) -> str:
        if x == "*" or not x.isdigit():
            return x
        u = int(x)
        if u in uid_map:
            return str(uid_map[u])
        if u > top:
            return str(new_top + 1)
        warnings.append(f"UID {u} is not a UID the capture showed; kept as it is")
        return x

    def rng(a: str, b: str) -> str:
        if a == "*" or b == "*" or not (a.isdigit() and b.isdigit()):
            lo = a if b == "*" else b
            if lo.isdigit():
                u = int(lo)
                inside = [x for x in ordered if x >= u]
                lo_new = str(uid_map[inside[0]]) if inside else str(new_top + 1)
                return f"{lo_new}:*" if b == "*" else f"*:{lo_new}"
            return f"{a}:{b}"
        lo, hi = sorted((int(a), int(b)))
        inside = [x for x in ordered if lo <= x <= hi]
        if not inside:
            if lo > top:
                return f"{new_top + 1}:{new_top + 1 + hi - lo}"
            warnings.append(f"UID range {a}:{b} holds no UID the capture showed; kept as it is")
            return f"{a}:{b}"
        return f"{uid_map[inside[0]]}:{uid_map[inside[-1]]}" if len(inside) > 1 or lo != hi else \
            str(uid_map[inside[0]])

    parts = []
    for item in text.split(","):
        a, sep, b = item.partition(":")
        parts.append(rng(a, b) if sep else one(a))
    out = ",".join(parts)
    return (text if out == text else out), warnings


_ATOM_SPECIALS = set(b'(){ %*"\\]') | set(range(0, 32)) | {127}
_UID_SET_COMMANDS = {"FETCH", "STORE", "COPY", "MOVE", "EXPUNGE"}


def _imap_astring(value: str, like: bytes) -> bytes:
    """``value`` written in the form of the captured token ``like`` (atom if possible, else quoted)."""
    raw = value.encode()
    if not like.startswith(b'"') and raw and not any(b in _ATOM_SPECIALS for b in raw):
        return raw
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


@dataclass
class _Tok:
    kind: str  # "atom" | "quoted" | "literal"
    start: int  # atom/quoted: the token; literal: the {n} marker
    end: int
    pstart: int = 0  # literal payload
    pend: int = 0
    plus: bytes = b""  # literal marker suffix: b"+" for LITERAL+
    tilde: bytes = b""


_CLIENT_LITERAL = re.compile(rb"(~?)\{(\d{1,20})(\+?)\}\r?\n\Z")


def _imap_command(up: bytes, pos: int) -> tuple[list[_Tok], int] | None:
    """Tokens of the command starting at ``pos`` (tag and verb included) and the offset after it."""
    toks: list[_Tok] = []
    n = len(up)
    while True:
        end = up.find(b"\n", pos)
        if end < 0:
            return None
        line_end = end + 1
        m = _CLIENT_LITERAL.search(up, pos, line_end)
        body_end = m.start() if m else (end - 1 if end > pos and up[end - 1:end] == b"\r" else end)
        i = pos
        while i < body_end:
            if up[i:i + 1] == b" ":
                i += 1
                continue
            if up[i:i + 1] == b'"':
                j = i + 1
                while j < body_end and up[j:j + 1] != b'"':
                    j += 2 if up[j:j + 1] == b"\\" else 1
                toks.append(_Tok("quoted", i, min(j + 1, body_end)))
                i = j + 1
            else:
                j = i
                while j < body_end and up[j:j + 1] != b" ":
                    j += 1
                toks.append(_Tok("atom", i, j))
                i = j
        if m is None:
            return toks, line_end
        size = int(m.group(2))
        toks.append(_Tok("literal", m.start(), m.end(), line_end, min(line_end + size, n), m.group(3), m.group(1)))
        pos = line_end + size
        if pos > n:
            return None


def _replace_astring(up: bytes, tok: _Tok, value: str, edits: list[Edit]) -> None:
    if tok.kind == "literal":
        raw = value.encode()
        edits.append((tok.start, tok.end, tok.tilde + b"{%d%s}" % (len(raw), tok.plus) +
                      up[tok.end - (2 if up[tok.end - 2:tok.end] == b"\r\n" else 1):tok.end]))
        edits.append((tok.pstart, tok.pend, raw))
    else:
        old = up[tok.start:tok.end]
        new = _imap_astring(value, old)
        if new != old:
            edits.append((tok.start, tok.end, new))


def _sasl_value(up: bytes, tok_or_span: tuple[int, int]) -> bytes | None:
    try:
        return base64.b64decode(up[tok_or_span[0]:tok_or_span[1]].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _plain_response(old: bytes | None, account: Account) -> bytes:
    parts = old.split(b"\0") if old is not None else []
    authz = b""
    if len(parts) == 3 and parts[0] and parts[0] == parts[1]:
        authz = account.user.encode()
    return base64.b64encode(authz + b"\0" + account.user.encode() + b"\0" + account.password.encode())


def _sasl_edit(up: bytes, start: int, end: int, mech: str, turn: int, account: Account,
               edits: list[Edit]) -> None:
    """Rewrite one SASL client response (base64) at up[start:end] for ``mech`` (turn 0, 1 ...)."""
    if up[start:end].strip() == b"*":
        return
    if mech == "PLAIN":
        new = _plain_response(_sasl_value(up, (start, end)), account)
    else:  # LOGIN: user, then password
        new = base64.b64encode((account.user if turn == 0 else account.password).encode())
    if new != up[start:end]:
        edits.append((start, end, new))


def _imap_rewrite(up: bytes, account: Account, uid_map: dict[int, int]) -> tuple[list[Edit], list[str]]:
    edits: list[Edit] = []
    warnings: list[str] = []
    pos, n = 0, len(up)
    sasl: tuple[str, int, int] | None = None  # (mechanism, next turn, turns left)
    while pos < n:
        if sasl is not None and sasl[2] > 0:
            end = up.find(b"\n", pos)
            if end < 0:
                break
            line = up[pos:end + 1].rstrip(b"\r\n")
            if b" " not in line:  # a SASL response line, not a tagged command
                _sasl_edit(up, pos, pos + len(line), sasl[0], sasl[1], account, edits)
                sasl = (sasl[0], sasl[1] + 1, sasl[2] - 1)
                pos = end + 1
                continue
            sasl = None
        parsed = _imap_command(up, pos)
        if parsed is None:
            break
        toks, nxt = parsed
        words = [up[t.start:t.end].decode("latin-1").upper() if t.kind == "atom" else "" for t in toks[:3]]
        verb = words[1] if len(words) > 1 else ""
        if verb == "LOGIN" and len(toks) >= 4:
            _replace_astring(up, toks[2], account.user, edits)
            _replace_astring(up, toks[3], account.password, edits)
        elif verb == "AUTHENTICATE" and len(toks) >= 3:
            mech = words[2] if len(words) > 2 else ""
            if mech not in ("PLAIN", "LOGIN"):
                warnings.append(f"AUTHENTICATE {mech}: this mechanism cannot be mapped to the new account; "
                                f"replayed as captured")
            elif len(toks) >= 4 and toks[3].kind == "atom":
                _sasl_edit(up, toks[3].start, toks[3].end, mech, 0, account, edits)
                sasl = (mech, 1, 1 if mech == "LOGIN" else 0)
            else:
                sasl = (mech, 0, 2 if mech == "LOGIN" else 1)
        elif verb == "UID" and len(toks) >= 4 and words[2] in _UID_SET_COMMANDS and toks[3].kind == "atom":
            old = up[toks[3].start:toks[3].end].decode("latin-1")
            new, w = map_uid_set(old, uid_map)
            warnings.extend(w)
            if new != old:
                edits.append((toks[3].start, toks[3].end, new.encode()))
        pos = nxt
    return edits, warnings


def _pop3_rewrite(up: bytes, account: Account) -> tuple[list[Edit], list[str]]:
    edits: list[Edit] = []
    warnings: list[str] = []
    pos, n = 0, len(up)
    sasl: tuple[str, int, int] | None = None
    while pos < n:
        end = up.find(b"\n", pos)
        if end < 0:
            break
        line = up[pos:end + 1].rstrip(b"\r\n")
        if sasl is not None and sasl[2] > 0:
            _sasl_edit(up, pos, pos + len(line), sasl[0], sasl[1], account, edits)
            sasl = (sasl[0], sasl[1] + 1, sasl[2] - 1) if line.strip() != b"*" else None
            pos = end + 1
            continue
        verb, _, rest = line.partition(b" ")
        verb_u = verb.upper()
        arg_start = pos + len(verb) + 1
        if verb_u == b"USER" and rest:
            if rest != account.user.encode():
                edits.append((arg_start, pos + len(line), account.user.encode()))
        elif verb_u == b"PASS" and rest:
            if rest != account.password.encode():
                edits.append((arg_start, pos + len(line), account.password.encode()))
        elif verb_u == b"APOP":
            warnings.append("APOP cannot be mapped to the new account (its digest covers the greeting); "
                            "replayed as captured")
        elif verb_u == b"AUTH" and rest:
            mech, _, initial = rest.partition(b" ")
            mech_s = mech.decode("latin-1").upper()
            if mech_s not in ("PLAIN", "LOGIN"):
                warnings.append(f"AUTH {mech_s}: this mechanism cannot be mapped to the new account; "
                                f"replayed as captured")
            elif initial:
                start = arg_start + len(mech) + 1
                if initial != b"=":
                    _sasl_edit(up, start, pos + len(line), mech_s, 0, account, edits)
                sasl = (mech_s, 1, 1 if mech_s == "LOGIN" else 0)
            else:
                sasl = (mech_s, 0, 2 if mech_s == "LOGIN" else 1)
        pos = end + 1
    return edits, warnings


def rewrite_client_stream(protocol: str, up: bytes, account: Account,
                          uid_map: dict[int, int] | None = None) -> tuple[list[Edit], list[str]]:
    """Edits (start, end, new bytes) that map credentials and UIDs in the client's byte stream ``up``."""
    if protocol == "imap":
        return _imap_rewrite(up, account, uid_map or {})
    return _pop3_rewrite(up, account)


# ---- 5. flights ---------------------------------------------------------------------------------------------
class _ImapProgress(ImapParser):
    """An IMAP parser that also counts continuation requests (``+ ...``) and completed exchanges."""

    def __init__(self) -> None:
        super().__init__()
        self.continuations = 0
        self.completed = 0

    def _finish_response(self, t_end: Any) -> None:
        if self._greeted and self._resp is not None and self._resp.first.startswith(b"+"):
            self.continuations += 1
        super()._finish_response(t_end)

    def _emit(self, event) -> None:
        if isinstance(event, Exchange):
            self.completed += 1
        super()._emit(event)

    def settled(self) -> bool:
        """Every command sent so far has its tagged status and no response is half read."""
        return not self._outstanding and self._resp is None and not self._down_literal and self._cur is None


class _Pop3Progress(Pop3Parser):
    """A POP3 parser that also counts SASL challenges (``+ ...``) and completed exchanges."""

    def __init__(self) -> None:
        super().__init__()
        self.continuations = 0
        self.completed = 0

    def _reply_line(self, seg) -> None:
        if self._greeted and self._fifo and _status_of(seg.data) is None and seg.data.startswith(b"+"):
            self.continuations += 1
        super()._reply_line(seg)

    def _emit(self, event) -> None:
        if isinstance(event, Exchange):
            self.completed += 1
        super()._emit(event)

    def settled(self) -> bool:
        """Every command sent so far has its complete reply."""
        return not self._fifo and self._multi is None


def _progress_parser(protocol: str):
    return _ImapProgress() if protocol == "imap" else _Pop3Progress()


@dataclass(frozen=True)
class Target:
    """How far the server had got when the client sent its next flight (or closed)."""

    greeted: bool
    completed: int  # exchanges complete
    continuations: int  # continuation requests / SASL challenges seen
    replied: bool  # the server sent bytes after this flight

    def reached(self, p) -> bool:
        """Whether the replay's parser ``p`` got as far; also True when the new server has answered every
        command sent (it answered differently from the original server: waiting longer would only time out)."""
        if self.greeted and p.greeting is None:
            return False
        if p.completed > self.completed:
            return True  # e.g. a refused literal or login: the exchange ended instead of a "+"
        if p.completed >= self.completed and p.continuations >= self.continuations:
            return True
        return p.greeting is not None and p.settled()


def _state(p, replied: bool) -> Target:
    return Target(p.greeting is not None, p.completed, p.continuations, replied)


@dataclass
class Flight:
    """One run of client bytes (offsets into the client stream) and where the server must get before the next."""

    start: int
    end: int
    target: Target
    data: bytes = b""  # after rewriting


def client_flights(session) -> tuple[Target, list[Flight]]:
    """The original session's flights and, before the first one, what the client waited for (the greeting)."""
    p = _progress_parser(session.protocol)
    flights: list[Flight] = []
    off = 0
    initial = Target(False, 0, 0, False)
    in_flight = False
    for c in session.connection.chunks:
        if not c.data:
            continue
        p.feed(c.direction, c.data, c.t)
        if c.direction == UP:
            if not in_flight:
                flights.append(Flight(off, off, Target(False, 0, 0, False)))
                in_flight = True
            off += len(c.data)
            flights[-1].end = off
            flights[-1].target = _state(p, False)
        else:
            in_flight = False
            if flights:
                flights[-1].target = _state(p, True)
            else:
                initial = _state(p, True)
    return initial, flights


def _apply(up: bytes, flights: list[Flight], edits: list[Edit]) -> None:
    """Cut the rewritten stream into the same flights (an edit belongs to the flight where it starts)."""
    edits = sorted(edits)
    k = 0
    cursor = 0
    for f in flights:
        pos = max(f.start, cursor)
        out = bytearray()
        while k < len(edits) and edits[k][0] < f.end:
            s, e, new = edits[k]
            if s >= pos:
                out += up[pos:s] + new
                pos = e
            k += 1
        if pos < f.end:
            out += up[pos:f.end]
        cursor = max(pos, f.end)
        f.data = bytes(out)


# ---- the replay itself ---------------------------------------------------------------------------------------
class _Stall(Exception):
    pass


def _pump(sock, p, target: Target, need_bytes: bool, timeout: float) -> bool:
    """Read until ``target`` is reached (True) or the server closes (False); _Stall on timeout."""
    got = 0
    deadline = time.monotonic() + timeout
    while not (target.reached(p) and (got or not need_bytes)):
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Stall()
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            raise _Stall() from None
        if not data:
            return False
        got += len(data)
        p.feed(DOWN, data)
    return True


def _read_to_close(sock, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return
    except OSError:
        return


def _run(host: str, port: int, protocol: str, initial: Target, flights: list[Flight], last_command: str,
         timeout: float, trace: Trace, warnings: list[str]) -> None:
    sock = traced_connection(host, port, timeout, trace)
    p = _progress_parser(protocol)
    k = -1  # the flight being replayed (-1: waiting for the greeting)
    try:
        try:
            if not _pump(sock, p, initial, initial.replied, timeout):
                warnings.append("the server closed the connection before the first flight")
                return
            for k, f in enumerate(flights):
                if not f.data:
                    continue
                sock.sendall(f.data)
                p.feed(UP, f.data)
                if not _pump(sock, p, f.target, f.target.replied, timeout):
                    if k < len(flights) - 1:
                        warnings.append(f"the server closed the connection after flight {k + 1} of "
                                        f"{len(flights)}; the rest was not replayed")
                    return
        except _Stall:
            where = f"flight {k + 1} of {len(flights)}" if k >= 0 else "the greeting"
            warnings.append(f"{where}: the server did not get as far as in the capture within {timeout:g} s; "
                            f"the rest was not replayed")
            return
        except OSError as exc:
            warnings.append(f"connection error during the replay: {exc}")
            return
        if last_command in ("LOGOUT", "QUIT"):
            _read_to_close(sock, CLOSE_TIMEOUT_S)
    finally:
        try:
            sock.close()
        except OSError:
            pass


@dataclass
class SessionReplay:
    """One session's original numbers beside its replay's (``replayed`` is None when it could not run)."""

    index: int
    protocol: str
    server: str
    original: dict
    replayed: dict | None
    warnings: list[str] = field(default_factory=list)
    messages: int = 0  # in the rebuilt mailbox
    placeholders: int = 0
    messages_checked: int = 0  # whole messages fetched whole in the replay, compared byte for byte
    messages_matched: int = 0
    exchanges: list[Exchange] = field(default_factory=list)  # the replay's, in the order sent
    trace: Trace | None = None

    def to_dict(self) -> dict:
        return {"index": self.index, "protocol": self.protocol, "server": self.server,
                "original": self.original, "replayed": self.replayed, "messages": self.messages,
                "placeholders": self.placeholders, "messages_checked": self.messages_checked,
                "messages_matched": self.messages_matched, "warnings": list(self.warnings)}


def _metrics_of(m: dict) -> dict:
    return {k: m.get(k) for k in METRIC_KEYS}


def _is_encrypted(session) -> str | None:
    for e in session.events:
        if isinstance(e, Encrypted):
            return e.reason
    if getattr(session, "encrypted", False):
        return "the session is encrypted"
    return None


def _check_messages(protocol: str, box: Mailbox, trace: Trace, exchanges: list[Exchange]) -> tuple[int, int]:
    checked = matched = 0
    if protocol == "imap":
        seen, _, _ = imap_fetched(trace.stream(DOWN))
        for seq, s in seen.items():
            if not (1 <= seq <= len(box.messages)) or not box.whole[seq - 1]:
                continue
            data = s.whole if s.whole is not None else (
                s.header + s.text if s.header is not None and s.text is not None else None)
            if data is None:
                continue
            checked += 1
            matched += data == box.messages[seq - 1]
    else:
        for e in exchanges:
            args = e.arguments.split()
            if e.command == "RETR" and e.ok and args and args[0].isdigit():
                n = int(args[0])
                if 1 <= n <= len(box.messages) and box.whole[n - 1]:
                    checked += 1
                    matched += e.data == box.messages[n - 1]
    return checked, matched


def replay_session(session, server: str = "embedded", timeout: float = DEFAULT_TIMEOUT_S) -> SessionReplay:
    """Replay one analysed session (a ``SessionAnalysis``) on a fresh server of kind ``server``.

    Raises ``ServerError`` when the server cannot start; everything the session itself does wrong is a warning.
    """
    original = _metrics_of(session.metrics)
    result = SessionReplay(session.index, session.protocol, server, original, None,
                           warnings=list(getattr(session, "warnings", []))[:5])
    why = _is_encrypted(session)
    if why:
        result.warnings.append(f"cannot be replayed: encrypted or compressed ({why})")
        return result
    initial, flights = client_flights(session)
    if not flights:
        result.warnings.append("cannot be replayed: the client sent nothing")
        return result
    box = rebuild_mailbox(session)
    result.warnings.extend(box.warnings)
    result.messages, result.placeholders = len(box.messages), box.placeholders
    srv = make_server(server)
    account = srv.account
    up = _plain_stream(session, UP)
    edits, w = rewrite_client_stream(session.protocol, up, account, box.uid_map())
    result.warnings.extend(dict.fromkeys(w))  # once each
    _apply(up, flights, edits)
    exchanges = _exchanges(session)
    last = exchanges[-1].command if exchanges else ""
    srv.mailboxes[account.user] = list(box.messages)
    trace = Trace()
    with srv:
        port = srv.imap_port if session.protocol == "imap" else srv.pop3_port
        _run(srv.host, port, session.protocol, initial, flights, last, timeout, trace, result.warnings)
    events = parse_session(session.protocol, trace.chunks)
    replayed = sorted((e for e in events if isinstance(e, Exchange)), key=lambda e: e.index)
    metrics = session_metrics([(c.direction, len(c.data), c.t_ns) for c in trace.chunks], replayed,
                              t_start=trace.t_connect_ns, time_scale=1e-9)
    result.replayed = _metrics_of(metrics)
    result.exchanges, result.trace = replayed, trace
    if len(replayed) != len(exchanges):
        result.warnings.append(f"{len(exchanges)} commands in the capture, {len(replayed)} in the replay")
    for o, r in zip(exchanges, replayed):
        if o.status != r.status:
            result.warnings.append(f"command {o.index} {o.command}: {o.status} in the capture, "
                                   f"{r.status} in the replay")
    result.messages_checked, result.messages_matched = _check_messages(session.protocol, box, trace, replayed)
    if result.messages_matched != result.messages_checked:
        result.warnings.append(f"{result.messages_checked - result.messages_matched} of "
                               f"{result.messages_checked} messages came back different from the mailbox")
    return result


@dataclass
class ReplayReport:
    file: str
    sessions: list[SessionReplay]

    def to_dict(self) -> dict:
        return {"file": self.file, "sessions": [s.to_dict() for s in self.sessions]}


def replay_pcap(path: str, server: str = "embedded", session: int | None = None,
                timeout: float = DEFAULT_TIMEOUT_S) -> ReplayReport:
    """Analyse ``path`` and replay each mail session (or only session ``session``) on ``server``.

    Raises ``PcapError`` for an unreadable file and :class:`ReplayError` when there is no mail session to
    replay (or no session with that index).
    """
    from .analyze import analyze_pcap

    if server not in SERVER_KINDS:
        raise ReplayError(f"unknown server {server!r}; choose one of {', '.join(SERVER_KINDS)}")
    analysis = analyze_pcap(path)
    sessions = list(analysis.sessions)
    if not sessions:
        raise ReplayError(f"{path}: no IMAP or POP3 session found")
    if session is not None:
        chosen = [s for s in sessions if s.index == session]
        if not chosen:
            have = ", ".join(str(s.index) for s in sessions)
            raise ReplayError(f"{path}: no mail session {session} (sessions: {have})")
        sessions = chosen
    results = []
    for s in sessions:
        try:
            results.append(replay_session(s, server, timeout))
        except ServerError:
            raise
        except Exception as exc:  # noqa: BLE001 - one odd session must not hide the others' results
            failed = SessionReplay(s.index, s.protocol, server, _metrics_of(s.metrics), None)
            failed.warnings.append(f"replay failed: {type(exc).__name__}: {exc}")
            results.append(failed)
    return ReplayReport(str(path), results)
