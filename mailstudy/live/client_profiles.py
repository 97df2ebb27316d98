"""Client profiles: named workloads that send what real mail clients send, built from the access building blocks.

Why: a byte count means something to a reader only when it is the byte count of a client they use. Each
profile here sends the commands its client's source sends (the facts and their source files are in
``/work/shared/research/clients.md``; each profile's docstring names its own), using the same traced
``imaplib``/``poplib`` clients, the same integrity checks (:class:`~mailstudy.live.access.Known`) and the same
metrics (``_finish``) as the four abstract strategies in :mod:`mailstudy.live.access`: compositions, not copies.

A profile runs one *sync session* for one :class:`~mailstudy.live.devices.Device`: connect, log in, learn what
changed, fetch what the client would fetch, open the messages the user reads on this device, log out. What the
device holds afterwards (listed messages, bodies, read flags) is in the device; what the session cost is in the
returned :class:`SyncOutcome`. Where a client does more than we model (BODYSTRUCTURE walks, folder lists,
COMPRESS), the profile's docstring says so.
"""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import re
from dataclasses import dataclass, field

from mailstudy.live.access import (
    IntegrityError,
    Known,
    SessionError,
    SessionSpec,
    _fetched,
    _finish,
    _joined,
    _pop3_capabilities,
    _pop3_run,
    header_of,
)
from mailstudy.live.clients import TracedIMAP4, TracedPOP3
from mailstudy.live.devices import Device
from mailstudy.live.trace import Trace

_UID = re.compile(rb"UID (\d+)")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_MSGID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)
_CAPS = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
_HIGHESTMODSEQ = re.compile(rb"\[HIGHESTMODSEQ (\d+)\]")
SEEN = b"\\Seen"


class Catalog(Known):
    """Every message delivered to the account, findable by its bytes (as :class:`Known`) and by its Message-ID
    (what a client that fetches a few header fields can tell a message by)."""

    def __init__(self, raws) -> None:
        raws = list(raws)
        super().__init__(raws)
        self.by_message_id: dict[bytes, str] = {}
        for sha, raw in self.by_sha.items():
            m = _MSGID.search(header_of(raw))
            if m:
                self.by_message_id[m.group(1)] = sha

    def identify_fields(self, data: bytes, what: str) -> str:
        """The sha256 of the message whose header fields ``data`` are (found by Message-ID)."""
        m = _MSGID.search(data)
        sha = self.by_message_id.get(m.group(1)) if m else None
        if sha is None or not header_of(self.by_sha[sha]).find(m.group(0)) >= 0:
            raise IntegrityError(f"{what}: header fields of {len(data)} bytes name no delivered message")
        return sha

    def check_prefix(self, sha: str, data: bytes, offset: int, what: str) -> None:
        """``data`` must be the bytes of message ``sha`` from ``offset`` on (a partial fetch)."""
        if self.by_sha[sha][offset:offset + len(data)] != data:
            raise IntegrityError(f"{what}: {len(data)} bytes at offset {offset} differ from the delivered message")


@dataclass(frozen=True)
class Account:
    """Where a device syncs: the server's loopback ports and the login."""

    host: str
    imap_port: int
    pop3_port: int
    user: str
    password: str
    catalog: Catalog
    timeout: float = 60.0


@dataclass
class SyncOutcome:
    """One sync session: its metrics (the one definition), and what changed on the device."""

    client: str
    result: object  # mailstudy.live.access.SessionResult
    new_listed: list[str] = field(default_factory=list)  # messages the device shows for the first time
    read: list[str] = field(default_factory=list)  # messages the user opened in this session
    headers: int = 0
    bodies: int = 0
    partial_bodies: int = 0
    condstore_offered: bool = False
    condstore_used: bool = False
    modseq_at_select: int = 0


def _piece(start: int, end: int) -> str:
    return f"{start}" if start == end else f"{start}:{end}"


