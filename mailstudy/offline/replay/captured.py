"""The captured session as the replay steps read it: its plain byte stream per direction and its exchanges.

Why a module of its own: the mailbox, the rewriting and the session driver all start from these two views
of the capture, and the exchanges must be re-parsed with payloads (``analyze_pcap`` drops POP3 data).
"""

from __future__ import annotations

from mailstudy.protocol import parse_session
from mailstudy.protocol.events import Exchange


def _exchanges(session) -> list[Exchange]:
    """The session's exchanges with their payloads (analyze_pcap drops POP3 data unless asked to keep it)."""
    events = parse_session(session.protocol, ((c.direction, c.data, c.t) for c in session.connection.chunks))
    return sorted((e for e in events if isinstance(e, Exchange)), key=lambda e: e.index)


def _plain_stream(session, direction: str) -> bytes:
    return b"".join(c.data for c in session.connection.chunks if c.direction == direction)
