"""Helpers the IMAP and POP3 parser tests share: feed chunks, pick events, check the byte accounting, re-chunk.

Why a module: both parsers follow the same sans-IO contract (``feed``/``close``/``events``, exchanges that add up
to what was fed), so the tests of both check it with the same code; it was written twice before.
"""

from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

from mailstudy.protocol import Encrypted, Exchange, Greeting, ParseWarning


def feed(chunks, parser):
    """Feed ``(direction, data)`` chunks to ``parser`` (chunk i at time i), close it; returns (parser, events)."""
    for i, (direction, data) in enumerate(chunks):
        parser.feed(direction, data, i)
    parser.close(len(chunks))
    return parser, parser.events()


def exchanges(events):
    return sorted((e for e in events if isinstance(e, Exchange)), key=lambda e: e.index)


def warnings(events):
    return [e for e in events if isinstance(e, ParseWarning)]


def assert_bytes_add_up(parser, events):
    """Every byte fed is in one exchange, the greeting, the unattributed count or the TLS count; once."""
    ex = [e for e in events if isinstance(e, Exchange)]
    greeting = sum(e.nbytes for e in events if isinstance(e, Greeting))
    assert sum(e.bytes_up for e in ex) + parser.unattributed["up"] + parser.tls.bytes_up == parser.total["up"]
    assert (
        sum(e.bytes_down for e in ex) + greeting + parser.unattributed["down"] + parser.tls.bytes_down
        == parser.total["down"]
    )


def timeless(events):
    """Events without their times, for comparing two chunkings of the same streams."""
    out = []
    for e in events:
        if isinstance(e, Exchange):
            out.append(dataclasses.replace(e, t_sent=None, t_first_response=None, t_done=None))
        elif isinstance(e, (Greeting, Encrypted)):
            out.append(dataclasses.replace(e, t=None))
    return out


@st.composite
def rechunked(draw, chunks):
    """The same byte streams, in the same order, cut into different chunks (and same-direction neighbours merged)."""
    out: list[tuple[str, bytes]] = []
    for direction, data in chunks:
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=6)))) if len(data) > 1 else []
        for a, b in zip([0] + cuts, cuts + [len(data)]):
            piece = data[a:b]
            if out and out[-1][0] == direction and draw(st.booleans()):
                out[-1] = (direction, out[-1][1] + piece)
            else:
                out.append((direction, piece))
    return out


def one_byte_chunks(chunks):
    return [(d, data[i : i + 1]) for d, data in chunks for i in range(len(data))]
