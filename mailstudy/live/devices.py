"""A simulated mail client's local store: what one device already holds of the shared account.

Why: POP3's keep mode only works because each device remembers the UIDLs it has downloaded; IMAP devices keep
state on the server instead. A :class:`Device` is that memory, kept apart from the strategies that use it so a
study can follow several devices syncing one account.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Device:
    """One simulated mail client."""

    name: str = "device-1"
    pop3_seen_uidls: set[str] = field(default_factory=set)  # keep mode: UIDLs already downloaded
    store: dict[str, bytes] = field(default_factory=dict)  # sha256 -> message bytes held locally

    def remember(self, sha256: str, raw: bytes, uidl: str | None = None) -> None:
        self.store[sha256] = raw
        if uidl is not None:
            self.pop3_seen_uidls.add(uidl)

    @property
    def messages_held(self) -> int:
        return len(self.store)
