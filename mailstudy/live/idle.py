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

import contextlib
import re

from mailstudy.live.access import SessionError
from mailstudy.live.client_profiles import SEEN, Account, ImapClient, SyncOutcome
from mailstudy.live.devices import Device
from mailstudy.live.trace import Trace

KEEPALIVE_S = 29 * 60
EXISTS_WAIT_S = 2.0  # how long to wait for the server's EXISTS after a delivery before sending DONE anyway
_EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.IGNORECASE)
_PUSHED_FLAGS = re.compile(rb"^\* (\d+) FETCH \(.*FLAGS \(([^)]*)\)", re.IGNORECASE)


class IdleConnection:
    """One device's IDLE connection: :meth:`open`, then :meth:`wake` per delivery, :meth:`keepalive`, :meth:`close`.

    Each call returns a :class:`SyncOutcome` (new messages, reads); :meth:`close` also gives the whole
    connection's metrics as ``outcome.result``."""

    def __init__(self, profile: ImapClient, account: Account, device: Device, condstore: bool = False) -> None:
        self.profile, self.account, self.device, self.condstore = profile, account, device, condstore
        self.trace = Trace()
        self.totals = SyncOutcome(client=profile.name, result=None)
        self.c = None
        self.n = 0
        self.tag: bytes | None = None

    # -- the four moments -------------------------------------------------------------------------------------
    def open(self, to_read: set[str]) -> SyncOutcome:
        out = SyncOutcome(client=self.profile.name, result=None)
        self.c, self.n = self.profile.connect(self.account, self.device, self.condstore, self.trace, out)
        self._guard(lambda: self._full_sync(out, to_read))
        self._guard(self._idle)
        return self._add(out)

    def wake(self, to_read: set[str]) -> SyncOutcome:
        """New mail was delivered: take the EXISTS, fetch what is new, read, and IDLE again."""
        out = SyncOutcome(client=self.profile.name, result=None)

        def work():
            self._wait_exists()
            self._done()
            hi = max(self.device.uids, default=0)
            flags = self.profile._flags_of(self.profile._uid_fetch(self.c, f"{hi + 1}:*", self.profile.flag_items))
            new = sorted(u for u in flags if u > hi)
            if new:
                self.profile.fetch_headers(self.c, self.account, self.device, new, out)
                self.profile.after_headers(self.c, self.account, self.device, new, out)
            self.profile.open_messages(self.c, self.account, self.device, to_read, out)
            self._exists_seen_by_imaplib()
            self._idle()

        self._guard(work)
        return self._add(out)

    def keepalive(self) -> SyncOutcome:
        out = SyncOutcome(client=self.profile.name, result=None)
        self._guard(lambda: (self._done(), self._idle()))
        return out

    def close(self, final_sync: bool = True) -> SyncOutcome:
        """End the connection (after a full sync when ``final_sync``); the outcome holds its metrics."""
        out = SyncOutcome(client=self.profile.name, result=None)

        def work():
            self._done()
            if final_sync:
                self._full_sync(out, set())
            self.c.logout()

        try:
            self._guard(work)
        finally:
            with contextlib.suppress(OSError):
                self.c.shutdown()
        self._add(out)
        out.result = self.profile.finish(self.trace, self.n, self.totals)
        return out

    def drop(self) -> SyncOutcome:
        """The device is lost: the connection ends without a goodbye; the outcome holds its metrics."""
        with contextlib.suppress(OSError):
            self.c.shutdown()
        out = SyncOutcome(client=self.profile.name, result=None)
        out.result = self.profile.finish(self.trace, self.n, self.totals)
        return out

    # -- steps --------------------------------------------------------------------------------------------------
    def _full_sync(self, out: SyncOutcome, to_read: set[str]) -> None:
        self.profile.sync(self.c, self.account, self.device, self.n, out)
        self.trace.mark("list_ready")
        self.profile.open_messages(self.c, self.account, self.device, to_read, out)
        self._exists_seen_by_imaplib()

    def _exists_seen_by_imaplib(self) -> None:
        """EXISTS that arrived during a command imaplib ran (it keeps them in ``untagged_responses``)."""
        seen = self.c.untagged_responses.pop("EXISTS", None)
        if seen:
            self.n = max(self.n, int(seen[-1]))

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
        before = self.n
        c.sock.settimeout(EXISTS_WAIT_S)
        try:
            while self.n <= before:
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
            self.n = int(m.group(1))
            return
        m = _PUSHED_FLAGS.match(line)
        if m:  # another device changed flags: seq n is the n-th UID this device knows (it knows them all)
            uids = sorted(self.device.uids)
            seq = int(m.group(1))
            if 0 < seq <= len(uids):
                sha = self.device.uids[uids[seq - 1]]
                (self.device.seen.add if SEEN in m.group(2).split() else self.device.seen.discard)(sha)

    def _guard(self, work) -> None:
        import imaplib

        try:
            work()
        except (imaplib.IMAP4.error, OSError) as exc:
            raise self.profile.failed(self.account, exc) from exc

    def _add(self, out: SyncOutcome) -> SyncOutcome:
        t = self.totals
        t.headers += out.headers
        t.bodies += out.bodies
        t.partial_bodies += out.partial_bodies
        t.condstore_offered, t.condstore_used = out.condstore_offered or t.condstore_offered, \
            out.condstore_used or t.condstore_used
        return out