def split_uid_sets(uids, limit: int) -> list[str]:
    """Compact UID sets (``1:5,7,9:12``) whose text stays within ``limit`` characters (Thunderbird splits at 950,
    nsImapProtocol.cpp). Built in one pass: the text length is kept as ranges grow."""
    sets: list[str] = []
    ranges: list[list[int]] = []
    length = 0
    for u in sorted(uids):
        if ranges and u == ranges[-1][1] + 1:
            grown = length - len(_piece(*ranges[-1])) + len(_piece(ranges[-1][0], u))
            if grown <= limit:
                ranges[-1][1], length = u, grown
                continue
        elif ranges and length + 1 + len(str(u)) <= limit:
            ranges.append([u, u])
            length += 1 + len(str(u))
            continue
        if ranges:
            sets.append(",".join(_piece(*r) for r in ranges))
        ranges, length = [[u, u]], len(str(u))
    if ranges:
        sets.append(",".join(_piece(*r) for r in ranges))
    return sets


def uid_set(uids) -> str:
    """A compact IMAP sequence set (``1:5,7,9:12``) of the UIDs, in one piece."""
    return (split_uid_sets(uids, 1 << 62) or [""])[0]


def _fetch_items(data: list) -> list[tuple[bytes, bytes | None]]:
    """(response text, literal or None) for each item of imaplib FETCH data."""
    out = []
    for item in data:
        if isinstance(item, tuple):
            out.append((item[0], item[1]))
        elif isinstance(item, bytes) and item not in (b")",):
            out.append((item, None))
    return out


