"""Sans-IO protocol parsers: the one place where bytes become greetings, exchanges and switches to TLS.

Why: a live socket trace and a reassembled pcap must give the same exchanges, so both go through these parsers
(``ImapParser``, ``Pop3Parser``: ``feed(direction, data, t)``, ``next_event()``, ``events()``, ``close()``).
``parse_session`` is the one-call form for a whole recorded session; it takes :class:`mailstudy.wire.Chunk`
objects or tuples in Chunk's field order, ``(direction, t, data)`` (:func:`mailstudy.wire.chunk_parts`).

They are the only holders of IMAP and POP3 state: redaction and replay read their events (credential spans with
absolute client-stream offsets, :class:`~mailstudy.protocol.events.Span`) and their public progress
(``progress()``), and keep no scanner of their own. :mod:`.imap_lexer` and :mod:`.imap_response` are the one IMAP
tokenizer and FETCH reader; :mod:`.classify` tells IMAP, POP3 and not-mail apart for analysis and redaction.

Where the compiled parsers are built (``mailstudy/protocol/_parsers_c.pyx``, an editable install with Cython and
a C compiler), ``ImapParser``, ``Pop3Parser`` and :data:`PARSERS` here are they: subclasses of the pure ones
whose hot loops run in C, with the same events to the byte (tests/test_compiled_parsers.py). The pure modules
stay the reference, in :data:`REFERENCE_PARSERS`, and ``MAILSTUDY_PURE=1`` hands them out instead.

Which exchange a server byte belongs to (docs/design.md, "Words": an exchange is a command with its complete response):
a tagged status line, a continuation request and a POP3 reply go to the command they answer (tag, waiting
command, FIFO order). An untagged IMAP response goes to the command it answers: an untagged ``FETCH`` to the
oldest in-flight FETCH/STORE whose UID set (UID commands, by the response's ``UID`` item) or sequence set holds
it, so that 30 pipelined ``UID FETCH n (BODY.PEEK[])`` each get their own message; any other untagged response,
and a FETCH that no in-flight set holds, to the oldest in-flight command.
"""

from __future__ import annotations

from typing import Any, Iterable

from mailstudy.protocol.events import (
    DOWN,
    UP,
    Compressed,
    Encrypted,
    Event,
    Exchange,
    Greeting,
    ParseWarning,
    Progress,
    Span,
    TlsCounts,
)
from mailstudy.compiled import compiled_module
from mailstudy.protocol.imap import ImapParser
from mailstudy.protocol.jmap import JmapParser
from mailstudy.protocol.pop3 import Pop3Parser
from mailstudy.wire import chunk_parts

#: the pure-Python parsers: the reference that the compiled ones must equal exactly (tests/test_compiled_parsers.py)
REFERENCE_PARSERS = {"imap": ImapParser, "pop3": Pop3Parser, "jmap": JmapParser}
_compiled = compiled_module("mailstudy.protocol._parsers_c")
if _compiled is not None:  # built in place by setup.py (Cython and a C compiler), and MAILSTUDY_PURE is not set
    ImapParser, Pop3Parser = _compiled.ImapParser, _compiled.Pop3Parser  # the same parsers, hot loops in C
PARSERS = {"imap": ImapParser, "pop3": Pop3Parser, "jmap": JmapParser}  # jmap: HTTP/1.1 exchanges (issue 20)

__all__ = [
    "DOWN",
    "UP",
    "Compressed",
    "Encrypted",
    "Event",
    "Exchange",
    "Greeting",
    "ImapParser",
    "JmapParser",
    "PARSERS",
    "REFERENCE_PARSERS",
    "ParseWarning",
    "Pop3Parser",
    "Progress",
    "Span",
    "TlsCounts",
    "feed_all",
    "make_parser",
    "parse_session",
]


def make_parser(protocol: str) -> ImapParser | Pop3Parser | JmapParser:
    """A fresh parser for ``"imap"``, ``"pop3"`` or ``"jmap"``."""
    try:
        return PARSERS[protocol.lower()]()
    except (KeyError, AttributeError):
        raise ValueError(f"unknown protocol {protocol!r}: expected one of {sorted(PARSERS)}") from None


def feed_all(parser: ImapParser | Pop3Parser, chunks: Iterable[Any], t_close: Any = None) -> list[Event]:
    """Feed every chunk (a ``wire.Chunk``, a ``(direction, t, data)`` tuple in Chunk's field order or a
    ``(direction, data)`` pair) to ``parser``, close it and return all its events."""
    last_t = t_close
    for chunk in chunks:
        direction, t, data = chunk_parts(chunk)
        parser.feed(direction, data, t)
        last_t = t
    parser.close(t_close if t_close is not None else last_t)
    return parser.events()


def parse_session(protocol: str, chunks: Iterable[Any], decrypted: bool = False, inflated: bool = False) -> list[Event]:
    """Parse a whole session: ``chunks`` are ``wire.Chunk`` objects or ``(direction, t, data)`` tuples in order.

    Exchanges come in the order they completed; sort by ``index`` for the order they were sent. ``decrypted``:
    the chunks are the plaintext inside TLS (a live trace), so parsing goes on after STARTTLS/STLS; ``inflated``:
    the chunks are the protocol's bytes inside COMPRESS=DEFLATE (a live trace), so parsing goes on after it.
    """
    parser = make_parser(protocol)
    parser.decrypted = decrypted
    parser.inflated = inflated
    return feed_all(parser, chunks)
