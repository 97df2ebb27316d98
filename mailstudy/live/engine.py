"""The one session engine: a declared workload run over one traced connection, checked and measured.

Why: every measured session, an abstract strategy (:mod:`mailstudy.live.access`) or a real client's sync
(:mod:`mailstudy.live.client_profiles`), does the same things around its own commands: connect through a traced
socket, log in, select INBOX, check every downloaded byte against what was delivered, log out, and turn the trace
into metrics with the one sans-IO parser and the one metrics definition the pcap analysis uses too. They live
here once. A workload is anything with a ``name``, a ``protocol`` (``"imap"`` or ``"pop3"``), a ``spec`` and a
``play(conn, session)`` method; :func:`run_workload` runs it: it opens an :class:`ImapConnection` or a
:class:`Pop3Connection`, hands it to the workload, closes it (LOGOUT/QUIT when the workload finished, a plain
close when it failed) and measures.

FETCH responses are read by protocol/imap's one response reader (:mod:`mailstudy.protocol.imap_response`):
imaplib's FETCH data is put back into the response text the server sent and parsed there, so a UID after a
literal, a section name or a flag list is read the same way a pcap's are.
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import poplib
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from mailstudy import __version__
from mailstudy.corpus.sections import header_of, pop3_form
from mailstudy.errors import CheckFailed, MailstudyError
from mailstudy.link.profiles import Profile
from mailstudy.live.clients import ClientTLS, TracedIMAP4, TracedPOP3
from mailstudy.live.devices import Device
from mailstudy.live.imap_style import ImapStyle, after_login, leave, log_in, select
from mailstudy.live.trace import Trace
from mailstudy.protocol import parse_session
from mailstudy.protocol.events import Exchange
from mailstudy.protocol.imap_response import Fetch, parse_fetch, split_responses
from mailstudy.protocol.metrics import open_waits, session_metrics

SEEN = b"\\Seen"
_MSGID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)
_CAPS = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
_HIGHESTMODSEQ = re.compile(rb"\[HIGHESTMODSEQ (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
#: imaplib's own opening and leaving: what the abstract strategies send
IMAPLIB = ImapStyle()


class IntegrityError(CheckFailed):
    """A downloaded message or header is not byte-identical to any message delivered to the account.

    A plain error, not an AssertionError: ``python -O`` and test tools treat assertions specially, and this is a
    finding about the server, not a bug in mailstudy."""

    check = "integrity check"


class SessionError(MailstudyError, RuntimeError):
    """The session could not be run (refused login, dead server); the message says what happened."""


# -- what was delivered -------------------------------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Catalog:
    """The messages delivered to an account, findable by their bytes and by their Message-ID, for byte-exact
    checks of what comes back.

    What "the header" is and how POP3 hands a message back are :mod:`mailstudy.corpus.sections`'s rules; a POP3
    check compares with the POP3 form (CRLF-terminated), an IMAP check with the bytes as delivered. A client
    that fetches only a few header fields is checked by Message-ID (:meth:`identify_fields`).
    """

    def __init__(self, raws: Iterable[bytes]) -> None:
        self.by_sha: dict[str, bytes] = {}
        self.by_message_id: dict[bytes, str] = {}
        # (protocol, "message" | "header") -> sha256 of that form -> sha256 of the delivered message
        self._forms: dict[tuple[str, str], dict[str, str]] = {
            (p, part): {} for p in ("imap", "pop3") for part in ("message", "header")}
        for raw in raws:
            sha = _sha(raw)
            self.by_sha[sha] = raw
            header = header_of(raw)
            for protocol, form in (("imap", lambda b: b), ("pop3", pop3_form)):
                self._forms[protocol, "message"][_sha(form(raw))] = sha
                self._forms[protocol, "header"][_sha(form(header))] = sha
            m = _MSGID.search(header)
            if m:
                self.by_message_id[m.group(1)] = sha

    def check_message(self, data: bytes, what: str, protocol: str = "imap") -> str:
        """The delivered message's sha256 if ``data`` is one of them as ``protocol`` returns it, else raise."""
        found = self._forms[protocol, "message"].get(_sha(data))
        if found is None:
            raise IntegrityError(f"{what}: {len(data)} bytes (sha256 {_sha(data)[:12]}) match no delivered message")
        return found

    def check_header(self, data: bytes, what: str, protocol: str = "imap") -> str:
        """The delivered message's sha256 if ``data`` is the header of one of them as ``protocol`` returns it."""
        found = self._forms[protocol, "header"].get(_sha(data))
        if found is None:
            raise IntegrityError(f"{what}: header of {len(data)} bytes (sha256 {_sha(data)[:12]}) matches no "
                                 f"delivered message's header")
        return found

    def check_prefix(self, sha: str, data: bytes, what: str, offset: int = 0, protocol: str = "imap") -> None:
        """``data`` must be the bytes of message ``sha`` (as ``protocol`` returns it) from ``offset`` on: a
        partial FETCH, a chunk, ``TOP n k``."""
        raw = self.by_sha[sha]
        whole = pop3_form(raw) if protocol == "pop3" else raw
        if whole[offset:offset + len(data)] != data:
            raise IntegrityError(f"{what}: {len(data)} bytes at offset {offset} differ from the delivered message")

    def identify_fields(self, data: bytes, what: str) -> str:
        """The sha256 of the message whose header fields ``data`` are (found by Message-ID)."""
        m = _MSGID.search(data)
        sha = self.by_message_id.get(m.group(1)) if m else None
        if sha is None or header_of(self.by_sha[sha]).find(m.group(0)) < 0:
            raise IntegrityError(f"{what}: header fields of {len(data)} bytes name no delivered message")
        return sha


