"""An IMAP device that holds one connection open in IDLE (RFC 2177) instead of polling.

Why: polling shows new mail up to one interval late and pays a login every time; IDLE shows it at once and pays
for a connection held all day, re-issued every 29 minutes (RFC 2177 asks clients to do so before the server's
30-minute autologout timer). A fleet compares the two, so both must be real traffic: this holds a real
connection through the same traced imaplib client the polls use, and the whole connection is one session.

What is sent (Thunderbird's way on its IDLE connection, nsImapProtocol.cpp): after the first full sync, ``IDLE``;
when the server says ``* n EXISTS``, ``DONE``, then ``UID FETCH <highest known + 1>:* (FLAGS)``, the new
messages' headers (and bodies, if the profile syncs them) and the user's reads, then ``IDLE`` again. Flag
changes other devices make arrive as untagged ``FETCH (FLAGS ...)`` pushes and are applied from them. A
keep-alive is ``DONE`` then ``IDLE``. The end of the period is a full sync (``UID FETCH 1:* (FLAGS)``) and
``LOGOUT``. imaplib (before Python 3.14) has no IDLE command, so the IDLE/DONE lines are written with
imaplib's own ``send`` and read with its ``_get_line``; the sans-IO parser knows DONE belongs to IDLE.
"""

from __future__ import annotations

import re

from mailstudy.live.devices import Device
from mailstudy.live.engine import SEEN, Destination, SessionError, SyncOutcome, guarded, measure, open_connection
from mailstudy.live.imap_sync import ImapSync
from mailstudy.live.trace import Trace

KEEPALIVE_S = 29 * 60
EXISTS_WAIT_S = 2.0  # how long to wait for the server's EXISTS after a delivery before sending DONE anyway
_EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.IGNORECASE)
_PUSHED_FLAGS = re.compile(rb"^\* (\d+) FETCH \(.*FLAGS \(([^)]*)\)", re.IGNORECASE)


class IdleConnection:
    """One device's IDLE connection: :meth:`open`, then :meth:`wake` per delivery, :meth:`keepalive`, :meth:`close`.

    Each call returns a :class:`SyncOutcome` (new messages, reads); :meth:`close` also gives the whole
    connection's metrics as ``outcome.result``."""

    def __init__(self, profile, account: Destination, device: Device, condstore: bool = False) -> None:
        self.profile, self.account, self.device, self.condstore = profile, account, device, condstore
        self.trace = Trace()
        self.totals = SyncOutcome(client=profile.name)
        self.conn = None
        self.tag: bytes | None = None

    @property
    def c(self):
        return self.conn.c

    def _sync(self, out: SyncOutcome) -> ImapSync:
        return ImapSync(self.profile, self.conn, self.account, self.device, out)

    # -- the four moments -------------------------------------------------------------------------------------
    def open(self, to_read: set[str]) -> SyncOutcome:
        out = SyncOutcome(client=self.profile.name)
        self.conn = open_connection("imap", self.account, self.trace, self.profile.name,
                                    **self.profile.connection_options(self.condstore))
        out.condstore_offered, out.condstore_used = self.conn.condstore_offered, self.conn.condstore_used
        out.modseq_at_select = self.conn.modseq_at_select
        guarded(self.conn, lambda: self._full_sync(out, to_read))
        guarded(self.conn, self._idle)
        return self._add(out)

    def wake(self, to_read: set[str]) -> SyncOutcome:
        """New mail was delivered: take the EXISTS, fetch what is new, read, and IDLE again."""
        out = SyncOutcome(client=self.profile.name)

        def work():
            self._wait_exists()
            self._done()
            hi = max(self.device.uids, default=0)
            sync = self._sync(out)
            new = sorted(u for u in sync.flags(f"{hi + 1}:*", changedsince=False) if u > hi)
            if new:
                sync.learn(new)
            sync.open_messages(to_read)
            self._exists_seen_by_imaplib()
            self._idle()

        guarded(self.conn, work)
        return self._add(out)

    def keepalive(self) -> SyncOutcome:
        out = SyncOutcome(client=self.profile.name)
        guarded(self.conn, lambda: (self._done(), self._idle()))
        return out

    def close(self, final_sync: bool = True) -> SyncOutcome:
        """End the connection (after a full sync when ``final_sync``); the outcome holds its metrics."""
        out = SyncOutcome(client=self.profile.name)

        def work():
            self._done()
            if final_sync:
                self._full_sync(out, set())
            self.conn.close()

        try:
            guarded(self.conn, work)
        finally:
            self.conn.abort()
        self._add(out)
        out.result = self._measure()
        return out

    def drop(self) -> SyncOutcome:
        """The device is lost: the connection ends without a goodbye; the outcome holds its metrics."""
        self.conn.abort()
        out = SyncOutcome(client=self.profile.name)
        out.result = self._measure()
        return out

    # -- steps --------------------------------------------------------------------------------------------------
    def _measure(self):
        return measure(self.profile.spec, self.trace, self.conn.n, headers_fetched=self.totals.headers,
                       bodies_fetched=self.totals.bodies)

    def _full_sync(self, out: SyncOutcome, to_read: set[str]) -> None:
        sync = self._sync(out)
        sync.sync()
        self.trace.mark("list_ready")
        sync.open_messages(to_read)
        self._exists_seen_by_imaplib()

    def _exists_seen_by_imaplib(self) -> None:
        """EXISTS that arrived during a command imaplib ran (it keeps them in ``untagged_responses``)."""
        seen = self.c.untagged_responses.pop("EXISTS", None)
        if seen:
            self.conn.n = max(self.conn.n, int(seen[-1]))

    def _idle(self) -> None:
        c = self.c
        self.tag = c._new_tag()
        c.send(self.tag + b" IDLE\r\n")
        while True:
            line = c._get_line()
            if line.startswith(b"+"):
                return
            self._untagged(line)
            if line.startswith(self.tag):
                raise SessionError(f"{self.profile.name}: IDLE refused: {line[:120]!r}")

    def _wait_exists(self) -> None:
        """Read what the server pushes until it announces more messages (or a short wait passes)."""
        c = self.c
        before = self.conn.n
        c.sock.settimeout(EXISTS_WAIT_S)
        try:
            while self.conn.n <= before:
                self._untagged(c._get_line())
        except TimeoutError:
            pass  # the EXISTS then comes before DONE's tagged OK
        finally:
            c.sock.settimeout(self.account.timeout)

    def _done(self) -> None:
        c = self.c
        c.send(b"DONE\r\n")
        while True:
            line = c._get_line()
            if line.startswith(self.tag + b" "):
                if not line[len(self.tag) + 1:].upper().startswith(b"OK"):
                    raise SessionError(f"{self.profile.name}: IDLE ended with {line[:120]!r}")
                return
            self._untagged(line)

    def _untagged(self, line: bytes) -> None:
        m = _EXISTS.match(line)
        if m:
            self.conn.n = int(m.group(1))
            return
        m = _PUSHED_FLAGS.match(line)
        if m:  # another device changed flags: seq n is the n-th UID this device knows (it knows them all)
            uids = sorted(self.device.uids)
            seq = int(m.group(1))
            if 0 < seq <= len(uids):
                sha = self.device.uids[uids[seq - 1]]
                (self.device.seen.add if SEEN in m.group(2).split() else self.device.seen.discard)(sha)

    def _add(self, out: SyncOutcome) -> SyncOutcome:
        self.totals.add(out)
        return out