# -- IMAP ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImapClient:
    """The shape every IMAP profile shares; subclasses say what their client sends at each step."""

    name: str = "imap"
    poll_s: float = 600.0
    idle: bool = False  # the client can hold an IDLE connection instead of polling
    protocol: str = "imap"

    # each step below is one hook; the defaults are Thunderbird's
    def run(self, account: Account, device: Device, to_read: set[str], condstore: bool = False) -> SyncOutcome:
        """One poll: connect, log in, select, sync, open what the user reads here, log out."""
        trace = Trace()
        outcome = SyncOutcome(client=self.name, result=None)
        c, n = self.connect(account, device, condstore, trace, outcome)
        logged_out = False
        try:
            self.sync(c, account, device, n, outcome)
            trace.mark("list_ready")
            self.open_messages(c, account, device, to_read, outcome)
            c.logout()
            logged_out = True
        except (imaplib.IMAP4.error, OSError) as exc:
            raise self.failed(account, exc) from exc
        finally:
            if not logged_out:
                with contextlib.suppress(OSError):
                    c.shutdown()
        outcome.result = self.finish(trace, n, outcome)
        return outcome

    def failed(self, account: Account, exc: Exception) -> SessionError:
        return SessionError(f"{self.name}: IMAP session to {account.host}:{account.imap_port} failed: "
                            f"{exc or type(exc).__name__}")

    def finish(self, trace: Trace, n: int, outcome: SyncOutcome):
        return _finish(SessionSpec(protocol="imap"), trace, n, headers_fetched=outcome.headers,
                       bodies_fetched=outcome.bodies)

    def connect(self, account: Account, device: Device, condstore: bool, trace: Trace,
                outcome: SyncOutcome) -> tuple[TracedIMAP4, int]:
        """Connect, log in (learning the capabilities the login reply names) and select INBOX (with CONDSTORE
        when asked and offered): the logged-in client and the number of messages."""
        try:
            c = TracedIMAP4(account.host, account.imap_port, trace, timeout=account.timeout)
        except OSError as exc:
            raise SessionError(f"{self.name}: IMAP connect to {account.host}:{account.imap_port} failed: "
                               f"{exc}") from exc
        try:
            try:
                _typ, dat = c.login(account.user, account.password)
            except c.error as exc:
                raise SessionError(f"{self.name}: IMAP login as {account.user!r} refused: {exc}") from exc
            caps = set(c.capabilities)  # before login; the login reply's [CAPABILITY ...] code wins
            m = _CAPS.search(dat[0] if dat else b"")
            after = m.group(1) if m else (c.untagged_responses.pop("CAPABILITY", [None]) or [None])[-1]
            if after:
                caps = {x.decode().upper() for x in after.split()}
            outcome.condstore_offered = "CONDSTORE" in caps
            outcome.condstore_used = condstore and outcome.condstore_offered
            n = self._select(c, device, outcome.condstore_used)
            if outcome.condstore_used:
                hm = _HIGHESTMODSEQ.findall(b" ".join(c.untagged_responses.get("OK", [])))
                outcome.modseq_at_select = int(hm[-1]) if hm else 0
        except BaseException as exc:
            with contextlib.suppress(OSError):
                c.shutdown()
            if isinstance(exc, (imaplib.IMAP4.error, OSError)):
                raise self.failed(account, exc) from exc
            raise
        return c, n

    # -- steps ------------------------------------------------------------------------------------------------
    def _select(self, c: TracedIMAP4, device: Device, condstore: bool) -> int:
        if condstore:
            typ, data = c._simple_command("SELECT", "INBOX (CONDSTORE)")
            typ, data = c._untagged_response(typ, data, "EXISTS")
            c.state = "SELECTED"  # what imaplib.select() sets; the CONDSTORE parameter needs the raw command
        else:
            typ, data = c.select("INBOX")
        if typ != "OK":
            raise SessionError(f"{self.name}: SELECT INBOX failed: {data!r}")
        return int(data[-1] or 0)

    def _uid_fetch(self, c: TracedIMAP4, uids: str, items: str, *modifiers: str) -> list:
        typ, data = c.uid("FETCH", uids, items, *modifiers)
        if typ != "OK":
            raise SessionError(f"{self.name}: UID FETCH {uids} {items} failed: {data!r:.200}")
        return [d for d in data if d is not None]

    def flag_sync(self, c: TracedIMAP4, device: Device, outcome: SyncOutcome) -> dict[int, bool] | None:
        """Thunderbird without CONDSTORE (the default, mailnews.js use_condstore=false): ``UID FETCH 1:* (FLAGS)``.

        Returns ``{uid: seen}`` for every message on the server, or only changed ones (CONDSTORE; then None
        stands for "no full list")."""
        modifiers = ()
        if outcome.condstore_used and device.highest_modseq:
            modifiers = (f"(CHANGEDSINCE {device.highest_modseq})",)
        data = self._uid_fetch(c, "1:*", self.flag_items, *modifiers)
        return self._flags_of(data)

    flag_items = "(FLAGS)"

    @staticmethod
    def _flags_of(data: list) -> dict[int, bool]:
        out = {}
        for text, _lit in _fetch_items(data):
            u, f = _UID.search(text), _FLAGS.search(text)
            if u:
                out[int(u.group(1))] = bool(f and SEEN in f.group(1).split())
        return out

    def apply_flags(self, device: Device, flags: dict[int, bool], full: bool) -> None:
        for uid, seen in flags.items():
            sha = device.uids.get(uid)
            if sha is not None:
                (device.seen.add if seen else device.seen.discard)(sha)
        if full:  # a message the server no longer has is gone from the device's list (and its offline copy)
            device.forget([s for u, s in device.uids.items() if u not in flags])

    header_fields = ("From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups "
                     "In-Reply-To Content-Type Reply-To")
    set_limit = 950

    def header_items(self) -> str:
        return f"(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS ({self.header_fields})])"

    def fetch_headers(self, c: TracedIMAP4, account: Account, device: Device, uids, outcome: SyncOutcome) -> None:
        """New messages' header fields, the UID set split as the client splits it."""
        for uset in split_uid_sets(uids, self.set_limit):
            self._take_headers(self._uid_fetch(c, uset, self.header_items()), account, device, outcome)

    def _take_headers(self, data: list, account: Account, device: Device, outcome: SyncOutcome) -> None:
        for text, lit in _fetch_items(data):
            u = _UID.search(text)
            if lit is None or not u:
                continue
            uid = int(u.group(1))
            if uid in device.uids:
                continue  # "N:*" returns the last message even when N is past it (RFC 3501 6.4.8)
            sha = account.catalog.identify_fields(lit, f"{self.name} headers of UID {uid}")
            device.uids[uid] = sha
            size = _SIZE.search(text)
            device.sizes[sha] = int(size.group(1)) if size else len(account.catalog.by_sha[sha])
            f = _FLAGS.search(text)
            if f and SEEN in f.group(1).split():
                device.seen.add(sha)
            if sha not in device.listed:
                device.listed.add(sha)
                outcome.new_listed.append(sha)
            outcome.headers += 1

    def fetch_bodies(self, c: TracedIMAP4, account: Account, device: Device, uids, outcome: SyncOutcome) -> None:
        """Thunderbird's offline autosync (on by default): ``BODY.PEEK[]`` in groups of up to 2 MB."""
        group: list[int] = []
        total = 0
        for uid in sorted(uids):
            size = device.sizes.get(device.uids[uid], 0)
            if group and total + size > self.autosync_group_bytes:
                self._take_bodies(self._uid_fetch(c, uid_set(group), "(UID BODY.PEEK[])"), account, device,
                                  outcome)
                group, total = [], 0
            group.append(uid)
            total += size
        if group:
            self._take_bodies(self._uid_fetch(c, uid_set(group), "(UID BODY.PEEK[])"), account, device, outcome)

    autosync_group_bytes = 2 * 1024 * 1024

    def _take_bodies(self, data: list, account: Account, device: Device, outcome: SyncOutcome,
                     uid_asked: int | None = None) -> None:
        for uid, raw in _fetched(data):
            if uid < 0 and uid_asked is not None:  # the UID item may follow the literal (pymap does so)
                uid = uid_asked
            sha = account.catalog.check_message(raw, f"{self.name} body of UID {uid}")
            device.uids.setdefault(uid, sha)
            if sha not in device.listed:
                outcome.new_listed.append(sha)
            device.remember(sha, raw)
            outcome.bodies += 1

    @staticmethod
    def new_uids(device: Device, flags: dict[int, bool]) -> list[int]:
        """UIDs on the server the device does not know yet. With CONDSTORE the changed-since list holds them
        too (a new message has a higher MODSEQ); expunges are not seen then (no QRESYNC), as in the clients."""
        return sorted(u for u in flags if u not in device.uids)

    def sync(self, c: TracedIMAP4, account: Account, device: Device, n: int, outcome: SyncOutcome) -> None:
        flags = self.flag_sync(c, device, outcome) if n else {}
        full = not (outcome.condstore_used and device.highest_modseq)
        self.apply_flags(device, flags, full)
        new = self.new_uids(device, flags)
        if new:
            self.fetch_headers(c, account, device, new, outcome)
            self.after_headers(c, account, device, new, outcome)
            self.apply_flags(device, {u: flags[u] for u in new if u in flags}, False)  # bodies carry no flags
        if outcome.modseq_at_select:
            device.highest_modseq = outcome.modseq_at_select

    def after_headers(self, c, account, device, new, outcome) -> None:
        self.fetch_bodies(c, account, device, new, outcome)

    # -- reading ------------------------------------------------------------------------------------------------
    def open_messages(self, c: TracedIMAP4, account: Account, device: Device, to_read: set[str],
                      outcome: SyncOutcome) -> None:
        by_sha = {s: u for u, s in device.uids.items()}
        for sha in sorted(to_read, key=lambda s: by_sha.get(s, 0)):
            uid = by_sha.get(sha)
            if uid is None:
                continue  # the device does not list it (yet): the user reads it elsewhere or later
            if sha in device.store:
                self._store_seen(c, uid)
            else:
                self.open_body(c, account, device, uid, sha, outcome)
            device.seen.add(sha)
            outcome.read.append(sha)

    seen_store = "+FLAGS"

    def _store_seen(self, c: TracedIMAP4, uid: int) -> None:
        typ, data = c.uid("STORE", str(uid), self.seen_store, "(\\Seen)")
        if typ != "OK":
            raise SessionError(f"{self.name}: UID STORE {uid} \\Seen failed: {data!r}")

    open_chunk_above = 98304
    open_chunk = 65536

    def open_body(self, c, account: Account, device: Device, uid: int, sha: str, outcome: SyncOutcome) -> None:
        """Thunderbird opens a message with ``UID FETCH n (UID RFC822.SIZE BODY[])`` (setting \\Seen); above
        98,304 bytes in chunks of ``BODY[]<offset.65536>`` (nsImapProtocol.cpp)."""
        size = device.sizes.get(sha, 0)
        if size <= self.open_chunk_above:
            got = _fetched(self._uid_fetch(c, str(uid), "(UID RFC822.SIZE BODY[])"))
            raw = got[0][1] if got else b""
        else:
            parts = []
            for off in range(0, size, self.open_chunk):
                items = f"(UID{' RFC822.SIZE' if off == 0 else ''} BODY[]<{off}.{self.open_chunk}>)"
                got = _fetched(self._uid_fetch(c, str(uid), items))
                part = got[0][1] if got else b""
                account.catalog.check_prefix(sha, part, off, f"{self.name} chunk {off} of UID {uid}")
                parts.append(part)
            raw = b"".join(parts)
        if account.catalog.check_message(raw, f"{self.name} body of UID {uid}") != sha:
            raise IntegrityError(f"{self.name}: UID {uid} came back as another message")
        device.remember(sha, raw)
        outcome.bodies += 1


