"""IMAP server responses as values and typed FETCH data (steps 2 and 3 of 3 after :mod:`.imap_lexer`).

Why a module of its own: rebuilding a mailbox from a capture and checking a replay's messages both need what an
untagged ``FETCH`` carried (UID, size, message data), and the parser needs a FETCH's UID to charge it to the
command that asked for it. One reader serves all three, built on the one lexer. Pure: bytes in, values out.

* :func:`split_responses` cuts a server stream into responses, each with the literal payloads it carries
  (a literal marker ends a line; its payload follows; the response ends at the first line end outside one).
* :func:`values` turns tokens into Python values: a parenthesized list is a list, a quoted string or literal is
  bytes, ``NIL`` is None, a number is an int, any other atom is bytes.
* :func:`parse_fetch` reads ``* n FETCH (NAME value ...)`` into a :class:`Fetch`; item names are upper-cased
  and keep their section and origin (``BODY[HEADER.FIELDS (FROM)]<0>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from mailstudy.protocol.imap_lexer import Token, lex, literal_marker


class Response(NamedTuple):
    """One server response: its lines joined (literal markers kept, payloads left out) and the payloads."""

    text: bytes
    literals: list[bytes]


def split_responses(down: bytes) -> Iterator[Response]:
    """Every response of a server stream, in order. A response cut off by the end of the stream inside a literal
    comes with what the stream has of it (a capture cut short still shows the start of a message); a last line
    without its line end is left out."""
    pos, n = 0, len(down)
    while pos < n:
        end = down.find(b"\n", pos)
        if end < 0:
            return
        text, lits = bytearray(), []
        while True:
            line = down[pos:end + 1]
            pos = end + 1
            text += line
            m = literal_marker(line) if text[:1] == b"*" else None  # only untagged responses carry literals
            if m is None:
                break
            size = int(m.group(2))
            lits.append(down[pos:pos + size])
            pos += size
            end = down.find(b"\n", pos)
            if end < 0:
                end = n - 1
        yield Response(bytes(text), lits)


def values(tokens: list[Token], literals: list[bytes]) -> list[Any]:
    """Tokens as nested values (see the module doc); literals are taken from ``literals`` in order."""
    stack: list[list[Any]] = [[]]
    k = 0
    for t in tokens:
        kind = t.kind
        if kind == "(":
            stack.append([])
        elif kind == ")":
            if len(stack) > 1:
                done = stack.pop()
                stack[-1].append(done)
        elif kind == "quoted":
            stack[-1].append(t.value)
        elif kind == "literal":
            stack[-1].append(literals[k] if k < len(literals) else b"")
            k += 1
        elif t.value.isdigit():
            stack[-1].append(int(t.value))
        else:
            stack[-1].append(None if t.value.upper() == b"NIL" else t.value)
    while len(stack) > 1:  # unclosed lists close at the end
        done = stack.pop()
        stack[-1].append(done)
    return stack[0]


@dataclass(frozen=True)
class Fetch:
    """The data of one untagged FETCH response: its sequence number and items by upper-case name."""

    seq: int
    items: dict[str, Any]

    @property
    def uid(self) -> int | None:
        v = self.items.get("UID")
        return v if isinstance(v, int) else None

    @property
    def size(self) -> int | None:
        v = self.items.get("RFC822.SIZE")
        return v if isinstance(v, int) else None


def parse_fetch(resp: Response) -> Fetch | None:
    """``* n FETCH (...)`` as a :class:`Fetch`; None for any other response."""
    head = resp.text[:40].split(b" ", 3)
    if len(head) < 3 or head[0] != b"*" or not head[1].isdigit() or head[2].upper() != b"FETCH":
        return None
    vals = values(lex(resp.text, 0, None, structure=True), resp.literals)
    items: dict[str, Any] = {}
    attrs = vals[3] if len(vals) > 3 and isinstance(vals[3], list) else []
    for i in range(0, len(attrs) - 1, 2):
        name = attrs[i]
        if isinstance(name, bytes):
            items[name.decode("ascii", "replace").upper()] = attrs[i + 1]
    return Fetch(int(head[1]), items)


def untagged_number(resp: Response, name: bytes) -> int | None:
    """n of ``* n NAME`` (``EXISTS``, ``RECENT``, ``EXPUNGE``), else None."""
    parts = resp.text.rstrip(b"\r\n").split(b" ")
    if len(parts) == 3 and parts[0] == b"*" and parts[1].isdigit() and parts[2].upper() == name:
        return int(parts[1])
    return None
