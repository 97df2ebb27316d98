"""The captured session as the replay steps read it: its plain byte stream per direction and its exchanges.

Why a module of its own: the mailbox, the rewriting and the session driver all start from these two views
of the capture, and the exchanges must be re-parsed with payloads (``analyze_pcap`` drops POP3 data).
"""

from __future__ import annotations

from mailstudy.protocol import parse_session
from mailstudy.protocol.events import Exchange


def captured_exchanges(session) -> list[Exchange]:
    """The session's exchanges with their payloads (analyze_pcap drops POP3 data unless asked to keep it)."""
    events = parse_session(session.protocol, session.connection.chunks)
    return exchanges_in_order(events)


def exchanges_in_order(events) -> list[Exchange]:
    """The exchanges among a parser's ``events`` in the order they were sent (the parser gives them as they
    completed); the captured session's and the replay's are compared in this order."""
    return sorted((e for e in events if isinstance(e, Exchange)), key=lambda e: e.index)


def plain_stream(session, direction: str) -> bytes:
    """The captured session's bytes one way (``UP`` or ``DOWN``), joined in order."""
    return b"".join(c.data for c in session.connection.chunks if c.direction == direction)
