"""Steps 3 and 4 of a replay: the edits to the client's captured byte stream that map its credentials to the
new server's account (IMAP ``LOGIN``/``AUTHENTICATE``, POP3 ``USER``/``PASS``/``AUTH``) and its UID sets
to the new UIDs.

Why a module of its own: it only turns the parser's spans (where each credential and UID set sits in the client
stream) into ``(start, end, new bytes)`` edits; cutting the edited stream into flights and sending it are other
steps. It keeps no protocol state of its own: which line is a SASL response is the parser's answer, so a replay
rewrites exactly the bytes a redaction overwrites.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from mailstudy.offline.replay.uids import map_uid_set
from mailstudy.protocol import feed_all, make_parser
from mailstudy.protocol.events import Span
from mailstudy.servers.base import Account
from mailstudy.wire import UP, Chunk

Edit = tuple[int, int, bytes]  # replace up[start:end] with bytes

_ATOM_SPECIALS = set(b'(){ %*"\\]') | set(range(0, 32)) | {127}
_MAPPABLE = ("PLAIN", "LOGIN")


def _imap_astring(value: str, like: bytes) -> bytes:
    """``value`` written in the form of the captured token ``like`` (atom if possible, else quoted)."""
    raw = value.encode()
    if not like.startswith(b'"') and raw and not any(b in _ATOM_SPECIALS for b in raw):
        return raw
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _replace_astring(up: bytes, span: Span, value: str, edits: list[Edit]) -> None:
    """A LOGIN argument in the form it was sent: a literal keeps its marker's form (``~``, ``+``), an atom or
    a quoted string becomes an atom when it can (else a quoted string)."""
    if span.form == "literal" and span.marker is not None:
        raw = value.encode()
        a, b = span.marker
        old = up[a:b]
        tilde = b"~" if old.startswith(b"~") else b""
        edits.append((a, b, tilde + b"{%d%s}" % (len(raw), b"+" if old.endswith(b"+}") else b"")))
        edits.append((span.start, min(span.end, len(up)), raw))
        return
    a, b = span.start, span.end
    if span.form == "quoted":  # the span is the inside: the token has its quotes
        a -= 1
        b += up[b:b + 1] == b'"'
    old = up[a:b]
    new = _imap_astring(value, old)
    if new != old:
        edits.append((a, b, new))


def _sasl_value(raw: bytes) -> bytes | None:
    try:
        return base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _plain_response(old: bytes | None, account: Account) -> bytes:
    parts = old.split(b"\0") if old is not None else []
    authz = b""
    if len(parts) == 3 and parts[0] and parts[0] == parts[1]:
        authz = account.user.encode()
    return base64.b64encode(authz + b"\0" + account.user.encode() + b"\0" + account.password.encode())


def _sasl_edit(up: bytes, span: Span, account: Account, edits: list[Edit]) -> None:
    """Rewrite one SASL client response (base64): PLAIN's whole response, LOGIN's user (turn 0) or password."""
    old = up[span.start:span.end]
    if span.mechanism == "PLAIN":
        new = _plain_response(_sasl_value(old), account)
    else:
        new = base64.b64encode((account.user if span.turn == 0 else account.password).encode())
    if new != old:
        edits.append((span.start, span.end, new))


def _spans(protocol: str, chunks: Iterable) -> tuple[bytes, list[Span]]:
    """The client stream and the parser's spans (credentials and UID sets) of a session's chunks."""
    parts = [(c.direction, c.data) if c.__class__ is Chunk else (c[0], c[1]) for c in chunks]
    parser = make_parser(protocol)
    parser.keep_payloads = False
    parser.spans = True
    events = feed_all(parser, parts)
    return b"".join(d for k, d in parts if k == UP), [e for e in events if e.__class__ is Span]


def rewrite_client_stream(protocol: str, chunks: Iterable, account: Account,
                          uid_map: dict[int, int] | None = None) -> tuple[list[Edit], list[str]]:
    """Edits (start, end, new bytes) to the client stream of a session (``chunks``: ``StreamChunk``s or
    ``(direction, data)`` pairs, both directions in order) that map its credentials to ``account`` and its UID
    sets through ``uid_map``. Which bytes are a credential is the parser's answer (its spans), the same one
    redaction uses. Returns the edits and warnings (a credential that cannot be mapped is replayed as sent)."""
    up, spans = _spans(protocol, chunks)
    edits: list[Edit] = []
    warnings: list[str] = []
    for span in spans:
        kind = span.kind
        if kind in ("imap-login-user", "imap-login-password"):
            _replace_astring(up, span, account.user if kind == "imap-login-user" else account.password, edits)
        elif kind in ("pop3-user", "pop3-pass"):
            new = (account.user if kind == "pop3-user" else account.password).encode()
            if up[span.start:span.end] != new:
                edits.append((span.start, span.end, new))
        elif kind == "pop3-apop":
            warnings.append("APOP cannot be mapped to the new account (its digest covers the greeting); "
                            "replayed as captured")
        elif kind == "uid-set":
            old = up[span.start:span.end].decode("latin-1")
            new, w = map_uid_set(old, uid_map or {})
            warnings.extend(w)
            if new != old:
                edits.append((span.start, span.end, new.encode()))
        elif span.mechanism not in _MAPPABLE:
            command = "AUTHENTICATE" if protocol == "imap" else "AUTH"
            warnings.append(f"{command} {span.mechanism}: this mechanism cannot be mapped to the new account; "
                            f"replayed as captured")
        else:  # a SASL initial or later response
            _sasl_edit(up, span, account, edits)
    return edits, warnings