@dataclass(frozen=True)
class Destination:
    """Where a session goes: the server's (or its link's) loopback ports, the login and what was delivered.

    Not :class:`mailstudy.servers.Account` (a login a server holds): this is the client's side of one session."""

    host: str
    imap_port: int
    pop3_port: int
    user: str
    password: str
    catalog: Catalog
    timeout: float = 60.0
    tls: ClientTLS | None = None  # TLS (implicit or STARTTLS) as mailstudy.live.clients opens it; None: clear text
    compress: bool = False  # IMAP: ask for COMPRESS=DEFLATE after login (where the server offers it)

    def port(self, protocol: str) -> int:
        return self.imap_port if protocol == "imap" else self.pop3_port


# -- FETCH data, read by the protocol's one reader -------------------------------------------------------------
def fetches(data: list) -> list[Fetch]:
    """The FETCH responses in imaplib's FETCH data, parsed by :func:`mailstudy.protocol.imap_response.parse_fetch`.

    imaplib hands back each response without its ``* `` and ``FETCH`` words, a literal as ``(text, payload)``
    and the line after a literal as the next item; put back together, that is the server's text again."""
    stream = bytearray()
    after_literal = False
    for item in data:
        if isinstance(item, tuple):
            head, payload = item
            stream += (head if after_literal else _fetch_line(head)) + b"\r\n" + payload
            after_literal = True
        elif isinstance(item, bytes):
            stream += (item if after_literal else _fetch_line(item)) + b"\r\n"
            after_literal = False
    return [f for f in map(parse_fetch, split_responses(bytes(stream))) if f is not None]


def _fetch_line(text: bytes) -> bytes:
    seq, _, rest = text.partition(b" ")
    return b"* " + seq + b" FETCH " + rest


def message_data(f: Fetch) -> bytes | None:
    """The message bytes a FETCH carried (``BODY[...]``, ``RFC822...``), or None."""
    for name, value in f.items.items():
        if isinstance(value, bytes) and (name.startswith("BODY[") or name.startswith("RFC822")) \
                and name != "RFC822.SIZE":
            return value
    return None