@dataclass(frozen=True)
class Thunderbird(ImapClient):
    """Thunderbird (desktop) over IMAP, as thunderbird-desktop ``mailnews/imap/src/nsImapProtocol.cpp`` and
    ``mailnews/mailnews.js`` send it.

    - Known messages: ``UID FETCH 1:* (FLAGS)`` (CONDSTORE off by default: ``use_condstore=false``).
    - New messages: ``UID FETCH <set> (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject
      Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])``, the set
      split when its text passes 950 characters.
    - Offline autosync (on by default): every new body as ``BODY.PEEK[]`` in groups of up to 2 MB.
    - Opening: ``UID FETCH n (UID RFC822.SIZE BODY[])``, chunked ``BODY[]<0.65536>``… above 98,304 bytes; a
      message already held offline is marked read with ``UID STORE n +FLAGS (\\Seen)``.
    - IDLE on; a check every 10 minutes.
    Not modelled: the folder list (LIST/LSUB), ID, NAMESPACE, COMPRESS=DEFLATE.
    """

    name: str = "thunderbird"
    poll_s: float = 600.0
    idle: bool = True


@dataclass(frozen=True)
class ThunderbirdOnline(Thunderbird):
    """Thunderbird with offline autosync switched off (``mail.server.default.autosync_offline_stores`` in
    thunderbird-desktop ``mailnews/mailnews.js``; the open path is ``nsImapProtocol.cpp``): the
    same list and flag sync as :class:`Thunderbird`, and a body crosses the wire only when the user opens it
    (``UID FETCH n (UID RFC822.SIZE BODY[])``, chunked above 98,304 bytes). Header-first, as Thunderbird does it.
    """

    name: str = "thunderbird-online"

    def after_headers(self, c, account, device, new, outcome) -> None:
        pass


