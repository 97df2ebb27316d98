"""Steps 3 and 4 of a replay: the edits to the client's captured byte stream that map its credentials to the
new server's account (IMAP ``LOGIN``/``AUTHENTICATE``, POP3 ``USER``/``PASS``/``AUTH``) and its UID sets
to the new UIDs.

Why a module of its own: it only reads client bytes and returns ``(start, end, new bytes)`` edits; cutting
the edited stream into flights and sending it are other steps.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from mailstudy.offline.replay.uids import map_uid_set
from mailstudy.servers.base import Account

Edit = tuple[int, int, bytes]  # replace up[start:end] with bytes


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
