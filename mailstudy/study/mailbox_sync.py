"""Change sync on mailboxes of the size people have: naive, CONDSTORE and QRESYNC on 1,000 to 100,000 messages.

Why a module of its own: a device that comes back to a mailbox it knows must learn what changed there. How much
that costs grows with the mailbox for one method and with the changes for the others, and the study's usual
mailboxes (tens to hundreds of messages) hide the difference. This module measures one resynchronisation per
method, mailbox size and number of changes, as real sessions on a real server, and prices them on every network
through the model (:func:`mailstudy.link.predict`: counts from the session, times from the model).

The three methods (RFC 3501, RFC 7162):

* ``naive``: ``SELECT INBOX`` then ``UID FETCH 1:* (FLAGS)``: the flags of every message, whatever changed.
* ``condstore``: ``SELECT INBOX (CONDSTORE)`` then ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)`` with the
  HIGHESTMODSEQ the device saw last: only the messages whose flags changed. It does not learn of expunged
  messages (a client that must, asks for the UID list as well: that is ``naive``'s cost again).
* ``qresync``: ``ENABLE QRESYNC`` then ``SELECT INBOX (QRESYNC (uidvalidity m))``: the server sends the changed
  messages' flags and the expunged UIDs (``VANISHED (EARLIER)``) in the SELECT's own reply, no FETCH.

A change here is one message's flags changed by another device (it becomes ``\\Seen``), spread evenly over the
mailbox. The mailbox is made of small messages (``minimal`` headers, :data:`MESSAGE_BYTES` each): what a flag
sync sends does not depend on the messages' sizes, and 100,000 messages of the study's default corpus would be
about 6 GB. Each cell's sessions run through :data:`mailstudy.link.BASELINE` as the model's inputs are measured,
on the study's network conditions (:mod:`mailstudy.study.network`: by default implicit TLS 1.3 and each profile's
loss). The counts are the same on every seed; the times are given per seed on the profile as that seed samples it
(:meth:`mailstudy.link.Profile.sample`), summarized as every study number is (:mod:`mailstudy.study.intervals`:
the median over the seeds and its 95 % bootstrap interval).

Two times, never added together without saying so: ``work_s`` is the session as measured through the baseline
link (0.5 ms round trips), mostly the server's and the client's processing on this machine; ``duration_s`` is the
model's time for the same session on a profile, which carries that work as measured plus the network.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from mailstudy.corpus.synthetic import make_message
from mailstudy.errors import MailstudyError
from mailstudy.link import BASELINE, Link, get_profile, predict
from mailstudy.live.devices import Device
from mailstudy.live.clients import ClientTLS
from mailstudy.live.engine import Catalog, Destination, ImapConnection, Session, SessionError, run_workload
from mailstudy.live.trace import Trace
from mailstudy.servers import make_server
from mailstudy.study.intervals import median_interval
from mailstudy.study.network import Conditions, conditions as network_conditions

METHODS = ("naive", "condstore", "qresync")
#: The mailbox sizes the issue asks for (messages).
MAILBOXES = (1_000, 10_000, 100_000)
#: How many messages changed since the device's last sync.
CHANGES = (0, 1, 100)
#: Each message's size in bytes (a flag sync never sends a message's content).
MESSAGE_BYTES = 600
#: The profiles a row is priced on by default.
PROFILES = ("lan", "4g", "3g", "satellite-geo")


class MailboxSyncError(MailstudyError, ValueError):
    """A change-sync cell that cannot run (the message says which value and what is allowed)."""


@dataclass(frozen=True)
class SyncSpec:
    """What one resynchronisation session was: its method, the mailbox's size and the changes it found."""

    method: str
    mailbox: int
    changes: int
    protocol: str = "imap"


