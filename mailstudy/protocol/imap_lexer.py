"""The IMAP lexer: bytes of IMAP syntax become tokens that know where they sit (step 1 of 3, as imapclient
splits ``response_lexer`` / ``response_parser`` / ``response_types``).

Why a module of its own: the parser's credential spans, the replay's rewrite of LOGIN arguments and the FETCH
reader all need the same answer to "where does this atom, quoted string or literal start and end"; before this
module there were four hand-written answers that disagreed at the edges. Pure: bytes in, tokens out.

Rules (RFC 9051 section 4):

* Tokens are separated by spaces (a tab too, to be lenient with hand-typed sessions) and line ends.
* A quoted string runs from ``"`` to the next unescaped ``"``; a backslash escapes the next byte. An unclosed
  quote runs to the end of the text.
* A literal marker is ``{n}``, ``{n+}`` (LITERAL+) or ``~{n}`` (literal8) at the end of a line, just before its
  line end: :data:`LITERAL` is the one regular expression for it in mailstudy.
* In ``structure`` mode (server responses) ``(`` and ``)`` are tokens of their own and an atom may hold a
  bracketed section with spaces and parentheses in it (``BODY[HEADER.FIELDS (FROM)]<0>``), as imapclient's
  lexer does. Without it (client arguments: LOGIN, AUTHENTICATE) only spaces separate, so a password holding a
  parenthesis is still one token.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: A literal marker, which ends a line (before its line end, or at the end of the text): group 1 ``~``
#: (literal8), group 2 the size, group 3 ``+`` (LITERAL+).
LITERAL = re.compile(rb"(~?)\{(\d{1,20})(\+?)\}(?:\r?\n|\Z)")
_SPACE = b" \t\r\n"


class Token(NamedTuple):
    """One token of a line: ``kind`` is ``"atom"``, ``"quoted"``, ``"literal"``, ``"("`` or ``")"``.

    ``start``/``end`` are offsets in the text handed to :func:`lex`: the whole atom, the quoted string with its
    quotes, the literal marker (``~{n+}``, without the line end). ``value``: the atom's bytes, the quoted
    string's content unescaped, the literal's size as digits. ``closed`` is False for a quoted string whose
    closing quote never came.
    """

    kind: str
    start: int
    end: int
    value: bytes
    closed: bool = True

    @property
    def inner(self) -> tuple[int, int]:
        """The bytes a quoted string holds (between its quotes, escapes included); the token itself otherwise."""
        if self.kind == "quoted":
            return self.start + 1, max(self.start + 1, self.end - 1 if self.closed else self.end)
        return self.start, self.end


def literal_marker(line: bytes) -> re.Match | None:
    """The literal marker ending ``line`` (a line with its line end), or None.

    The same match as ``LITERAL.search(line)``, found faster: a marker ends the line, so its ``{`` is the line's
    last one (unless a newline comes before the end: then the search itself)."""
    if b"}" not in line[-4:]:
        return None
    i = line.rfind(b"{")
    if i < 0 or line.find(b"\n", 0, len(line) - 1) >= 0:
        return LITERAL.search(line) if i >= 0 else None
    return LITERAL.match(line, i - 1 if i and line[i - 1] == 0x7E else i)


def lex(data: bytes, pos: int = 0, end: int | None = None, structure: bool = False) -> list[Token]:
    """The tokens of ``data[pos:end]`` (see the module doc for the rules)."""
    end = len(data) if end is None else end
    out: list[Token] = []
    while pos < end:
        c = data[pos]
        if c in _SPACE:
            pos += 1
            continue
        if c == 0x22:  # '"'
            j, value = pos + 1, bytearray()
            while j < end and data[j] != 0x22:
                if data[j] == 0x5C and j + 1 < end:  # backslash escapes the next byte
                    j += 1
                value.append(data[j])
                j += 1
            closed = j < end
            out.append(Token("quoted", pos, j + 1 if closed else end, bytes(value), closed))
            pos = j + 1
            continue
        if structure and c in (0x28, 0x29):  # ( )
            out.append(Token(chr(c), pos, pos + 1, bytes((c,))))
            pos += 1
            continue
        m = LITERAL.match(data, pos, end) if c in (0x7B, 0x7E) else None  # { ~
        if m is not None:
            out.append(Token("literal", pos, m.end(3) + 1, m.group(2)))
            pos = m.end()
            continue
        j, depth = pos, 0
        while j < end:
            b = data[j]
            if depth:
                depth += (b == 0x5B) - (b == 0x5D)
            elif b in _SPACE or (structure and b in (0x28, 0x29)):
                break
            elif structure and b == 0x5B:  # [
                depth = 1
            j += 1
        out.append(Token("atom", pos, j, data[pos:j]))
        pos = j
    return out
