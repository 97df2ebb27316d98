"""Which protocol a TCP connection speaks: IMAP, POP3, JMAP or not mail, by its server port and its greeting.

Why a module of its own: analysis and redaction must agree on which connections are mail (a redaction that
took Redis's ``+OK`` for a POP3 greeting once overwrote 100 bytes of a Redis capture that the analysis said
held no mail session). One classifier, pure: it is handed the port and the connection's first bytes.

The rules (the first that applies wins):

1. The server port is 143 or 993 (IMAP) or 110 or 995 (POP3). If the server's first line clearly says the
   other protocol, the greeting wins (with a reason).
2. The server port is one the caller named (``ports``): the protocol is told by the server's first line (an
   HTTP status line answering a client that spoke first with an HTTP request is JMAP: issue 20).
3. Any other port: the *server speaks first* and its first line starts ``* OK``/``* PREAUTH`` (IMAP) or
   ``+OK`` (POP3). The "server first" condition is what keeps Redis (whose replies are ``+OK`` too, but only
   after the client spoke) out.

Everything else is not mail.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mailstudy.protocol.events import DOWN, UP
from mailstudy.protocol.jmap import looks_like_http

WELL_KNOWN_PORTS = {143: "imap", 993: "imap", 110: "pop3", 995: "pop3"}
IMPLICIT_TLS_PORTS = (993, 995)
FIRST_LINE_MAX = 4096  # bytes of the server's first line looked at to recognise a greeting


def first_payload(chunks: Iterable[tuple[str, Any, bytes]]) -> tuple[str | None, bytes, bytes]:
    """(direction of the first payload chunk, start of the down stream, start of the up stream) of
    ``(direction, t, data)`` chunks in the order they became readable."""
    first = None
    down = bytearray()
    up = bytearray()
    for direction, _t, data in chunks:
        if first is None:
            first = direction
        if direction == DOWN:
            if len(down) < FIRST_LINE_MAX and b"\n" not in down:
                down += data[:FIRST_LINE_MAX]
        elif len(up) < 2:
            up += data[:2]
        if (b"\n" in down or len(down) >= FIRST_LINE_MAX) and len(up) >= 2:
            break
    return first, bytes(down), bytes(up)


def greeting_protocol(down: bytes) -> str | None:
    """"imap" or "pop3" when the server's first line is that protocol's greeting, else None."""
    line = down.split(b"\n", 1)[0]
    if line[:9].upper().startswith((b"* OK", b"* PREAUTH")):
        return "imap"
    if line[:3].upper() == b"+OK":
        return "pop3"
    return None


def is_tls(start: bytes) -> bool:
    """Whether a stream starts with a TLS record header."""
    return start[:2] == b"\x16\x03"


def classify(port: int, chunks: Iterable[tuple[str, Any, bytes]], ports: Iterable[int] = ()) -> tuple[str | None, str]:
    """The protocol of a connection to server ``port`` whose ``(direction, t, data)`` chunks are ``chunks``:
    ``"imap"``, ``"pop3"``, ``"jmap"`` or None, and why (empty when there is nothing to say), by the rules above."""
    first, down, up = first_payload(chunks)
    by_greeting = greeting_protocol(down) if first == DOWN or port in WELL_KNOWN_PORTS else None
    tls = is_tls(down) or is_tls(up)
    if port in WELL_KNOWN_PORTS:
        proto = WELL_KNOWN_PORTS[port]
        if by_greeting and by_greeting != proto and not tls:
            return by_greeting, f"port {port} is {proto}, but the server's first line is {by_greeting}"
        return proto, ""
    if port in set(ports):
        if by_greeting:
            return by_greeting, ""
        if first == UP and looks_like_http(up, down):
            return "jmap", ""
        if tls:
            return None, f"port {port}: TLS from the start, so the protocol cannot be told from a greeting"
        return None, f"port {port}: the server's first line is not an IMAP or POP3 greeting"
    if first == DOWN and by_greeting:
        return by_greeting, ""
    return None, ""