@dataclass(frozen=True)
class Resync:
    """The workload after the connection's own SELECT (a workload of :func:`mailstudy.live.engine.run_workload`)."""

    spec: SyncSpec
    modseq: int  # the HIGHESTMODSEQ the device saw at its last sync
    received: list = field(default_factory=list)  # the FETCH responses that told the device of a change

    protocol = "imap"

    @property
    def name(self) -> str:
        return f"resync-{self.spec.method}"

    def play(self, conn: ImapConnection, session: Session) -> None:
        if self.spec.method == "naive":
            got = conn.uid_fetch("1:*", "(FLAGS)")
        elif self.spec.method == "condstore":
            got = conn.uid_fetch("1:*", "(FLAGS)", f"(CHANGEDSINCE {self.modseq})")
        else:  # qresync: the SELECT's reply carried the changes
            got = [f for f in fetched(conn) if f]
        self.received.extend(got)


def fetched(conn: ImapConnection) -> list:
    """The FETCH responses a QRESYNC SELECT left in imaplib's untagged responses."""
    return list(conn.c.untagged_responses.pop("FETCH", []))


def check_cell(server: str, mailboxes: Iterable[int], changes: Iterable[int], methods: Iterable[str]) -> None:
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise MailboxSyncError(f"unknown sync method {bad[0]!r}; choose from {', '.join(METHODS)}")
    for n in mailboxes:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1_000_000:
            raise MailboxSyncError(f"a mailbox holds 1 to 1,000,000 messages, not {n!r}")
        for k in changes:
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
                raise MailboxSyncError(f"changes must be whole numbers from 0 to the mailbox size {n}, not {k!r}")


def mailbox_raws(n: int, seed: int = 0) -> list[bytes]:
    return [make_message(seed, i, MESSAGE_BYTES, headers="minimal").raw for i in range(n)]


