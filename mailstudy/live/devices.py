"""A simulated mail client's local store: what one device already holds of the shared account.

Why: POP3's keep mode only works because each device remembers the UIDLs it has downloaded; IMAP devices keep
state on the server instead. A :class:`Device` is that memory, kept apart from the strategies that use it so a
study can follow several devices syncing one account. Messages are named by the sha256 of their bytes, so what
an IMAP device and a POP3 device hold can be compared with each other and with what was delivered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Device:
    """One simulated mail client."""

    name: str = "device-1"
    pop3_seen_uidls: set[str] = field(default_factory=set)  # keep mode: UIDLs already downloaded
    store: dict[str, bytes] = field(default_factory=dict)  # sha256 -> message bytes held locally
    # What a fleet follows (mailstudy.live.fleet): the messages the device can list, the ones it shows as read,
    # the IMAP UIDs / POP3 UIDLs it knows them by, and how often it downloaded each body.
    listed: set[str] = field(default_factory=set)
    partial: set[str] = field(default_factory=set)  # bodies held only in part (a capped fetch)
    seen: set[str] = field(default_factory=set)
    uids: dict[int, str] = field(default_factory=dict)  # IMAP UID -> sha256
    uidl_sha: dict[str, str] = field(default_factory=dict)  # POP3 UIDL -> sha256
    sizes: dict[str, int] = field(default_factory=dict)  # sha256 -> size the server reported
    highest_modseq: int = 0  # CONDSTORE: the HIGHESTMODSEQ of the last SELECT
    # JMAP (mailstudy.live.fleet_jmap): the session resource kept from discovery, the Email state of the last
    # sync (what Email/changes starts from; "" before the first), and each email's id -> sha256 and blobId
    jmap_session: dict | None = None
    jmap_state: str = ""
    jmap_ids: dict[str, str] = field(default_factory=dict)
    jmap_blobs: dict[str, str] = field(default_factory=dict)
    body_downloads: Counter = field(default_factory=Counter)  # sha256 -> whole-body downloads
    lost: bool = False
    keep_bytes: bool = True  # False: remember which bodies are held, not their bytes (a fleet of many devices)

    def remember(self, sha256: str, raw: bytes, uidl: str | None = None) -> None:
        self.store[sha256] = raw if self.keep_bytes else b""
        self.listed.add(sha256)
        self.partial.discard(sha256)
        self.body_downloads[sha256] += 1
        if uidl is not None:
            self.pop3_seen_uidls.add(uidl)
            self.uidl_sha[uidl] = sha256

    def forget(self, shas) -> None:
        """The device no longer lists these messages (gone from the server, or out of its window)."""
        for sha in list(shas):
            self.listed.discard(sha)
            self.partial.discard(sha)
            self.seen.discard(sha)
            self.store.pop(sha, None)
        gone = set(shas)
        self.uids = {u: s for u, s in self.uids.items() if s not in gone}
        for jid in [j for j, s in self.jmap_ids.items() if s in gone]:
            del self.jmap_ids[jid]
            self.jmap_blobs.pop(jid, None)

    def lose(self) -> None:
        """The device is lost (stolen, broken): its local store goes with it."""
        held = set(self.listed) | set(self.store)
        self.forget(held)
        self.pop3_seen_uidls.clear()
        self.uidl_sha.clear()
        self.jmap_session, self.jmap_state = None, ""
        self.lost = True

    @property
    def messages_held(self) -> int:
        return len(self.store)
