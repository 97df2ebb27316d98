"""Change sync and push, JMAP against IMAP: what a client that already holds the mailbox pays to catch up, and
how it learns of new mail while it waits.

Why: these are two of JMAP's promises (issue 20): cheap change sync (``Email/changes``, RFC 8620 section 5.2,
against IMAP's CONDSTORE/QRESYNC, RFC 7162) and push without a held IMAP connection (EventSource, RFC 8620
section 7.3, against IMAP IDLE, RFC 2177). Each side is one real session over a traced socket, measured by the
one parser and metrics definition of its protocol.

What each sends (our choices, written down so a chart says what was measured):

- JMAP change sync: discovery (unless the client kept the session resource: ``session=``), then one POST: ``Email/changes`` since the state the client last saw, with
  ``Email/get`` of the created ids (the list's properties) and of the updated ids (``keywords``) by
  back-references: one round trip after discovery (more only when the server says ``hasMoreChanges``).
- IMAP change sync (CONDSTORE, the way Thunderbird resyncs a folder it knows): CAPABILITY, LOGIN,
  ``SELECT INBOX (CONDSTORE)``, ``UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE m)`` (the flags of every message
  changed or added since mod-sequence ``m``), then the headers of the new UIDs as header-first fetches them,
  LOGOUT. Each new header is checked byte for byte, each new JMAP email by size and Message-ID.
- JMAP push: discovery, then ``GET`` of the session's ``eventSourceUrl`` with ``types=*``, ``closeafter=state``
  and ``ping=0`` on the same connection; a ``200`` stream is read until its ``state`` event, and the time from the
  delivery to that event is the push latency. A server that answers ``204 No Content`` offers no push:
  Debian's Cyrus 3.6.1 does (its ``jmap_pushpoll`` timer is set only when it is built with WebSockets, and
  Debian builds it without wslay: ``cyr_buildinfo`` says ``"wslay": false``). The client then polls, and one poll
  is the change sync above with nothing changed: :func:`run_jmap_poll` measures it.
- IMAP IDLE: CAPABILITY, LOGIN, SELECT, ``IDLE``; the delivery; the server's ``* n EXISTS`` (the latency is from
  the delivery to that line), ``DONE``, LOGOUT. The bytes while waiting are those of the held connection between
  the ``+ idling`` and the delivery.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from mailstudy.live.engine import Destination, SessionError, SessionResult, guarded, measure, open_connection
from mailstudy.live.jmap import LIST_PROPERTIES, check_listed, open_jmap, problem
from mailstudy.live.trace import Trace
from mailstudy.wire import DOWN

HEADER_ITEMS = "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER])"  # what header-first fetches (live/access LIST_ITEMS)


@dataclass(frozen=True)
class SyncSpec:
    """What a change-sync or push session did (its result row's parameters)."""

    protocol: str  # "imap" | "jmap"
    workload: str  # "change-sync" | "poll" | "push"
    compress: str = "identity"


@dataclass
class PushResult:
    """One push measurement: was push offered, how late the client knew, what the wait cost."""

    protocol: str
    offered: bool
    why: str  # why not offered ("" when offered)
    latency_s: float | None  # delivery to the client knowing (None when not offered)
    waiting_bytes_down: int  # bytes the server sent on the held connection while nothing happened
    waiting_bytes_up: int
    result: SessionResult | None


def changes_calls(account: str, since: str) -> list[list]:
    ref = {"resultOf": "c", "name": "Email/changes"}
    return [["Email/changes", {"accountId": account, "sinceState": since}, "c"],
            ["Email/get", {"accountId": account, "properties": LIST_PROPERTIES,
                           "#ids": {**ref, "path": "/created"}}, "n"],
            ["Email/get", {"accountId": account, "properties": ["id", "keywords"],
                           "#ids": {**ref, "path": "/updated"}}, "u"]]


def run_jmap_changes(host: str, http_port: int, user: str, password: str, since_state: str, known,
                     workload: str = "change-sync", compress: str = "identity", timeout: float = 60.0,
                     session: dict | None = None) -> tuple[SessionResult, str]:
    """One JMAP change-sync session from ``since_state``: its measured result (``headers_fetched``: emails new
    since then; ``bodies_fetched`` 0) and the new state. ``session``: the session resource a client kept (no
    discovery: the change sync is then one round trip)."""
    trace = Trace()
    client = open_jmap(host, http_port, user, password, trace, compress, timeout, session)
    created: list[dict] = []
    updated = 0
    state = since_state
    try:
        while True:
            responses = client.call(changes_calls(client.account, state))
            changes = client.response(responses, "Email/changes")
            new = [r[1] for r in responses if r[0] == "Email/get" and r[2] == "n"]
            created += new[0]["list"] if new else []
            updated += len(changes.get("updated", []))
            state = changes["newState"]
            if not changes.get("hasMoreChanges"):
                break
        check_listed(created, known)
        trace.mark("list_ready")
    finally:
        client.close()
    result = measure(SyncSpec("jmap", workload, compress), trace, len(created), headers_fetched=len(created))
    result.metrics["updated"] = updated
    return result, state


def run_jmap_poll(host: str, http_port: int, user: str, password: str, since_state: str, known,
                  compress: str = "identity", session: dict | None = None) -> SessionResult:
    """One poll of a JMAP client without push: a change sync that (usually) finds nothing."""
    return run_jmap_changes(host, http_port, user, password, since_state, known, "poll", compress,
                            session=session)[0]


def jmap_state(host: str, http_port: int, user: str, password: str) -> tuple[str, dict]:
    """The account's current Email state and the session resource (untraced: what a client kept from its last
    sync, the baseline of a later change sync)."""
    client = open_jmap(host, http_port, user, password, Trace())
    try:
        got = client.response(client.call([["Email/get", {"accountId": client.account, "ids": [],
                                                           "properties": ["id"]}, "g"]]), "Email/get")
        return str(got["state"]), client.session
    finally:
        client.close()


def imap_modseq(account: Destination) -> tuple[int, int]:
    """(HIGHESTMODSEQ, highest UID) of INBOX now (untraced: a baseline for a later CONDSTORE resync)."""
    conn = open_connection("imap", account, Trace(), "baseline", condstore=True)
    try:
        uids = guarded(conn, lambda: conn.uid_search("ALL"))
        guarded(conn, conn.close)
    finally:
        conn.abort()
    return conn.modseq_at_select, max(uids, default=0)


def run_imap_changes(account: Destination, modseq: int, last_uid: int) -> SessionResult:
    """One IMAP CONDSTORE resync since ``modseq`` of a client that holds UIDs up to ``last_uid``."""
    trace = Trace()
    conn = open_connection("imap", account, trace, "condstore-resync", condstore=True)
    if not conn.condstore_used:
        conn.abort()
        raise SessionError(f"condstore-resync: the server at {account.host}:{account.imap_port} offers no CONDSTORE")
    counts = {"headers": 0, "updated": 0}

    def work():
        changed = conn.uid_fetch("1:*", "(UID FLAGS)", f"(CHANGEDSINCE {modseq})")
        new = sorted(f.uid for f in changed if f.uid is not None and f.uid > last_uid)
        counts["updated"] = len(changed) - len(new)
        if new:
            for f in conn.uid_fetch(f"{new[0]}:*", HEADER_ITEMS):
                data = f.items.get("BODY[HEADER]")
                if isinstance(data, bytes):
                    account.catalog.check_header(data, f"IMAP header of UID {f.uid}")
                    counts["headers"] += 1
        trace.mark("list_ready")
        conn.close()

    try:
        guarded(conn, work)
    finally:
        conn.abort()
    result = measure(SyncSpec("imap", "change-sync"), trace, conn.n, headers_fetched=counts["headers"])
    result.metrics["updated"] = counts["updated"]
    return result


# -- push ------------------------------------------------------------------------------------------------------
def _event_source_path(template: str) -> str:
    return template.replace("{types}", "*").replace("{closeafter}", "state").replace("{ping}", "0")


def run_jmap_push(host: str, http_port: int, user: str, password: str, deliver: Callable[[], None],
                  wait_s: float = 1.0, timeout: float = 60.0) -> PushResult:
    """Open the EventSource, wait ``wait_s``, ``deliver()``, and time the ``state`` event (see the module
    docstring). A ``204`` answer is a result (push not offered), not an error; any other status is an error."""
    trace = Trace()
    client = open_jmap(host, http_port, user, password, trace, timeout=timeout)
    template = client.session.get("eventSourceUrl")
    try:
        if not template:
            return _no_push(client, trace, "the session resource names no eventSourceUrl")
        path = _event_source_path(template)
        conn = client.conn
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (("Authorization", client.authorization), ("Accept", "text/event-stream")):
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        if resp.status == 204:
            resp.read()
            return _no_push(client, trace, "the server answered 204 No Content to the EventSource request "
                                           "(Cyrus: jmap_pushpoll is 0 when built without WebSockets)")
        if resp.status != 200:
            raise SessionError(f"JMAP EventSource (GET {path}) failed: HTTP {resp.status}: {problem(resp.read())}")
        return _wait_state_event(client, trace, resp, deliver, wait_s)
    except OSError as exc:
        raise SessionError(f"JMAP EventSource failed: {exc or type(exc).__name__}") from exc
    finally:
        client.close()


def _no_push(client, trace: Trace, why: str) -> PushResult:
    client.close()
    return PushResult("jmap", False, why, None, 0, 0, measure(SyncSpec("jmap", "push"), trace, 0))


def _wait_state_event(client, trace: Trace, resp, deliver: Callable[[], None], wait_s: float) -> PushResult:
    n0 = len(trace.chunks)
    time.sleep(wait_s)
    waited = trace.chunks[n0:]
    t0 = time.perf_counter()
    deliver()
    while True:
        line = resp.fp.readline()
        if not line:
            raise SessionError("JMAP EventSource: the stream ended before a state event")
        if line.startswith(b"event: state"):
            latency = time.perf_counter() - t0
            break
    client.close()
    down = sum(len(c.data) for c in waited if c.direction == DOWN)
    up = sum(len(c.data) for c in waited if c.direction != DOWN)
    return PushResult("jmap", True, "", latency, down, up, measure(SyncSpec("jmap", "push"), trace, 0))


def run_imap_idle(account: Destination, deliver: Callable[[], None], wait_s: float = 1.0) -> PushResult:
    """IMAP IDLE: hold the connection ``wait_s``, ``deliver()``, and time the ``* n EXISTS``."""
    trace = Trace()
    conn = open_connection("imap", account, trace, "idle")
    out: dict = {}

    def work():
        c = conn.c
        if "IDLE" not in conn.caps and "IDLE" not in set(c.capabilities):
            raise SessionError(f"idle: the server at {account.host}:{account.imap_port} offers no IDLE")
        tag = c._new_tag()
        c.send(tag + b" IDLE\r\n")
        while not c._get_line().startswith(b"+"):
            pass
        n0 = len(trace.chunks)
        time.sleep(wait_s)
        out["waited"] = trace.chunks[n0:]
        t0 = time.perf_counter()
        deliver()
        while b"EXISTS" not in c._get_line():
            pass
        out["latency"] = time.perf_counter() - t0
        c.send(b"DONE\r\n")
        while not c._get_line().startswith(tag):
            pass
        conn.close()

    try:
        guarded(conn, work)
    finally:
        conn.abort()
    waited = out["waited"]
    down = sum(len(c.data) for c in waited if c.direction == DOWN)
    up = sum(len(c.data) for c in waited if c.direction != DOWN)
    return PushResult("imap", True, "", out["latency"], down, up,
                      measure(SyncSpec("imap", "push"), trace, conn.n))