@dataclass(frozen=True)
class K9(ImapClient):
    """K-9 Mail / Thunderbird for Android over IMAP (thunderbird-android ``RealImapFolder.kt``, ``ImapSync.kt``).

    - The window of the newest 25 messages (the legacy visible limit), found by ``UID SEARCH a:b NOT DELETED``.
    - Flags of the whole known window on every sync: ``UID FETCH <known> (UID FLAGS)``.
    - New messages: ``UID FETCH <uids> (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (date subject
      from content-type to cc bcc reply-to message-id references in-reply-to list-post list-unsubscribe
      sender)])``.
    - Bodies up to 131,072 bytes whole with ``UID FETCH n (UID BODY.PEEK[])``; larger ones a partial
      ``BODY.PEEK[]<0.131072>`` (K-9 walks BODYSTRUCTURE first and fetches text parts; the cap is the same).
    - Reading a held message: ``UID STORE n +FLAGS.SILENT (\\Seen)``. A poll every 15 minutes.
    Messages that fall out of the window leave the device.
    """

    name: str = "k9"
    poll_s: float = 900.0
    idle: bool = False
    window: int = 25
    body_limit: int = 131072
    header_fields = ("date subject from content-type to cc bcc reply-to message-id references in-reply-to "
                     "list-post list-unsubscribe sender")
    seen_store = "+FLAGS.SILENT"

    def header_items(self) -> str:
        return f"(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({self.header_fields})])"

    def sync(self, c, account, device, n, outcome) -> None:
        window: list[int] = []
        if n:
            typ, data = c.uid("SEARCH", f"{max(1, n - self.window + 1)}:{n}", "NOT", "DELETED")
            if typ != "OK":
                raise SessionError(f"{self.name}: UID SEARCH failed: {data!r}")
            window = sorted(int(x) for x in (data[0] or b"").split())
        known = [u for u in window if u in device.uids]
        if known:
            modifiers = ()
            if outcome.condstore_used and device.highest_modseq:
                modifiers = (f"(CHANGEDSINCE {device.highest_modseq})",)
            self.apply_flags(device, self._flags_of(self._uid_fetch(c, uid_set(known), "(UID FLAGS)",
                                                                    *modifiers)), False)
        device.forget([s for u, s in device.uids.items() if u not in set(window)])
        new = [u for u in window if u not in device.uids]
        if new:
            self.fetch_headers(c, account, device, new, outcome)
            self.fetch_bodies(c, account, device, new, outcome)
        if outcome.modseq_at_select:
            device.highest_modseq = outcome.modseq_at_select

    def fetch_headers(self, c, account, device, uids, outcome) -> None:
        self._take_headers(self._uid_fetch(c, uid_set(uids), self.header_items()), account, device, outcome)

    def fetch_bodies(self, c, account, device, uids, outcome) -> None:
        for uid in uids:
            sha = device.uids[uid]
            if device.sizes.get(sha, 0) <= self.body_limit:
                self._take_bodies(self._uid_fetch(c, str(uid), "(UID BODY.PEEK[])"), account, device, outcome, uid)
            else:
                got = _fetched(self._uid_fetch(c, str(uid), f"(UID BODY.PEEK[]<0.{self.body_limit}>)"))
                account.catalog.check_prefix(sha, got[0][1] if got else b"", 0, f"{self.name} part of UID {uid}")
                device.partial.add(sha)
                outcome.partial_bodies += 1

    def open_body(self, c, account, device, uid, sha, outcome) -> None:
        self._take_bodies(self._uid_fetch(c, str(uid), "(UID BODY.PEEK[])"), account, device, outcome, uid)
        self._store_seen(c, uid)