def spread(n: int, k: int) -> list[int]:
    """``k`` UIDs spread evenly over ``1..n`` (the server assigns UIDs 1..n to a fresh mailbox)."""
    return sorted({1 + (i * n) // k for i in range(k)}) if k else []


#: The capability each method needs from the server (RFC 7162).
NEEDS = {"naive": None, "condstore": "CONDSTORE", "qresync": "QRESYNC"}


def remembered(account: Destination) -> tuple[tuple[int, int], set[str]]:
    """``(UIDVALIDITY, HIGHESTMODSEQ)`` as a device that has just synced remembers them, and the server's
    capabilities."""
    conn = ImapConnection(account, Trace(), "device", condstore=True)
    try:
        uv = conn.c.untagged_responses.get("UIDVALIDITY", [b"0"])[-1]
        return (int(uv), conn.modseq_at_select), conn.caps
    finally:
        conn.close()


def change(account: Destination, uids: list[int]) -> None:
    """Another device marks ``uids`` as read."""
    if not uids:
        return
    conn = ImapConnection(account, Trace(), "other device")
    try:
        for start in range(0, len(uids), 500):
            part = ",".join(map(str, uids[start:start + 500]))
            typ, data = conn.c.uid("STORE", part, "+FLAGS.SILENT", "(\\Seen)")
            if typ != "OK":
                raise SessionError(f"other device: UID STORE failed: {data!r:.200}")
    finally:
        conn.close()


def resync(account: Destination, spec: SyncSpec, state: tuple[int, int]) -> tuple:
    """One traced resynchronisation by ``spec.method`` from the remembered ``state``: its
    :class:`~mailstudy.live.engine.SessionResult` and how many messages' flags it received."""
    options = {"naive": {}, "condstore": {"condstore": True}, "qresync": {"qresync": state}}[spec.method]
    work = Resync(spec, state[1])
    result = run_workload(work, Session(account, Device(), Trace()), **options)
    return result, len(work.received)


def run_mailbox(server: str, n: int, changes: Iterable[int] = CHANGES, methods: Iterable[str] = METHODS,
                repeats: int = 3, seed: int = 0, conditions: str | Conditions = "realistic") -> list:
    """``(SessionResult, flags received)`` of every method (``(SyncSpec, None)`` for one the server does not
    offer) after each number of ``changes`` (in increasing order,
    each counted from the same remembered state) on one mailbox of ``n`` messages, ``repeats`` times each, on a
    fresh ``server`` through the model's baseline link, with the TLS of the network ``conditions``."""
    changes, methods = sorted(set(changes)), list(methods)
    check_cell(server, [n], changes, methods)
    tls = network_conditions(conditions).tls or "none"
    srv = make_server(server, tls=tls != "none")
    srv.mailboxes[srv.account.user] = mailbox_raws(n, seed)
    results = []
    with srv:
        upstreams = [(srv.host, srv.ports_for(p, tls)) for p in ("imap", "pop3")]
        with Link(BASELINE, upstreams, seed=seed) as link:
            client_tls = ClientTLS(tls, network_conditions(conditions).tls_version or "1.3", srv.tls_ca) \
                if tls != "none" else None
            account = Destination(link.host, *link.ports, srv.account.user, srv.account.password, Catalog([]),
                                  timeout=600.0, tls=client_tls)
            state, caps = remembered(account)
            done: list[int] = []
            for k in changes:
                todo = [u for u in spread(n, k) if u not in done] if k else []
                change(account, todo)
                done += todo
                for method in methods:
                    if NEEDS[method] is not None and NEEDS[method] not in caps:
                        results.append((SyncSpec(method, n, k), None))  # the server does not offer it
                        continue
                    for _ in range(repeats):
                        results.append(resync(account, SyncSpec(method, n, k), state))
    return results


def sync_rows(results: Iterable, profiles: Iterable[str] = PROFILES, seeds: Iterable[int] = range(10),
              conditions: str | Conditions = "realistic") -> list[dict]:
    """One row per method, mailbox, changes and profile: the sessions' counts (equal in every repeat), the work
    they took through the baseline link (median), and the model's time on the profile: the median over the seeds
    of each seed's median over the repeats, with its 95 % bootstrap interval (``duration_s_lo``/``_hi``)."""
    net = network_conditions(conditions)
    groups: dict[SyncSpec, list] = {}
    received: dict[SyncSpec, int] = {}
    rows = []
    for r, got in results:
        if got is None:
            rows.append({**asdict(r), "offered": False, "conditions": net.name})
            continue
        groups.setdefault(r.spec, []).append(r)
        received[r.spec] = got
    seeds = list(seeds)
    for spec, rs in groups.items():
        m = rs[0].metrics
        base = {**asdict(spec), "offered": True, "flags_received": received[spec], "conditions": net.name,
                **{k: m.get(k) for k in ("commands", "round_trips", "bytes_up", "bytes_down", "wire_bytes_up",
                                         "wire_bytes_down")},
                "work_s": statistics.median(r.metrics["duration_s"] for r in rs), "repeats": len(rs),
                "seeds": len(seeds)}
        for name in profiles:
            p = get_profile(net.profile(name))
            times = [[predict(r, p.sample(s)) for r in rs] for s in seeds]
            per_seed = [statistics.median(t["duration_s"] for t in ts) for ts in times]
            network = [statistics.median(t["network_s"] for t in ts) for ts in times]
            duration, lo, hi = median_interval(per_seed)
            rows.append({**base, "profile": p.name, "duration_s": duration, "duration_s_lo": lo, "duration_s_hi": hi,
                         "network_s": statistics.median(network)})
    return rows


def sync_table(server: str = "dovecot", mailboxes: Iterable[int] = MAILBOXES, changes: Iterable[int] = CHANGES,
               methods: Iterable[str] = METHODS, profiles: Iterable[str] = PROFILES, repeats: int = 3,
               seeds: Iterable[int] = range(10), conditions: str | Conditions = "realistic",
               progress=None) -> list[dict]:
    """:func:`sync_rows` for every mailbox size (one fresh server each); ``progress(done, total)`` after each."""
    mailboxes, changes, methods = list(mailboxes), list(changes), list(methods)
    check_cell(server, mailboxes, changes, methods)
    rows = []
    for i, n in enumerate(mailboxes):
        results = run_mailbox(server, n, changes, methods, repeats, conditions=conditions)
        rows += sync_rows(results, profiles, seeds, conditions)
        if progress is not None:
            progress(i + 1, len(mailboxes))
    return rows
