"""An IMAP device that holds one connection open between syncs: in IDLE (RFC 2177), or checked with NOOP, or
running its whole sync over it, as each client profile keeps it (:mod:`mailstudy.live.keeping`).

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

A timer (:meth:`KeptConnection.check`) does what the profile's ``new_mail`` says: ``idle`` ends the IDLE and
checks as Thunderbird's biff does (``DONE``, ``NOOP``, ``UID FETCH <highest + 1>:* (FLAGS)``, ``IDLE``);
``noop`` sends ``NOOP`` and fetches what its untagged ``EXISTS`` announces (NeoMutt); ``poll`` sends ``NOOP``
(the check of a pooled connection), selects INBOX again and runs the profile's whole sync (K-9). NOOP, like
IDLE, is written and read line by line so the untagged ``EXISTS`` and ``FETCH (FLAGS ...)`` it brings are
applied by the same reader.
"""

from __future__ import annotations

import re

from mailstudy.live.devices import Device
from mailstudy.live.engine import SEEN, Destination, SessionError, SyncOutcome, guarded, measure, open_connection
from mailstudy.live.imap_sync import ImapSync
from mailstudy.live.keeping import KEPT_WAYS, RFC2177_RENEW_S
from mailstudy.live.trace import Trace
from mailstudy.live.values import ParameterValueError

KEEPALIVE_S = RFC2177_RENEW_S  # the IDLE renewal when the client's own timer is not used
EXISTS_WAIT_S = 2.0  # how long to wait for the server's EXISTS after a delivery before sending DONE anyway
_EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.IGNORECASE)
_PUSHED_FLAGS = re.compile(rb"^\* (\d+) FETCH \(.*FLAGS \(([^)]*)\)", re.IGNORECASE)


class KeptConnection:
    """One device's kept connection: :meth:`open`, then :meth:`wake` per delivery (``idle``), :meth:`check` on the
    client's timer, :meth:`keepalive` (``idle``: DONE and IDLE only), :meth:`close`.

    ``mode`` is the profile's ``new_mail`` (``idle``, ``noop`` or ``poll``). Each call returns a
    :class:`SyncOutcome` (new messages, reads); :meth:`close` also gives the whole connection's metrics as
    ``outcome.result``."""

    def __init__(self, profile, account: Destination, device: Device, condstore: bool = False,
                 mode: str = "idle") -> None:
        if mode not in KEPT_WAYS:
            raise ParameterValueError(f"a kept connection learns of new mail by one of {', '.join(KEPT_WAYS)}, "
                                      f"not {mode!r}")
        self.profile, self.account, self.device, self.condstore, self.mode = profile, account, device, condstore, mode
        self.trace = Trace()
        self.totals = SyncOutcome(client=profile.name)
        self.conn = None
        self.tag: bytes | None = None
        self.idling = False
        self.known_n = 0  # messages the device has taken of the mailbox's EXISTS count

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
        if self.mode == "idle":
            guarded(self.conn, self._idle)
        return self._add(out)

    def wake(self, to_read: set[str]) -> SyncOutcome:
        """New mail was delivered: take the EXISTS, fetch what is new, read, and IDLE again."""
        out = SyncOutcome(client=self.profile.name)

        def work():
            self._wait_exists()
            self._done()
            sync = self._sync(out)
            self._fetch_new(sync)
            sync.open_messages(to_read)
            self._exists_seen_by_imaplib()
            self._idle()

        guarded(self.conn, work)
        return self._add(out)

    def check(self, to_read: set[str]) -> SyncOutcome:
        """The client's timer: check for new mail as the mode says (see the module's docstring), open what the
        user reads here, and (``idle``) wait in IDLE again."""
        out = SyncOutcome(client=self.profile.name)

        def work():
            self._done()
            self._look()
            sync = self._sync(out)
            if self.mode == "poll":
                sync.sync()
            elif self.mode == "idle" or self.conn.n > self.known_n:
                self._fetch_new(sync)
            sync.open_messages(to_read)
            self._exists_seen_by_imaplib()
            self.known_n = self.conn.n
            if self.mode == "idle":
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
                if self.mode != "idle":  # in IDLE the server has told of every message; else look first
                    self._look()
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
        self.known_n = self.conn.n

    def _look(self) -> None:
        """``NOOP`` (its EXISTS says how many messages there are now) and, for ``poll``, SELECT INBOX again (the
        client opens the folder anew for each sync)."""
        self._noop()
        if self.mode == "poll":
            self.conn.select_again()

    def _fetch_new(self, sync: ImapSync) -> None:
        """``UID FETCH <highest known + 1>:* (FLAGS)``, then learn the new messages as the profile does."""
        hi = max(self.device.uids, default=0)
        new = sorted(u for u in sync.flags(f"{hi + 1}:*", changedsince=False) if u > hi)
        if new:
            sync.learn(new)

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
                self.idling = True
                return
            self._untagged(line)
            if line.startswith(self.tag):
                raise SessionError(f"{self.profile.name}: IDLE refused: {line[:120]!r}")

    def _noop(self) -> None:
        """``NOOP``, its untagged responses applied as they come (new EXISTS, flags changed elsewhere)."""
        c = self.c
        tag = c._new_tag()
        c.send(tag + b" NOOP\r\n")
        while True:
            line = c._get_line()
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1:].upper().startswith(b"OK"):
                    raise SessionError(f"{self.profile.name}: NOOP answered {line[:120]!r}")
                return
            self._untagged(line)

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
        """End the IDLE (nothing to do when the connection is not in IDLE)."""
        if not self.idling:
            return
        self.idling = False
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
        # another device changed flags: seq n is the n-th UID this device knows (it knows them all); under poll
        # the whole sync that follows takes the flags (of its window, which need not be all)
        if m and self.mode != "poll":
            uids = sorted(self.device.uids)
            seq = int(m.group(1))
            if 0 < seq <= len(uids):
                sha = self.device.uids[uids[seq - 1]]
                (self.device.seen.add if SEEN in m.group(2).split() else self.device.seen.discard)(sha)

    def _add(self, out: SyncOutcome) -> SyncOutcome:
        self.totals.add(out)
        return out