@dataclass(frozen=True)
class NeoMutt(ImapClient):
    """NeoMutt over IMAP with its header cache (neomutt ``imap/message.c``).

    - First sync: one FETCH of every header with its field list, ``UID FETCH 1:* (UID FLAGS INTERNALDATE
      RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM SENDER SUBJECT TO CC MESSAGE-ID REFERENCES CONTENT-TYPE
      CONTENT-DESCRIPTION IN-REPLY-TO REPLY-TO LINES LIST-POST LIST-SUBSCRIBE LIST-UNSUBSCRIBE X-LABEL
      X-ORIGINAL-TO)])`` (NeoMutt sends it by sequence number, ``FETCH 1:n``).
    - Each later sync, with the header cache: ``UID FETCH 1:<uidnext-1> (UID FLAGS)``, then the headers of the
      new UIDs.
    - Opening a message: ``UID FETCH n BODY.PEEK[]``, then ``UID STORE n +FLAGS.SILENT (\\Seen)``. No bodies
      otherwise (header-first). CONDSTORE/QRESYNC off by default; IDLE off.
    """

    name: str = "neomutt"
    poll_s: float = 300.0  # imap_keepalive 300 s; mail_check is 5 s while the user looks at the index
    header_fields = ("DATE FROM SENDER SUBJECT TO CC MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION "
                     "IN-REPLY-TO REPLY-TO LINES LIST-POST LIST-SUBSCRIBE LIST-UNSUBSCRIBE X-LABEL X-ORIGINAL-TO")
    flag_items = "(UID FLAGS)"
    seen_store = "+FLAGS.SILENT"

    def header_items(self) -> str:
        return f"(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({self.header_fields})])"

    def flag_sync(self, c, device, outcome):
        if not device.uids:
            return None  # no header cache yet: the header FETCH below brings the flags
        hi = max(device.uids)
        modifiers = ()
        if outcome.condstore_used and device.highest_modseq:
            modifiers = (f"(CHANGEDSINCE {device.highest_modseq})",)
        return self._flags_of(self._uid_fetch(c, f"1:{hi}", self.flag_items, *modifiers))

    def sync(self, c, account, device, n, outcome) -> None:
        if not n:
            return
        flags = self.flag_sync(c, device, outcome)
        if flags is not None:
            self.apply_flags(device, flags, not (outcome.condstore_used and device.highest_modseq))
        hi = max(device.uids, default=0)
        self._take_headers(self._uid_fetch(c, f"{hi + 1}:*", self.header_items()), account, device, outcome)
        if outcome.modseq_at_select:
            device.highest_modseq = outcome.modseq_at_select

    def open_body(self, c, account, device, uid, sha, outcome) -> None:
        self._take_bodies(self._uid_fetch(c, str(uid), "BODY.PEEK[]"), account, device, outcome, uid)
        self._store_seen(c, uid)


