"""How an IMAP client profile syncs: the steps every IMAP client takes, each chosen by a field of its profile.

Why a module of its own: :mod:`mailstudy.live.client_profiles` says *what* each client does (a table of frozen
values with their sources); this module says *how* those values turn into commands, once for all clients, over
the engine's :class:`~mailstudy.live.engine.ImapConnection`. A poll (:meth:`ImapSync.sync` then
:meth:`ImapSync.open_messages`) and an IDLE connection (:mod:`mailstudy.live.idle`) use the same steps.
"""

from __future__ import annotations

from mailstudy.live.devices import Device
from mailstudy.live.engine import (
    Destination,
    ImapConnection,
    SEEN,
    IntegrityError,
    SyncOutcome,
    is_seen,
    message_data,
)
from mailstudy.protocol.imap_response import Fetch


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


class ImapSync:
    """One IMAP client profile at work on one connection for one device; every step reads the profile's fields."""

    def __init__(self, profile, conn: ImapConnection, account: Destination, device: Device, outcome: SyncOutcome):
        self.p, self.conn, self.account, self.device, self.out = profile, conn, account, device, outcome
        self.catalog = account.catalog
        self.not_old: set[int] = set()  # listed unread and without the Old keyword (mark_old)
        self.seen_later: list[int] = []  # opened here, marked \\Seen on leaving (open_marks_seen = on-leave)

    # -- learning what changed --------------------------------------------------------------------------------
    def sync(self) -> None:
        """The profile's change sync (its ``listing``), then the new messages (its ``learn`` and ``bodies``)."""
        {"all-flags": self._sync_all_flags, "window": self._sync_window,
         "header-cache": self._sync_header_cache}[self.p.listing]()
        if self.out.modseq_at_select:
            self.device.highest_modseq = self.out.modseq_at_select

    def _changedsince(self) -> tuple[str, ...]:
        """``(CHANGEDSINCE m)`` when CONDSTORE is in use and the device has a MODSEQ from before, else nothing."""
        if self.out.condstore_used and self.device.highest_modseq:
            return (f"(CHANGEDSINCE {self.device.highest_modseq})",)
        return ()

    def flags(self, uids: str, changedsince: bool = True) -> dict[int, bool]:
        """``UID FETCH uids (FLAGS)`` as ``{uid: seen}`` (only changed ones with CONDSTORE); a client that lists by
        position (``flag_by_sequence``) sends ``FETCH`` over sequence numbers, never with CHANGEDSINCE."""
        if self.p.flag_by_sequence:
            got = self.conn.fetch(uids, self.p.flag_items)
        else:
            got = self.conn.uid_fetch(uids, self.p.flag_items, *(self._changedsince() if changedsince else ()))
        self.note_old(got)
        return {f.uid: is_seen(f) for f in got if f.uid is not None}

    def note_old(self, got: list[Fetch]) -> None:
        """Remember the UIDs that are neither seen nor ``Old`` (NeoMutt marks them Old when it leaves)."""
        for f in got:
            flags = f.items.get("FLAGS")
            if f.uid is not None and isinstance(flags, list) and not {SEEN, b"Old"} & set(flags):
                self.not_old.add(f.uid)
            elif f.uid is not None:
                self.not_old.discard(f.uid)

    def flag_set(self) -> str:
        """The message set of the profile's flags listing: ``1:*``, ``1:<UIDNEXT-1>`` (mbsync) or ``1:<EXISTS>``
        (getmail)."""
        top = {"1:*": "*", "1:uidnext": str((self.conn.uidnext or self.conn.n + 1) - 1),
               "1:exists": str(self.conn.n)}[self.p.flag_set]
        return f"1:{top}"

    def apply_flags(self, flags: dict[int, bool], full: bool) -> None:
        device = self.device
        for uid, seen in flags.items():
            sha = device.uids.get(uid)
            if sha is not None:
                (device.seen.add if seen else device.seen.discard)(sha)
        if full:  # a message the server no longer has is gone from the device's list (and its offline copy)
            device.forget([s for u, s in device.uids.items() if u not in flags])

    def _sync_all_flags(self) -> None:
        """Thunderbird, mbsync: the flags of every message, then the UIDs the device does not know yet. With
        CONDSTORE the changed-since list holds new UIDs too (a new message has a higher MODSEQ); expunges are not
        seen then (no QRESYNC), as in the clients."""
        flags = self.flags(self.flag_set()) if self.conn.n else {}
        self.apply_flags(flags, self.p.flag_by_sequence or not self._changedsince())
        new = sorted(u for u in flags if self.p.read_all or u not in self.device.uids)
        if new:
            self.learn(new)
            self.apply_flags({u: flags[u] for u in new}, False)  # bodies carry no flags

    def _sync_window(self) -> None:
        """K-9: the newest ``window`` messages by ``UID SEARCH a:b NOT DELETED``, the flags of the known ones;
        messages that fall out of the window leave the device."""
        n, device = self.conn.n, self.device
        window = sorted(self.conn.uid_search(f"{max(1, n - self.p.window + 1)}:{n}", "NOT", "DELETED")) if n else []
        known = [u for u in window if u in device.uids]
        if known:
            self.apply_flags(self.flags(uid_set(known)), False)
        device.forget([s for u, s in device.uids.items() if u not in set(window)])
        new = [u for u in window if u not in device.uids]
        if new:
            self.learn(new)

    def _sync_header_cache(self) -> None:
        """NeoMutt with its header cache: the flags of ``1:<highest known>``, then the headers of the messages
        past the known ones, by sequence number (``FETCH k+1:n``), only when the mailbox holds more than it knows."""
        if not self.conn.n:
            return
        if self.device.uids:  # without a header cache the header FETCH below brings the flags
            full = not self._changedsince()
            self.apply_flags(self.flags(f"1:{max(self.device.uids)}"), full)
        known = len(self.device.uids)
        if self.conn.n > known:
            got = self.conn.fetch(f"{known + 1}:{self.conn.n}", self.header_items())
            self.note_old(got)
            self.take_headers(got)

    # -- new messages -----------------------------------------------------------------------------------------
    def header_items(self) -> str:
        return f"({self.p.header_attributes} BODY.PEEK[HEADER.FIELDS ({self.p.header_fields})])"

    def learn(self, uids: list[int]) -> None:
        """New messages: their header fields (in sets of at most ``set_limit`` characters) or, for a client that
        learns a message by its body, each body; then the bodies the profile's ``bodies`` policy fetches."""
        if self.p.learn == "bodies":  # one UID FETCH each, up to pipelining_depth of them in flight
            depth = self.p.pipelining_depth
            self.take_bodies(self.conn.uid_fetch_each(uids, self.p.body_items, depth if depth > 1 else None))
        else:
            for uset in split_uid_sets(uids, self.p.set_limit or 1 << 62):
                self.take_headers(self.conn.uid_fetch(uset, self.header_items()))
        {"autosync": self._autosync, "capped": self._capped, "on-open": lambda _uids: None}[self.p.bodies](uids)

    def leave_flags(self) -> None:
        """NeoMutt on leaving a mailbox: ``UID STORE <unread> +FLAGS.SILENT (Old)`` (its ``mark_old``) for the
        messages it listed unread and not yet Old, and the ``\\Seen`` of the messages opened here (``open_marks_seen
        = on-leave``), queued together: one flight of up to ``pipelining_depth`` commands."""
        stores = []
        if self.p.mark_old:
            seen = {u for u, s in self.device.uids.items() if s in self.device.seen}
            old = sorted(self.not_old - seen)
            if old:
                stores.append((uid_set(old), "+FLAGS.SILENT", "(Old)"))
            self.not_old.clear()
        if self.seen_later:
            stores.append((uid_set(self.seen_later), self.p.seen_store, "(\\Seen)"))
            self.seen_later = []
        if stores:
            self.conn.stores(stores, self.p.pipelining_depth)

    def take_headers(self, got: list[Fetch]) -> None:
        device = self.device
        for f in got:
            data = message_data(f)
            if data is None or f.uid is None or f.uid in device.uids:
                continue  # "N:*" returns the last message even when N is past it (RFC 3501 6.4.8)
            sha = self.catalog.identify_fields(data, f"{self.p.name} headers of UID {f.uid}")
            device.uids[f.uid] = sha
            device.sizes[sha] = f.size if f.size is not None else len(self.catalog.by_sha[sha])
            if is_seen(f):
                device.seen.add(sha)
            if sha not in device.listed:
                device.listed.add(sha)
                self.out.new_listed.append(sha)
            self.out.headers += 1

    def take_bodies(self, got: list[Fetch], uid_asked: int | None = None, expect: str | None = None) -> None:
        if expect is not None and all(message_data(f) is None for f in got):
            raise IntegrityError(f"{self.p.name}: UID {uid_asked} came back without its body")
        for f in got:
            raw = message_data(f)
            if raw is None:
                continue
            uid = f.uid if f.uid is not None else uid_asked
            sha = self.catalog.check_message(raw, f"{self.p.name} body of UID {uid}")
            if expect is not None and sha != expect:
                raise IntegrityError(f"{self.p.name}: UID {uid} came back as another message")
            self.device.uids.setdefault(uid, sha)
            if sha not in self.device.listed:
                self.out.new_listed.append(sha)
            self.device.remember(sha, raw)
            self.out.bodies += 1

    def _autosync(self, uids: list[int]) -> None:
        """Thunderbird's offline autosync: ``BODY.PEEK[]`` in groups of up to ``autosync_group_bytes``."""
        group: list[int] = []
        total = 0
        for uid in sorted(uids):
            size = self.device.sizes.get(self.device.uids[uid], 0)
            if group and total + size > self.p.autosync_group_bytes:
                self.take_bodies(self.conn.uid_fetch(uid_set(group), "(UID BODY.PEEK[])"))
                group, total = [], 0
            group.append(uid)
            total += size
        if group:
            self.take_bodies(self.conn.uid_fetch(uid_set(group), "(UID BODY.PEEK[])"))

    def _capped(self, uids: list[int]) -> None:
        """K-9: each body whole up to ``body_limit`` bytes, a larger one only its first ``body_limit`` bytes."""
        for uid in uids:
            sha = self.device.uids[uid]
            if self.device.sizes.get(sha, 0) <= self.p.body_limit:
                self.take_bodies(self.conn.uid_fetch(str(uid), "(UID BODY.PEEK[])"), uid)
                continue
            got = [message_data(f) for f in self.conn.uid_fetch(str(uid), f"(UID BODY.PEEK[]<0.{self.p.body_limit}>)")]
            part = next((g for g in got if g is not None), b"")
            self.catalog.check_prefix(sha, part, f"{self.p.name} part of UID {uid}")
            self.device.partial.add(sha)
            self.out.partial_bodies += 1

    # -- reading ----------------------------------------------------------------------------------------------
    def open_messages(self, to_read: set[str]) -> None:
        """The user opens ``to_read`` (those this device lists): a held one is marked read with ``UID STORE``,
        another is fetched as the profile opens a message."""
        by_sha = {s: u for u, s in self.device.uids.items()}
        for sha in sorted(to_read, key=lambda s: by_sha.get(s, 0)):
            uid = by_sha.get(sha)
            if uid is None:
                continue  # the device does not list it (yet): the user reads it elsewhere or later
            if sha in self.device.store:
                if not self.conn.c.is_readonly:  # ours: after EXAMINE (offlineimap3, getmail6) read stays local
                    self.conn.store_seen(uid, self.p.seen_store)
            else:
                self.open_body(uid, sha)
                if self.p.open_marks_seen == "store":
                    self.conn.store_seen(uid, self.p.seen_store)
                elif self.p.open_marks_seen == "on-leave":
                    self.seen_later.append(uid)
            self.device.seen.add(sha)
            self.out.read.append(sha)

    def open_body(self, uid: int, sha: str) -> None:
        """``UID FETCH n <open_items>``; above ``open_chunk_above`` bytes in chunks of ``open_chunk`` (Thunderbird:
        ``BODY[]<offset.65536>``, nsImapProtocol.cpp)."""
        size = self.device.sizes.get(sha, 0)
        if not self.p.open_chunk_above or size <= self.p.open_chunk_above:
            self.take_bodies(self.conn.uid_fetch(str(uid), self.p.open_items), uid, expect=sha)
            return
        parts = []
        for off in range(0, size, self.p.open_chunk):
            items = f"(UID{' RFC822.SIZE' if off == 0 else ''} BODY[]<{off}.{self.p.open_chunk}>)"
            part = next((d for d in map(message_data, self.conn.uid_fetch(str(uid), items)) if d is not None), b"")
            self.catalog.check_prefix(sha, part, f"{self.p.name} chunk {off} of UID {uid}", offset=off)
            parts.append(part)
        self.take_bodies([Fetch(0, {"UID": uid, "BODY[]": b"".join(parts)})], uid, expect=sha)
