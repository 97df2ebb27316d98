"""Where a message's header ends, and the form a POP3 client gets a message back in: defined once.

Why a module of its own: the header is what header-first access lists (IMAP ``BODY[HEADER]``, POP3 ``TOP n 0``),
so the corpus, the client's integrity check and our POP3 server must agree on it byte for byte. Three
definitions that disagreed made a message with no header fail header-first (issue 10). The rule is RFC 5322's,
checked against Dovecot 2.3 and pymap:

- the header section runs up to and including the first empty line: ``b"A: 1\\r\\n\\r\\nbody"`` -> ``b"A: 1\\r\\n\\r\\n"``;
- a message that starts with an empty line has an empty header section: its header is that line, ``b"\\r\\n"``;
- a message with no empty line is all header (the header ends at the end of the message); an empty message has
  an empty header.

POP3 adds one more rule (RFC 1939 section 3): multi-line data always ends with CRLF before the ``.`` line, so a
message (or header) that does not end with CRLF comes back with one added; both Dovecot and our server do so,
an empty message included (it comes back as one empty line).
"""

from __future__ import annotations

__all__ = ["CRLF", "header_end", "header_of", "pop3_form"]

CRLF = b"\r\n"
_BLANK_LINE = b"\r\n\r\n"


def header_end(raw: bytes) -> int:
    """Offset just past the empty line that ends the header section (``len(raw)`` when there is none)."""
    if raw.startswith(CRLF):
        return 2
    i = raw.find(_BLANK_LINE)
    return len(raw) if i < 0 else i + 4


def header_of(raw: bytes) -> bytes:
    """The header section with the empty line that ends it: what ``BODY[HEADER]`` returns."""
    return raw[:header_end(raw)]


def pop3_form(data: bytes) -> bytes:
    """``data`` as a POP3 client reassembles it from multi-line data (un-stuffed): CRLF-terminated."""
    return data if data.endswith(CRLF) else data + CRLF
