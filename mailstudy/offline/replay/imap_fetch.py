"""What an IMAP server's byte stream carried: per sequence number the UID, ``RFC822.SIZE`` and message data of
its untagged ``FETCH`` responses, and the first ``EXISTS``/``RECENT`` counts.

Why a module of its own: both rebuilding the mailbox from the capture and checking the replay's fetched
messages against it read server streams this way; the literal-aware response splitter and the ``FETCH``
item reader are the only server-side IMAP parsing the replay needs beyond the sans-IO parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

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