def is_seen(f: Fetch) -> bool:
    flags = f.items.get("FLAGS")
    return isinstance(flags, list) and SEEN in flags


# -- the outcome -----------------------------------------------------------------------------------------------
@dataclass
class SessionResult:
    spec: Any  # the SessionSpec the session ran (a client profile's: its protocol alone)
    trace: Trace
    exchanges: list[Exchange]
    metrics: dict
    messages: int  # messages in the mailbox when the session started
    headers_fetched: int = 0
    bodies_fetched: int = 0
    opened: list[int] = field(default_factory=list)  # 0-based positions the user opened
    integrity_ok: bool = True
    link: Profile | None = None  # the profile of the emulated link the session went through (None: loopback)
    compress_refused: str | None = None  # COMPRESS asked for but not on: why (the session went on uncompressed)

    @property
    def compressed(self) -> bool:
        """COMPRESS=DEFLATE was on for the rest of the session."""
        return self.trace.compressed is not None

    def row(self) -> dict:
        """One tidy row: parameters, counts and times (no raw bytes)."""
        out = asdict(self.spec)
        out.update(messages=self.messages, headers_fetched=self.headers_fetched,
                   bodies_fetched=self.bodies_fetched, integrity_ok=self.integrity_ok,
                   compressed=self.compressed, compress_refused=self.compress_refused,
                   mailstudy_version=__version__)
        out.update(self.metrics)
        return out


def measure(spec, trace: Trace, messages: int, **counts) -> SessionResult:
    """The session's exchanges and metrics from its trace: the one definition, for every workload."""
    parser_events = parse_session(spec.protocol, trace.chunks, decrypted=trace.wire is not None,
                                  inflated=trace.compressed is not None)
    exchanges = [e for e in parser_events if isinstance(e, Exchange)]
    metrics = session_metrics(trace.chunks, exchanges, t_start=trace.t_connect_ns,
                              t_list_ready=trace.milestones.get("list_ready"), time_scale=1e-9,
                              wire=trace.wire, compressed=trace.compressed).as_row()
    metrics.update(open_waits(exchanges, trace.milestones.get("list_ready"), time_scale=1e-9))
    return SessionResult(spec=spec, trace=trace, exchanges=exchanges, metrics=metrics, messages=messages,
                         **counts)


