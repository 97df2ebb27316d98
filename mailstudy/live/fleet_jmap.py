"""JMAP devices for the fleet: client profiles that sync one account over JMAP (RFC 8620, RFC 8621) poll by poll.

Why: issue 20 asks for the devices view with JMAP beside IMAP and POP3. The fleet (:mod:`mailstudy.live.fleet`)
runs a device's poll as ``profile.run(account, device, to_read)``; a :class:`JmapProfile` is such a profile,
kept apart from the IMAP and POP3 profiles of :mod:`mailstudy.live.client_profiles` because those are measured
clients with sources in their code, and no JMAP client has been measured here: every value below is ours.

What a JMAP device sends in a poll (one TCP connection, ``http.client`` over the traced socket as in
:mod:`mailstudy.live.jmap`):

- the first sync: discovery (``GET /.well-known/jmap``; the session resource is kept for later polls, as RFC 8620
  section 2 lets a client), then the list: ``Email/query`` + ``Email/get`` by back-reference (header-first:
  :data:`~mailstudy.live.jmap.LIST_PROPERTIES`, with ``keywords``; offline: also every blob, one GET each);
- every later sync: ``Email/changes`` since the device's state, with ``Email/get`` of the created emails (the
  list's properties) and of the updated ones (``keywords``) by back-references: one request (more only when the
  server says ``hasMoreChanges``); an offline device then downloads each new blob;
- what the user reads on this device: the blob of each message not held yet (one GET each), then one
  ``Email/set`` that sets ``$seen`` on all of them, so the other devices see them read at their next
  ``Email/changes`` (the read state is the server's, as under IMAP). When the ``Email/set``'s ``oldState`` is
  the device's own state, the device takes its ``newState`` (its own change is not fetched back).

No push: Debian's Cyrus 3.6.1 answers JMAP's EventSource with 204 (built without WebSockets), so a JMAP device
polls (:mod:`mailstudy.live.jmap_sync` measures the 204). Integrity: each listed email is checked by size and
Message-ID, each blob byte for byte, against what was delivered (the fleet's :class:`~mailstudy.live.engine.Catalog`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType

from mailstudy.live.client_profiles import get_client
from mailstudy.live.devices import Device
from mailstudy.live.engine import Destination, SessionError, SyncOutcome, measure
from mailstudy.live.jmap import (JMAP_SERVERS, LIST_PROPERTIES, JmapClient, JmapSpec, check_listed, list_emails,
                                open_jmap)
from mailstudy.live.jmap_sync import changes_calls
from mailstudy.live.trace import Trace

OURS = "ours: no JMAP client measured here; Debian's Cyrus 3.6.1 offers no push (EventSource answers 204)"
#: the offline profile's list: what it needs to download each message and know its read state
OFFLINE_PROPERTIES = ["id", "blobId", "size", "keywords", "messageId"]
FIRST_SYNCS = ("header-first", "download-all")


@dataclass(frozen=True)
class JmapProfile:
    """A JMAP client profile: the fields the fleet reads of every profile, and how its first sync lists."""

    name: str
    summary: str
    poll_s: float
    first_sync: str = "header-first"  # header-first: list, open on demand; download-all: every body (offline)
    protocol: str = "jmap"
    idle: bool = False  # no push to wait on (see the module docstring)
    keep_connection: bool = False
    new_mail: str = "poll"
    idle_renew_s: float = 0.0
    keepalive_s: float = 0.0
    poll_user_set: bool = True
    compression: bool = False  # Accept-Encoding: identity, as http.client sends
    read_all: bool = False
    host: str = field(default="", compare=False)  # where the device connects (:meth:`at`)
    http_port: int = field(default=0, compare=False)
    sources: MappingProxyType = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.first_sync not in FIRST_SYNCS:
            raise ValueError(f"first_sync must be one of {FIRST_SYNCS}, not {self.first_sync!r}")

    def source(self, name: str) -> str:
        return self.sources.get(name, OURS)

    def at(self, host: str, http_port: int) -> JmapProfile:
        """This profile connecting to ``host``:``http_port`` (the server's JMAP port, or its link's)."""
        return replace(self, host=host, http_port=http_port)

    def run(self, account: Destination, device: Device, to_read: set[str], condstore: bool = False) -> SyncOutcome:
        """One poll: connect, sync (first sync or ``Email/changes``), open and mark read what the user reads here.
        ``condstore`` is IMAP's; JMAP's change sync is always by state."""
        if not self.http_port:
            raise SessionError(f"JMAP device {device.name}: no JMAP port (the server speaks no JMAP)")
        out, trace = SyncOutcome(client=self.name), Trace()
        client = open_jmap(self.host, self.http_port, account.user, account.password, trace,
                           timeout=account.timeout, session=device.jmap_session)
        try:
            device.jmap_session = client.session
            if device.jmap_state:
                self.changes(client, account, device, out)
            else:
                self.first(client, account, device, out)
            trace.mark("list_ready")
            self.read(client, account, device, to_read, out)
        finally:
            client.close()
        out.result = measure(JmapSpec(strategy=self.first_sync), trace, len(device.listed),
                             headers_fetched=out.headers, bodies_fetched=out.bodies)
        return out

    def first(self, client: JmapClient, account: Destination, device: Device, out: SyncOutcome) -> None:
        emails, device.jmap_state = list_emails(client, LIST_PROPERTIES if self.first_sync == "header-first"
                                                else OFFLINE_PROPERTIES)
        check_listed(emails, account.catalog)
        for e in emails:
            self.show(client, account, device, e, out)

    def changes(self, client: JmapClient, account: Destination, device: Device, out: SyncOutcome) -> None:
        while True:
            responses = {call_id: args for _name, args, call_id in client.call(changes_calls(client.account,
                                                                                            device.jmap_state))}
            changed, created, updated = responses["c"], responses["n"]["list"], responses["u"]["list"]
            device.forget([device.jmap_ids[j] for j in changed.get("destroyed", []) if j in device.jmap_ids])
            check_listed(created, account.catalog)
            for e in created:
                self.show(client, account, device, e, out)
            for e in updated:
                flag(device, device.jmap_ids.get(e["id"]), e.get("keywords") or {})
            device.jmap_state = changed["newState"]
            if not changed.get("hasMoreChanges"):
                return

    def show(self, client: JmapClient, account: Destination, device: Device, e: dict, out: SyncOutcome) -> None:
        """An email the device lists (checked by :func:`check_listed`): held whole when the profile is offline."""
        sha = account.catalog.by_message_id[f"<{e['messageId'][0]}>".encode()]
        if sha not in device.listed:
            out.new_listed.append(sha)
        device.listed.add(sha)
        device.jmap_ids[e["id"]], device.jmap_blobs[e["id"]] = sha, e["blobId"]
        out.headers += 1
        if self.first_sync == "download-all" and sha not in device.store:
            self.download(client, account, device, e["id"], out)
        flag(device, sha, e.get("keywords") or {})

    def download(self, client: JmapClient, account: Destination, device: Device, jid: str,
                 out: SyncOutcome) -> None:
        raw = client.download(device.jmap_blobs[jid])
        sha = account.catalog.check_message(raw, f"JMAP email {jid}")
        if sha != device.jmap_ids[jid]:
            raise SessionError(f"JMAP email {jid}: its blob is another message than the one listed")
        device.remember(sha, raw)
        out.bodies += 1

    def read(self, client: JmapClient, account: Destination, device: Device, to_read: set[str],
             out: SyncOutcome) -> None:
        """The user opens what is read here and listed: each body not held, then one ``Email/set`` of ``$seen``."""
        ids = {sha: jid for jid, sha in device.jmap_ids.items()}
        opened = [ids[sha] for sha in sorted(to_read & device.listed, key=lambda s: ids[s])]
        if not opened:
            return
        for jid in opened:
            if device.jmap_ids[jid] not in device.store:
                self.download(client, account, device, jid, out)
        done = client.response(client.call([["Email/set", {
            "accountId": client.account, "update": {jid: {"keywords/$seen": True} for jid in opened}}, "s"]]),
            "Email/set")
        refused = done.get("notUpdated") or {}
        if refused:
            raise SessionError(f"JMAP method Email/set refused $seen on {len(refused)} emails: "
                               f"{next(iter(refused.values())).get('type')}")
        if done.get("oldState") == device.jmap_state and done.get("newState"):
            device.jmap_state = done["newState"]
        for jid in opened:
            out.read.append(device.jmap_ids[jid])
            device.seen.add(device.jmap_ids[jid])


def flag(device: Device, sha: str | None, keywords: dict) -> None:
    """The device shows ``sha`` read or unread as the server's ``$seen`` keyword says."""
    if sha is None:
        return
    if keywords.get("$seen"):
        device.seen.add(sha)
    else:
        device.seen.discard(sha)


JMAP_CLIENTS = MappingProxyType({p.name: p for p in (
    JmapProfile(name="jmap", poll_s=900.0, summary="JMAP, header-first: the list with previews in one request, "
                "each message opened on demand, Email/changes every poll, $seen by Email/set"),
    JmapProfile(name="jmap-offline", poll_s=900.0, first_sync="download-all",
                summary="JMAP, offline: the list, then every body (one GET per blob), Email/changes every poll"),
)})


def is_jmap(name: str) -> bool:
    return name in JMAP_CLIENTS


def refusal(clients, server: str, serves_jmap: bool) -> str | None:
    """Why a fleet of ``clients`` cannot run on ``server`` (None: it can): a JMAP client needs a JMAP server."""
    jmap = sorted({c for c in clients if is_jmap(c)})
    if not jmap or serves_jmap:
        return None
    return (f"client profile {', '.join(jmap)} speaks JMAP, which the {server} server does not serve "
            f"(use --server {' or '.join(JMAP_SERVERS)})")


def device_profile(name: str):
    """The client profile a fleet device runs: a JMAP one of :data:`JMAP_CLIENTS`, else IMAP's or POP3's."""
    return JMAP_CLIENTS[name] if is_jmap(name) else get_client(name)
