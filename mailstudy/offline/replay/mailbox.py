"""Step 1 of a replay: rebuild the mailbox a session's capture carries, whole messages where the capture has
them and sized placeholders where it does not (the rules are in the :mod:`mailstudy.offline.replay` doc, step 1).

Why a module of its own: the new server must hold the same messages in the same order before any client
byte is replayed, and the UID map of step 4 follows from this order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailstudy.offline.replay.captured import captured_exchanges, plain_stream
from mailstudy.offline.replay.imap_fetch import FetchedParts, imap_fetched
from mailstudy.protocol.events import DOWN

FILLER_LINE = 76  # filler body lines: 76 'x' + CRLF


@dataclass
class Mailbox:
    """The messages a session's capture carries, in the order the new server must hold them."""

    protocol: str
    messages: list[bytes] = field(default_factory=list)
    whole: list[bool] = field(default_factory=list)  # True: byte-exact from the capture; False: placeholder
    uids: list[int | None] = field(default_factory=list)  # IMAP: the captured UID of each message
    warnings: list[str] = field(default_factory=list)

    @property
    def placeholders(self) -> int:
        return sum(1 for w in self.whole if not w)

    def uid_map(self) -> dict[int, int]:
        """Captured UID -> UID on a fresh server (position + 1)."""
        return {u: i + 1 for i, u in enumerate(self.uids) if u is not None}


def filler(size: int, head: bytes = b"") -> bytes:
    """``head`` followed by filler lines so that the result is ``size`` bytes (just ``head`` if it is longer)."""
    out = bytearray(head)
    if size > len(out) and out and not out.endswith(b"\n"):
        out += b"\r\n"[: size - len(out)]
    while len(out) < size:
        left = size - len(out)
        if left <= FILLER_LINE + 2:
            out += b"x" * (left - 2) + b"\r\n" if left >= 2 else b"x" * left
        else:
            out += b"x" * FILLER_LINE + b"\r\n"
    return bytes(out)


def _placeholder(head: bytes | None, size: int | None, what: str) -> bytes:
    if not head:
        head = (b"Subject: placeholder for " + what.encode() + b" (not in the capture)\r\n"
                b"X-Mailstudy-Replay: placeholder\r\n\r\n")
    return filler(size or 0, head)


def _imap_mailbox(session) -> Mailbox:
    box = Mailbox("imap")
    down = plain_stream(session, DOWN)
    seen, exists, recent = imap_fetched(down)
    count = max([exists or 0, *seen.keys()] if seen else [exists or 0])
    if exists and recent is not None and recent != exists:
        box.warnings.append(f"the captured mailbox was not fresh ({recent} of {exists} messages \\Recent): "
                            f"flags and \\Recent are not restored, so FETCH FLAGS and SELECT replies may differ")
    for seq in range(1, count + 1):
        s = seen.get(seq, FetchedParts())
        what = f"message {seq}"
        if s.whole is not None:
            msg, whole = s.whole, True
        elif s.header is not None and s.text is not None:
            msg, whole = s.header + s.text, True
        elif s.start is not None and s.size is not None and len(s.start) >= s.size:
            msg, whole = s.start[:s.size], True
        else:
            msg, whole = _placeholder(s.header or s.start or s.fields, s.size, what), False
        box.messages.append(msg)
        box.whole.append(whole)
        box.uids.append(s.uid)
    _check_uids(box)
    for e in captured_exchanges(session):
        if e.command in ("SELECT", "EXAMINE") and e.arguments.strip().strip('"').upper() != "INBOX":
            box.warnings.append(f"the client opened {e.arguments.strip()!r}: only one mailbox is rebuilt, "
                                f"and it is the new server's INBOX")
    return box


def _check_uids(box: Mailbox) -> None:
    known = [u for u in box.uids if u is not None]
    if known != sorted(set(known)):
        box.warnings.append("captured UIDs are not increasing with sequence numbers; UID mapping may be wrong")


def _pop3_mailbox(session) -> Mailbox:
    box = Mailbox("pop3")
    count = 0
    sizes: dict[int, int] = {}
    got: dict[int, tuple[bytes, bool]] = {}
    for e in captured_exchanges(session):
        if not e.ok:
            continue
        args = e.arguments.split()
        if e.command == "STAT":
            parts = e.status_text.split()
            if parts and parts[0].isdigit():
                count = max(count, int(parts[0]))
        elif e.command == "LIST":
            lines = e.data.decode("ascii", "replace").splitlines() if e.multiline else [e.status_text]
            for line in lines:
                p = line.split()
                if len(p) >= 2 and p[0].isdigit() and p[1].isdigit():
                    sizes[int(p[0])] = int(p[1])
        elif e.command == "RETR" and args and args[0].isdigit():
            got[int(args[0])] = (e.data, True)
        elif e.command == "TOP" and args and args[0].isdigit():
            n = int(args[0])
            if n not in got or not got[n][1]:
                got[n] = (e.data, False)
    count = max([count, *sizes, *got]) if (sizes or got) else count
    for n in range(1, count + 1):
        data, whole = got.get(n, (b"", False))
        if not whole and data and sizes.get(n) == len(data):
            whole = True  # TOP n k that returned the whole message
        box.messages.append(data if whole else _placeholder(data, sizes.get(n), f"message {n}"))
        box.whole.append(whole)
        box.uids.append(None)
    return box


def rebuild_mailbox(session) -> Mailbox:
    """The mailbox a session's capture carries (see the module doc, step 1)."""
    box = _imap_mailbox(session) if session.protocol == "imap" else _pop3_mailbox(session)
    if box.placeholders:
        box.warnings.append(f"{box.placeholders} of {len(box.messages)} messages are placeholders "
                            f"(not fetched whole in the capture: header or nothing, filled to the size seen)")
    return box