# -- connections ----------------------------------------------------------------------------------------------
class ImapConnection:
    """One traced IMAP session: connected, logged in, INBOX selected (with CONDSTORE when asked and offered)."""

    errors = (imaplib.IMAP4.error, OSError)

    def __init__(self, account: Destination, trace: Trace, who: str, condstore: bool = False,
                 qresync: tuple[int, int] | None = None, compress: bool = False,
                 style: ImapStyle = IMAPLIB) -> None:
        """``qresync``: the ``(UIDVALIDITY, MODSEQ)`` a device remembers, for ``ENABLE QRESYNC`` and a SELECT that
        resynchronises in its own reply (RFC 7162 section 3.2.5); refused with :class:`SessionError` where the
        server does not offer QRESYNC. ``compress``: COMPRESS=DEFLATE after login where offered (RFC 4978).
        ``style``: how the session opens and ends (:mod:`mailstudy.live.imap_style`)."""
        self.account, self.trace, self.who, self.style = account, trace, who, style
        self.c = TracedIMAP4(account.host, account.imap_port, trace, timeout=account.timeout, tls=account.tls,
                             greeting_caps=style.greeting_caps)
        if style.tag_form() is not None:
            self.c.use_tags(*style.tag_form())
        self.condstore_offered = self.condstore_used = False
        self.modseq_at_select = self.uidnext = 0
        self.qresync = qresync
        self.compress_refused: str | None = None
        try:
            self.caps = self._login()
            if compress or account.compress:
                self.compress_refused = self._compress()
            self.condstore_offered = "CONDSTORE" in self.caps
            self.condstore_used = (condstore or qresync is not None) and self.condstore_offered
            if qresync is not None:
                self._enable_qresync()
            self.n = self._select()
        except BaseException:
            self.abort()
            raise

    def _login(self) -> set[str]:
        """Log in as the style says; the capabilities after login (a CAPABILITY asked after login wins, then
        the login reply's ``[CAPABILITY ...]`` code)."""
        c = self.c
        try:
            _typ, dat = log_in(c, self.style, self.account.user, self.account.password)
        except c.error as exc:
            raise SessionError(f"{self.who}: IMAP login as {self.account.user!r} refused: {exc}") from exc
        m = _CAPS.search(dat[0] if dat and isinstance(dat[0], bytes) else b"")
        after = m.group(1) if m else (c.untagged_responses.pop("CAPABILITY", [None]) or [None])[-1]
        caps = {x.decode().upper() for x in after.split()} if after else set(c.capabilities)
        asked = after_login(c, self.style, caps)
        return {x.decode().upper() for x in asked.split()} if asked else caps

    def _enable_qresync(self) -> None:
        if "QRESYNC" not in self.caps:
            raise SessionError(f"{self.who}: the server does not offer QRESYNC (RFC 7162)")
        typ, data = self.c._simple_command("ENABLE", "QRESYNC")
        if typ != "OK":
            raise SessionError(f"{self.who}: ENABLE QRESYNC failed: {data!r}")

    def _compress(self) -> str | None:
        """COMPRESS=DEFLATE right after login, as NeoMutt and Thunderbird ask for it; None when on, else why not."""
        if "COMPRESS=DEFLATE" not in self.caps:
            return "the server does not offer COMPRESS=DEFLATE"
        return self.c.compress()

    def _select(self) -> int:
        c = self.c
        typ, data = select(c, self.style, self.condstore_used, self.qresync)
        if typ != "OK":
            raise SessionError(f"{self.who}: SELECT INBOX failed: {data!r}")
        codes = b" ".join(c.untagged_responses.get("OK", []))
        if self.condstore_used:
            hm = _HIGHESTMODSEQ.findall(codes)
            self.modseq_at_select = int(hm[-1]) if hm else 0
        un = _UIDNEXT.findall(codes)
        self.uidnext = int(un[-1]) if un else 0
        return int(data[-1] or 0)

    def select_again(self) -> None:
        """SELECT INBOX once more on this connection (a client that opens the folder anew for each sync)."""
        self.n = self._select()

    def fetch(self, messages: str, items: str) -> list[Fetch]:
        """``FETCH`` by sequence numbers (a client that lists its mailbox by position: NeoMutt, getmail)."""
        typ, data = self.c.fetch(messages, items)
        if typ != "OK":
            raise SessionError(f"{self.who}: FETCH {messages} {items} failed: {data!r:.200}")
        return fetches([d for d in data if d is not None])

    def uid_fetch(self, uids: str, items: str, *modifiers: str) -> list[Fetch]:
        typ, data = self.c.uid("FETCH", uids, items, *modifiers)
        if typ != "OK":
            raise SessionError(f"{self.who}: UID FETCH {uids} {items} failed: {data!r:.200}")
        return fetches([d for d in data if d is not None])

    def uid_fetch_each(self, uids: list[int], items: str, window: int | None = None) -> list[Fetch]:
        """One ``UID FETCH`` per UID: one after the other, or up to ``window`` tags in flight (0: all)."""
        if window is None:
            return [f for u in uids for f in self.uid_fetch(str(u), items)]
        results = self.c.pipelined("UID", [("FETCH", str(u), items) for u in uids], window=window)
        bad = [r for r in results if r[0] != "OK"]
        if bad:
            raise SessionError(f"{self.who}: UID FETCH failed: {bad[0]!r}")
        return fetches(self.c.untagged_responses.pop("FETCH", []))

    def uid_search(self, *criteria: str) -> list[int]:
        typ, data = self.c.uid("SEARCH", *criteria)
        if typ != "OK":
            raise SessionError(f"{self.who}: UID SEARCH failed: {data!r}")
        return [int(x) for x in (data[0] or b"").split()]

    def store_seen(self, uid: int, how: str) -> None:
        typ, data = self.c.uid("STORE", str(uid), how, "(\\Seen)")
        if typ != "OK":
            raise SessionError(f"{self.who}: UID STORE {uid} \\Seen failed: {data!r}")

    def stores(self, stores: list[tuple[str, str, str]], window: int) -> None:
        """``UID STORE uids how flags`` for each, up to ``window`` in flight (1: one after the other)."""
        results = self.c.pipelined("UID", [("STORE", *st) for st in stores], window=max(1, window))
        bad = [(st, r) for st, r in zip(stores, results) if r[0] != "OK"]
        if bad:
            raise SessionError(f"{self.who}: UID STORE {' '.join(bad[0][0])} failed: {bad[0][1][1]!r}")

    def close(self) -> None:
        leave(self.c, self.style)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.c.shutdown()