@dataclass(frozen=True)
class Mbsync(ImapClient):
    """mbsync (isync), the offline mirror (noahvogt/isync ``src/drv_imap.c``).

    - Every UID and its flags on each run: ``UID FETCH 1:* (UID FLAGS)``.
    - Each new message whole: ``UID FETCH n (BODY.PEEK[])`` one by one.
    - Reading happens in the local mail reader; the next run pushes ``UID STORE n +FLAGS (\\Seen)``.
    """

    name: str = "mbsync"
    poll_s: float = 900.0
    flag_items = "(UID FLAGS)"

    def fetch_headers(self, c, account, device, uids, outcome) -> None:
        for uid in uids:  # mbsync learns a message by its body
            self._take_bodies(self._uid_fetch(c, str(uid), "(UID BODY.PEEK[])"), account, device, outcome, uid)

    def after_headers(self, c, account, device, new, outcome) -> None:
        pass


# -- POP3 ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pop3Client:
    """The shape every POP3 profile shares: log in, learn the maildrop, fetch what is new, maybe delete.

    Read state under POP3 lives only on the device (the protocol has no flags)."""

    name: str = "pop3"
    poll_s: float = 600.0
    capa: bool = True
    list_before_uidl: bool = True
    headers_only: bool = False  # TOP n 0 for new messages, RETR when opened
    large_limit: int = 0  # above this size: TOP n <limit/76> instead of RETR (0: never)
    delete: bool = False  # DELE every retrieved message
    uidl: bool = True
    idle: bool = False
    protocol: str = "pop3"

    def run(self, account: Account, device: Device, to_read: set[str], condstore: bool = False) -> SyncOutcome:
        trace = Trace()
        outcome = SyncOutcome(client=self.name, result=None)
        try:
            c = TracedPOP3(account.host, account.pop3_port, trace, timeout=account.timeout)
        except OSError as exc:
            raise SessionError(f"{self.name}: POP3 connect to {account.host}:{account.pop3_port} failed: "
                               f"{exc}") from exc
        quit_sent = False
        try:
            caps = _pop3_capabilities(c) if self.capa else {"UIDL", "TOP"}
            try:
                c.user(account.user)
                c.pass_(account.password)
            except poplib.error_proto as exc:
                raise SessionError(f"{self.name}: POP3 login as {account.user!r} refused: {exc}") from exc
            n, _ = c.stat()
            n = self._session_body(c, account, device, to_read, outcome, n, caps)
            c.quit()
            quit_sent = True
        except (poplib.error_proto, OSError) as exc:
            raise SessionError(f"{self.name}: POP3 session to {account.host}:{account.pop3_port} failed: "
                               f"{exc or type(exc).__name__}") from exc
        finally:
            if not quit_sent:
                with contextlib.suppress(OSError):
                    c.close()
        spec = SessionSpec(protocol="pop3", strategy="download-all",
                           pop3_mode="delete" if self.delete else "keep")
        outcome.result = _finish(spec, trace, n, headers_fetched=outcome.headers, bodies_fetched=outcome.bodies)
        return outcome

    def _session_body(self, c, account, device, to_read, outcome, n, caps) -> int:
        sizes: dict[int, int] = {}
        uidls: dict[int, str] = {}

        def do_list():
            if n:
                for line in c.list()[1]:
                    num, size = line.split()[:2]
                    sizes[int(num)] = int(size)

        if self.list_before_uidl:
            do_list()
        if n and self.uidl and "UIDL" in caps:
            for line in c.uidl()[1]:
                num, uidl = line.split(None, 1)
                uidls[int(num)] = uidl.decode("ascii", "replace")
        if not self.list_before_uidl:
            do_list()
        new = [i for i in range(1, n + 1) if self.delete or uidls.get(i) not in device.pop3_seen_uidls]
        bodies = [i for i in new if not self.headers_only
                  and not (self.large_limit and sizes.get(i, 0) > self.large_limit)]
        tops = [i for i in new if i not in bodies]
        for i, (_resp, lines) in zip(bodies, _pop3_run(c, [f"RETR {i}" for i in bodies], True, False)):
            raw = _joined(lines)
            sha = account.catalog.check_message(raw, f"{self.name} RETR {i}")
            if sha not in device.listed:
                outcome.new_listed.append(sha)
            device.remember(sha, raw, uidls.get(i))
            outcome.bodies += 1
        lines_for_top = self.large_limit // 76 if not self.headers_only else 0
        for i, (_resp, lines) in zip(tops, _pop3_run(c, [f"TOP {i} {lines_for_top}" for i in tops], True,
                                                      False)):
            data = _joined(lines)
            sha = account.catalog.check_header(header_of(data), f"{self.name} TOP {i}")
            account.catalog.check_prefix(sha, data, 0, f"{self.name} TOP {i}")
            if sha not in device.listed:
                outcome.new_listed.append(sha)
                device.listed.add(sha)
            if lines_for_top:
                device.partial.add(sha)
                outcome.partial_bodies += 1
            else:
                outcome.headers += 1
            if i in uidls:
                device.pop3_seen_uidls.add(uidls[i])
                device.uidl_sha[uidls[i]] = sha
        self._read(c, account, device, to_read, outcome, uidls)
        if self.delete:
            _pop3_run(c, [f"DELE {i}" for i in bodies], False, False)
        return n

    def _read(self, c, account, device, to_read, outcome, uidls) -> None:
        """The user opens messages: held ones are marked read locally; a header-only one is RETRieved first."""
        num_of = {device.uidl_sha.get(u): i for i, u in uidls.items()}
        for sha in sorted(to_read, key=lambda s: num_of.get(s, 0)):
            if sha not in device.listed:
                continue
            if sha not in device.store:
                i = num_of.get(sha)
                if i is None:
                    continue  # no longer on the server: only its header is here
                raw = _joined(c.retr(i)[1])
                if account.catalog.check_message(raw, f"{self.name} RETR {i}") != sha:
                    raise IntegrityError(f"{self.name}: RETR {i} came back as another message")
                device.remember(sha, raw, uidls.get(i))
                outcome.bodies += 1
            device.seen.add(sha)
            outcome.read.append(sha)


