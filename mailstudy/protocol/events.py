"""The events the sans-IO protocol parsers emit: one vocabulary for live traces and pcaps alike.

Why a module of its own: the IMAP parser, the POP3 parser, the metrics and the pcap analysis all speak of the
same things (a greeting, an exchange, a switch to TLS). Defining them once keeps "command", "exchange" and
"round trip" meaning the same thing everywhere (see docs/design.md, "Words").

Times (``t_*``) are whatever the caller fed with the bytes (``perf_counter_ns`` ints from a live trace, float
seconds from a pcap); the parsers never read a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailstudy.wire import DOWN, UP  # noqa: F401 - the directions, re-exported for the parsers' users


@dataclass(frozen=True)
class Greeting:
    """The server's first line (IMAP ``* OK ...``/``* PREAUTH``/``* BYE``, POP3 ``+OK``/``-ERR``)."""

    status: str  # IMAP: "OK" | "PREAUTH" | "BYE"; POP3: "+OK" | "-ERR"
    text: str
    t: Any
    nbytes: int


@dataclass(frozen=True)
class Exchange:
    """A command with its complete response.

    IMAP: a tagged command line (with any literals it carries and SASL continuation lines it needs) up to and
    including its tagged status line; an untagged FETCH is counted in the outstanding command whose UID set
    (or sequence set) holds it, other untagged responses (and a FETCH no set holds) in the exchange that was
    oldest outstanding when they arrived. POP3: the command line, the status line and, for
    multi-line replies, the data up to the terminating ``.`` line; SASL lines of ``AUTH`` belong to it.
    """

    protocol: str  # "imap" | "pop3"
    index: int  # 0-based order in which commands were sent in the session
    tag: str | None  # IMAP tag; None for POP3
    command: str  # verb in upper case: "LOGIN", "FETCH", "UID FETCH", "RETR", ...
    arguments: str  # the rest of the command line, literals shown as {n}
    status: str | None  # IMAP "OK"/"NO"/"BAD"; POP3 "+OK"/"-ERR"; None if the stream ended first
    status_text: str  # the rest of the status line
    t_sent: Any  # time of the chunk carrying the command's first byte
    t_first_response: Any | None  # time of the first response byte attributed to it
    t_done: Any | None  # time of the chunk completing the response
    bytes_up: int  # client bytes of this command (line, literals, SASL lines)
    bytes_down: int  # server bytes attributed to it
    literals: tuple[bytes, ...] = ()  # IMAP: literal payloads in the response (e.g. FETCH BODY[] data)
    data: bytes = b""  # POP3: multi-line reply payload after dot-unstuffing, without the final "."
    multiline: bool = False  # POP3: the reply was multi-line
    missing: int = 0  # bytes of this exchange the capture lost (gaps); > 0: the exchange is incomplete

    @property
    def ok(self) -> bool:
        return self.status in ("OK", "+OK")

    @property
    def incomplete(self) -> bool:
        """The capture lost bytes of this exchange (see ``missing``): its byte counts are what was seen."""
        return self.missing > 0


@dataclass(frozen=True)
class Encrypted:
    """The session switched to TLS (STARTTLS/STLS accepted, or bytes that are TLS records from the start).

    After this event the parser only counts bytes; they are reported in the parser's ``tls``.
    """

    t: Any
    reason: str


@dataclass(frozen=True)
class Compressed(Encrypted):
    """COMPRESS=DEFLATE (RFC 4978) accepted, and the bytes given are read inflated (a live trace, or a capture
    through :mod:`mailstudy.offline.inflate`): parsing goes on. An :class:`Encrypted` too, so that a consumer
    that works on the wire's bytes (replay, redaction) stops here as it would without the inflating."""


#: Span kinds that are credentials (what redaction overwrites and replay maps to the new account).
CREDENTIAL_KINDS = ("imap-login-user", "imap-login-password", "imap-authenticate", "imap-sasl-response",
                    "pop3-user", "pop3-pass", "pop3-apop", "pop3-auth", "pop3-sasl-response")
NOT_SECRET = (b"", b"*", b"=")  # SASL responses that hold no credential: a cancel and empty responses


@dataclass(frozen=True)
class Span:
    """Bytes ``[start, end)`` of the client stream (absolute offsets, gaps left out) that carry an argument.

    The parsers emit a Span for every credential (``kind`` one of :data:`CREDENTIAL_KINDS`; always) and, when
    made with ``spans=True``, for the UID set of ``UID FETCH/STORE/COPY/MOVE/EXPUNGE`` (``kind`` "uid-set").
    A SASL cancel (``*``) and an empty response (``=`` or an empty line) are not secrets and get no Span.
    """

    kind: str
    start: int
    end: int
    command: int = -1  # Exchange.index of the command it belongs to
    form: str = ""  # "atom" | "quoted" (start/end: inside the quotes) | "literal" | "line" (rest of a line)
    marker: tuple[int, int] | None = None  # literal: the ``{n}`` marker's span, for an edit that changes n
    mechanism: str = ""  # SASL: the mechanism, upper case
    turn: int = 0  # SASL: 0 for the initial response or first line, then 1, 2 ...

    @property
    def secret(self) -> bool:
        return self.kind in CREDENTIAL_KINDS


@dataclass(frozen=True)
class Progress:
    """How far a parser has got (what a replay waits for before it sends its next flight)."""

    greeted: bool  # the greeting was read
    completed: int  # exchanges complete (tagged status / full reply read, or ended by close())
    continuations: int  # continuation requests (IMAP ``+``) or SASL challenges (POP3 ``+``) read
    settled: bool  # every command sent so far is complete and no response is half read


@dataclass(frozen=True)
class ParseWarning:
    """Something in the stream did not follow the protocol; the parser went on as best it could."""

    direction: str
    t: Any
    message: str
    offset: int = 0  # byte offset in that direction's stream


Event = Greeting | Exchange | Encrypted | Compressed | ParseWarning | Span


@dataclass
class TlsCounts:
    bytes_up: int = 0
    bytes_down: int = 0
    records_up: int = 0
    records_down: int = 0
    extra: dict = field(default_factory=dict)