class Pop3Connection:
    """One traced POP3 session: connected, its capabilities learned (CAPA, when the workload asks), logged in."""

    errors = (poplib.error_proto, OSError)

    def __init__(self, account: Destination, trace: Trace, who: str, capa: bool = True, stat: bool = True,
                 pipelining: int = 1) -> None:
        self.account, self.trace, self.who = account, trace, who
        self.c = TracedPOP3(account.host, account.pop3_port, trace, timeout=account.timeout, tls=account.tls)
        try:
            self.caps = self._capabilities() if capa else {"UIDL", "TOP"}
            try:
                if pipelining > 1 and "PIPELINING" in self.caps:  # USER and PASS in one flight (mpop)
                    self.c.pipelined([f"USER {account.user}", f"PASS {account.password}"], False)
                else:
                    self.c.user(account.user)
                    self.c.pass_(account.password)
            except poplib.error_proto as exc:
                raise SessionError(f"{who}: POP3 login as {account.user!r} refused: {exc}") from exc
            # a client that sends no STAT (getmail) learns the count from its first LIST or UIDL (pop3_sync)
            self.n: int | None = self.c.stat()[0] if stat else None
        except BaseException:
            self.abort()
            raise

    def ask(self, line: str) -> bytes | None:
        """A one-line command whose refusal is an answer, not a failure (fetchmail's LAST, which RFC 1939 dropped
        and Dovecot refuses); its reply line, or None when refused."""
        try:
            return self.c._shortcmd(line)
        except poplib.error_proto:
            return None

    def _capabilities(self) -> set[str]:
        try:
            return {k.upper() for k in self.c.capa()}
        except poplib.error_proto:  # a server without CAPA (RFC 1939 only): assume nothing optional
            return set()

    def sizes(self) -> dict[int, int]:
        """LIST: message number -> size."""
        out = {}
        for line in self.c.list()[1]:
            num, size = line.split()[:2]
            out[int(num)] = int(size)
        return out

    def uidls(self) -> dict[int, str]:
        """UIDL: message number -> unique id."""
        out = {}
        for line in self.c.uidl()[1]:
            num, uidl = line.split(None, 1)
            out[int(num)] = uidl.decode("ascii", "replace")
        return out

    def run(self, lines: list[str], multiline: bool, pipelining: bool | int = False) -> list[bytes]:
        """Each command's reply data (a multi-line reply put back together as sent; b"" for a one-line one),
        one command at a time or, with ``pipelining``, all in one flight (a number: flights of at most that many
        commands)."""
        if not lines:
            return []
        if pipelining:
            depth = len(lines) if pipelining is True else int(pipelining)
            return [joined(body) for at in range(0, len(lines), depth)
                    for _resp, body in self.c.pipelined(lines[at:at + depth], multiline)]
        if multiline:
            return [joined(self.c._longcmd(line)[1]) for line in lines]
        for line in lines:
            self.c._shortcmd(line)
        return [b""] * len(lines)

    def close(self) -> None:
        self.c.quit()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.c.close()