def _pop3(name: str, doc: str, **kw) -> Pop3Client:
    profile = Pop3Client(name=name, **kw)
    object.__setattr__(profile, "__doc__", doc)
    return profile


PROFILES: dict[str, object] = {
    "thunderbird": Thunderbird(),
    "thunderbird-online": ThunderbirdOnline(),
    "k9": K9(),
    "neomutt": NeoMutt(),
    "mbsync": Mbsync(),
    "thunderbird-pop3": _pop3(
        "thunderbird-pop3",
        "Thunderbird over POP3 (thunderbird-desktop mailnews/local/src/Pop3Client.sys.mjs): CAPA, USER/PASS, STAT, "
        "LIST, UIDL, then RETR of the messages whose UIDL this device has not seen (popstate.dat); leave on "
        "server; a check every 10 minutes.", poll_s=600.0),
    "thunderbird-pop3-headers": _pop3(
        "thunderbird-pop3-headers",
        "Thunderbird over POP3 with 'fetch headers only' (Pop3Client.sys.mjs): as thunderbird-pop3, but "
        "TOP n 0 for new messages and RETR when the user opens one.", poll_s=600.0, headers_only=True),
    "k9-pop3": _pop3(
        "k9-pop3",
        "K-9 Mail over POP3 (thunderbird-android Pop3Folder.java): USER/PASS, STAT, UIDL, LIST, then RETR for "
        "messages up to 131,072 bytes and TOP n <131072/76> for larger ones; delete policy NEVER; a poll every "
        "15 minutes.", poll_s=900.0, capa=False, list_before_uidl=False, large_limit=131072),
    "pop3-delete": _pop3(
        "pop3-delete",
        "The classic single device (RFC 1939; imaptest pop3-profile.conf): CAPA, USER/PASS, STAT, LIST, UIDL, "
        "RETR of every message, then DELE of each.", poll_s=600.0, delete=True),
}
CLIENTS = tuple(PROFILES)


def get_profile(name: str):
    """The client profile called ``name``; ValueError naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown client profile {name!r}; choose one of {', '.join(CLIENTS)}") from None
