"""What an IMAP server's byte stream carried: per sequence number the UID, ``RFC822.SIZE`` and message data of
its untagged ``FETCH`` responses, and the first ``EXISTS``/``RECENT`` counts.

Why a module of its own: both rebuilding the mailbox from the capture and checking the replay's fetched
messages against it read server streams this way. The IMAP syntax (responses, literals, FETCH items) is read by
:mod:`mailstudy.protocol.imap_response`; this module only decides which item is which part of a message.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailstudy.protocol.imap_response import (
    parse_fetch,
    split_responses,
    untagged_number,
)


@dataclass
class FetchedParts:
    """What the FETCH responses for one sequence number carried (None: not seen); the mailbox step reads it."""

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


def imap_fetched(down: bytes) -> tuple[dict[int, FetchedParts], int | None, int | None]:
    """What the server's FETCH responses carried, per sequence number, and the first EXISTS and RECENT counts
    (one mailbox is assumed)."""
    seen: dict[int, FetchedParts] = {}
    exists: int | None = None
    recent: int | None = None
    for resp in split_responses(down):
        if exists is None and (n := untagged_number(resp, b"EXISTS")) is not None:
            exists = n
            continue
        if recent is None and (n := untagged_number(resp, b"RECENT")) is not None:
            recent = n
            continue
        f = parse_fetch(resp)
        if f is None:
            continue
        s = seen.setdefault(f.seq, FetchedParts())
        for name, value in f.items.items():
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