def joined(lines: list[bytes]) -> bytes:
    """poplib returns un-stuffed lines without CRLF; put the message back together as it was sent."""
    return b"".join(line + b"\r\n" for line in lines)


# -- the one path ----------------------------------------------------------------------------------------------
@dataclass
class Session:
    """What a workload sees while it plays: the account, the device, the trace, and the counts it keeps."""

    account: Destination
    device: Device
    trace: Trace
    to_read: set[str] = field(default_factory=set)  # client profiles: messages the user reads in this session
    outcome: Any = None  # client profiles: the SyncOutcome being filled
    headers: int = 0
    bodies: int = 0
    counts: dict = field(default_factory=dict)  # extra SessionResult fields (``opened``)


def open_connection(protocol: str, account: Destination, trace: Trace, who: str, **options):
    """An :class:`ImapConnection` or :class:`Pop3Connection`; a failure is a :class:`SessionError` saying where."""
    kind = ImapConnection if protocol == "imap" else Pop3Connection
    try:
        return kind(account, trace, who, **options)
    except kind.errors as exc:
        raise failed(who, protocol, account, exc) from exc


def failed(who: str, protocol: str, account: Destination, exc: BaseException) -> SessionError:
    return SessionError(f"{who}: {protocol} session to {account.host}:{account.port(protocol)} failed: "
                        f"{exc or type(exc).__name__}")


def guarded(conn, work):
    """``work()`` with the connection's library errors turned into one :class:`SessionError`."""
    try:
        return work()
    except conn.errors as exc:
        raise failed(conn.who, "imap" if isinstance(conn, ImapConnection) else "pop3", conn.account, exc) from exc


def run_workload(workload, session: Session, **options) -> SessionResult:
    """Run ``workload`` over one traced connection and measure it: connect, log in (and SELECT INBOX), let the
    workload play, end with LOGOUT/QUIT (or a plain close when it failed), and compute the metrics.

    A workload has a ``name``, a ``protocol``, a ``spec`` (what its result row reports) and ``play(conn,
    session)``; ``options`` go to the connection (``condstore`` for IMAP, ``capa`` for POP3)."""
    conn = open_connection(workload.protocol, session.account, session.trace, workload.name, **options)
    ended = False
    try:
        guarded(conn, lambda: workload.play(conn, session))
        guarded(conn, conn.close)
        ended = True
    finally:
        if not ended:
            conn.abort()
    return measure(workload.spec, session.trace, conn.n, headers_fetched=session.headers, bodies_fetched=session.bodies,
                   compress_refused=compress_refusal(conn, session.account, options), **session.counts)


def compress_refusal(conn, account: Destination, options: dict) -> str | None:
    """Why a session that asked for COMPRESS ran without it (None: not asked, or on). POP3 has no COMPRESS."""
    if isinstance(conn, ImapConnection):
        return conn.compress_refused
    return "POP3 has no COMPRESS" if account.compress or options.get("compress") else None


@dataclass
class SyncOutcome:
    """One client profile's sync session: its metrics (the one definition), and what changed on the device."""

    client: str
    result: SessionResult | None = None
    new_listed: list[str] = field(default_factory=list)  # messages the device shows for the first time
    read: list[str] = field(default_factory=list)  # messages the user opened in this session
    headers: int = 0
    bodies: int = 0
    partial_bodies: int = 0
    condstore_offered: bool = False
    condstore_used: bool = False
    modseq_at_select: int = 0

    def add(self, other: SyncOutcome) -> None:
        """Count ``other`` (a later part of the same connection) into this one."""
        self.headers += other.headers
        self.bodies += other.bodies
        self.partial_bodies += other.partial_bodies
        self.condstore_offered = self.condstore_offered or other.condstore_offered
        self.condstore_used = self.condstore_used or other.condstore_used
