"""The seed article's claims, each turned into an experiment with a measured number and a verdict.

Why a module of its own: notebook ``06-the-article-claims`` and ``mailstudy claims`` print the same ledger, so
the experiments and the rules that turn a number into a verdict live once, here. Every row is backed by a run in
the same execution: nothing is read from a cache or typed in by hand.

Verdicts (:data:`VERDICTS`):

* ``supported``: the measurement agrees with the claim;
* ``contradicted``: the measurement says the opposite;
* ``holds-only-when``: true under a condition the article does not state (the row says which);
* ``not-a-protocol-property``: the claim is about something the protocol does not do; the row says what
  decides it instead;
* ``not-measurable-here``: the server measured cannot show it (Cyrus missing, or a feature the server
  declines); the row says why, as the run found it.

Every verdict is computed from the numbers its experiment measured, by a rule that names each threshold it uses
(:data:`THRESHOLDS`: the value and one sentence saying why); the ledger shows those thresholds beside the
article's sentence, the measurement, the server, the seeds and, where a number was measured over several seeds,
its median and the range over the seeds. Change the input and the verdict follows (``tests/test_claims.py``
flips each one: a server with and without the POP3 maildrop lock, a mailbox where everything is read, a mailbox
of one message).

Each claim is a function ``claim_*(lab) -> Verdict``; :class:`Lab` starts fresh servers with a seeded mailbox
and hands out logged-in stdlib ``imaplib``/``poplib`` clients (traced where bytes are counted); two clients on
one account stand for two devices. The device claims (read state across devices, a lost device) run small
fleets instead (:mod:`mailstudy.study.fleet`): real client profiles over a few simulated hours.

The phone claims (issue 19: IMAP push against polling, POP3 polling against IMAP polling) are not the
article's sentences but the question its "POP3 suits one device" leaves for the phone among the devices: what
each choice costs the battery. Each runs one device's fleet day per setting and seed, prices it on LTE with the
energy ledger (:mod:`mailstudy.study.energy`), and turns the joules per day into a verdict by a named ratio;
push is measured at two arrival rates, because each arrival wakes the radio (the flip test runs one rate alone).

JMAP's own claims (issue 20: the promises JMAP, RFC 8620 and RFC 8621, is known by) are measured on Cyrus, the one
server here that speaks JMAP, against Cyrus's IMAP on the same seeded mailbox (:mod:`mailstudy.study.jmap_cell`):
the list in one request, cheap change sync, push without a held connection. Without Cyrus each row is
``not-measurable-here`` with the reason :func:`mailstudy.servers.cyrus.cyrus_available` gives.
"""

from __future__ import annotations

import hashlib
import imaplib
import poplib
import re
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from mailstudy.corpus import generate, make_message
from mailstudy.live.clients import TracedIMAP4, TracedPOP3
from mailstudy.live.trace import Trace
from mailstudy.servers import available_servers, make_server
from mailstudy.outputs import data_dir
from mailstudy.study.experiment import Experiment, cell_rows

SUPPORTED, CONTRADICTED = "supported", "contradicted"
HOLDS_ONLY_WHEN, NOT_PROTOCOL = "holds-only-when", "not-a-protocol-property"
NOT_MEASURABLE = "not-measurable-here"
VERDICTS = (SUPPORTED, CONTRADICTED, HOLDS_ONLY_WHEN, NOT_PROTOCOL, NOT_MEASURABLE)

#: The EICAR anti-virus test string (68 bytes, harmless by design; every scanner flags it).
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@dataclass(frozen=True)
class Verdict:
    """One row of the ledger."""

    key: str
    claim: str  # what the article says, in English (the article's own words in ``quote``)
    quote: str
    experiment: str
    measured: str
    verdict: str
    condition: str = ""  # for holds-only-when: the condition; otherwise a short note
    numbers: dict = field(default_factory=dict)
    server: str = "embedded"
    seconds: float = 0.0
    thresholds: dict = field(default_factory=dict)  # name -> "value: why", every threshold the rule used
    seeds: tuple = ()  # the corpus seeds the measurement ran on
    interval: str = ""  # for a number measured over several seeds: its range over them

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {self.verdict!r}")


#: Header-first "lets the user decide before downloading" when listing costs less than this share of
#: download-all.
HEADER_FIRST_MAX_SHARE = 0.5
#: POP3 "suits many messages" when its download-all moves at most this multiple of the bytes of IMAP's cheaper
#: way (header-first or download-all) at the same read fraction.
MANY_MESSAGES_MAX_RATIO = 1.10
#: The read fraction of the many-messages claim unless a lab says otherwise: a user who opens one message in ten.
TYPICAL_READ_FRACTION = 0.1

#: Every threshold a verdict rule uses: its value and why (shown in the ledger beside the verdict).
THRESHOLDS = {
    "header_first_max_share": (
        HEADER_FIRST_MAX_SHARE,
        "below half, header-first (the listing plus the opened bodies) costs less than download-all for every "
        "user who opens fewer than half the messages, since listing + f x bodies < bodies while listing < (1 - f) "
        "x bodies"),
    "many_messages_max_ratio": (
        MANY_MESSAGES_MAX_RATIO,
        "ours: within a tenth of the cheaper IMAP way we call the cost the same, so POP3's simplicity decides; "
        "the ledger shows the measured ratio for a reader who draws the line elsewhere"),
    "typical_read_fraction": (
        TYPICAL_READ_FRACTION,
        "ours: a user who opens one message in ten, the case the article's 'many messages' suggests; the flip "
        "test runs the same claim with every message read"),
    "partial_max_share": (
        1.0,
        "reading part of a message before downloading it means moving fewer bytes than the whole message; any "
        "saving shows it can"),
    "second_session": (
        "refused",
        "RFC 1939 section 4: once a client is authorised 'the POP3 server then acquires an exclusive-access lock "
        "on the maildrop'; a second login refused while the first holds the maildrop is that lock"),
    "same_bytes": (
        "identical",
        "a protocol protects from spam and viruses only if it withholds or changes what it delivers; the same "
        "bytes over POP3 as over IMAP mean the protocol decides nothing"),
    "phone_same_energy_ratio": (
        1.10,
        "ours, as many_messages_max_ratio: two settings whose radio joules per day are within a tenth of each "
        "other cost the battery the same; the ledger shows the measured ratio"),
    "phone_poll_s": (
        900.0,
        "K-9 Mail's default poll interval (15 minutes, cited in mailstudy.live.client_profiles): the polling a "
        "phone's user gets without choosing one"),
    "phone_rates": (
        (100.0, 10.0),
        "new messages a day: 100 is the study's standard fleet day (study.fleet.STANDARD_BASE); 10 is ours, a "
        "quiet personal mailbox: push wakes the radio at every arrival, so the verdict depends on how often mail "
        "arrives"),
    "jmap_list_max_requests": (
        1,
        "the claim's own number: RFC 8620 section 3.7 back-references let Email/query and Email/get of the list's "
        "properties (preview among them, RFC 8621 section 4.1.4) travel in one POST; session discovery (RFC 8620 "
        "section 2) comes before it once, and a client may keep the session resource"),
    "jmap_sync_max_requests": (
        1,
        "Email/changes with Email/get of the created and updated ids by back-reference is one POST (RFC 8620 "
        "section 5.2); more only when the server answers hasMoreChanges"),
    "jmap_push_stream": (
        "200 text/event-stream",
        "RFC 8620 section 7.3: push is an event stream on the session's eventSourceUrl; a server that answers "
        "otherwise offers no push to measure"),
}

#: Radio joules per day within this factor of each other are the same cost (see THRESHOLDS).
PHONE_SAME_ENERGY_RATIO = THRESHOLDS["phone_same_energy_ratio"][0]
#: The poll interval push and POP3 are compared with on the phone (see THRESHOLDS).
PHONE_POLL_S = THRESHOLDS["phone_poll_s"][0]
#: The arrival rates (messages a day) the phone's days are measured at, busy first (see THRESHOLDS).
PHONE_RATES = THRESHOLDS["phone_rates"][0]
#: JMAP lists in at most this many API requests after discovery (see THRESHOLDS).
JMAP_LIST_MAX_REQUESTS = THRESHOLDS["jmap_list_max_requests"][0]
#: JMAP's change sync takes at most this many round trips (see THRESHOLDS).
JMAP_SYNC_MAX_REQUESTS = THRESHOLDS["jmap_sync_max_requests"][0]
#: New messages delivered before the change sync of the JMAP claims (ours: as notebook 04's catch-up).
JMAP_NEW_MESSAGES = 5


def _thresholds(*names: str) -> dict:
    return {n: f"{THRESHOLDS[n][0]}: {THRESHOLDS[n][1]}" for n in names}


class Lab:
    """Fresh servers with a seeded mailbox, and logged-in clients on them (two clients = two devices).

    ``seeds`` are the corpus seeds a number is measured over where a claim measures a ratio (the first one is
    the lab's own mailbox); ``read_fraction`` is the many-messages claim's read fraction. With ``cache_dir``
    (the study's ``data/cache``), a session or a phone's day that a notebook's sweep already ran is read back
    from the sweep's cache instead of run again (:func:`mailstudy.study.experiment.cell_rows`)."""

    def __init__(self, messages: int = 20, seed: int = 0, sizes: str = "buchner2009", headers: str = "realistic",
                 seeds: tuple[int, ...] | None = None, read_fraction: float = TYPICAL_READ_FRACTION,
                 phone_hours: float = 3.0, phone_rates: tuple[float, ...] = PHONE_RATES,
                 cache_dir: str | Path | None = None) -> None:
        self.messages, self.seed, self.sizes, self.headers = messages, seed, sizes, headers
        self.seeds = tuple(seeds) if seeds else (seed,)
        self.read_fraction = read_fraction
        self.corpus = generate(messages, sizes, seed, headers=headers)
        self.phone_hours, self.phone_rates = phone_hours, tuple(phone_rates)
        self.cache_dir = cache_dir
        self._phone_days: dict = {}  # (server, setting label, rate) -> rows: the phone claims share their days
        self._jmap: dict = {}  # what the JMAP claims measured on Cyrus, shared by them

    def with_seed(self, seed: int) -> "Lab":
        """The same lab on the mailbox of another seed."""
        return Lab(self.messages, seed, self.sizes, self.headers, self.seeds, self.read_fraction,
                   self.phone_hours, self.phone_rates, self.cache_dir)

    def phone_day(self, kind: str, setting, rate: float):
        """One phone (a single device) on ``setting`` for ``phone_hours`` simulated hours at ``rate`` new
        messages a day, over the lab's seeds, priced on LTE (:func:`mailstudy.study.energy.energy_day_rows`):
        one row per seed with ``joules_per_day``, ``tail_share`` and ``staleness_median_s``."""
        from mailstudy.energy.radios import get_model
        from mailstudy.study.energy import energy_day_rows

        key = (kind, setting, rate)
        if key not in self._phone_days:
            self._phone_days[key] = energy_day_rows([setting], self.seeds, self.phone_hours, rate, kind,
                                                    models=[get_model("lte")], cache_dir=self.cache_dir and
                                                    Path(self.cache_dir) / "fleet")
        return self._phone_days[key]

    def jmap_lists(self) -> list[dict]:
        """Per seed: JMAP's header-first list against IMAP's on Cyrus
        (:func:`~mailstudy.study.jmap_cell.list_round_trips`)."""
        from mailstudy.study.jmap_cell import list_round_trips

        if "lists" not in self._jmap:
            self._jmap["lists"] = [list_round_trips(self.messages, seed) for seed in self.seeds]
        return self._jmap["lists"]

    def jmap_catch_up(self):
        """Cyrus's catch-up over the lab's seeds (:func:`~mailstudy.study.jmap_cell.catch_up`): its rows, and
        each row's measured session."""
        from mailstudy.study.jmap_cell import catch_up

        if "catch_up" not in self._jmap:
            results: list = []
            self._jmap["catch_up"] = (catch_up(self.messages, JMAP_NEW_MESSAGES, self.seeds, results=results),
                                      results)
        return self._jmap["catch_up"]

    @contextmanager
    def server(self, kind: str = "embedded", mailbox: list[bytes] | None = None, **kwargs) -> Iterator:
        server = make_server(kind, **kwargs)
        server.mailboxes[server.account.user] = list(self.corpus.raws() if mailbox is None else mailbox)
        with server:
            yield server

    @staticmethod
    def imap(server, trace: Trace | None = None) -> imaplib.IMAP4:
        c = TracedIMAP4(server.host, server.imap_port, trace) if trace is not None else \
            imaplib.IMAP4(server.host, server.imap_port, timeout=30)
        c.login(server.account.user, server.account.password)
        return c

    @staticmethod
    def pop3(server, trace: Trace | None = None) -> poplib.POP3:
        c = TracedPOP3(server.host, server.pop3_port, trace) if trace is not None else \
            poplib.POP3(server.host, server.pop3_port, timeout=30)
        c.user(server.account.user)
        c.pass_(server.account.password)
        return c

    @contextmanager
    def traced(self, kind: str, protocol: str) -> Iterator:
        """A fresh server and one logged-in client on it whose socket counts bytes: yields ``(client, trace)``."""
        with self.server(kind) as server:
            trace = Trace()
            client = (self.imap if protocol == "imap" else self.pop3)(server, trace)
            try:
                yield client, trace
            finally:
                _logout(client)

    def count_on_server(self, server) -> int:
        """Messages in INBOX, asked over IMAP (EXISTS): what any device could still see."""
        c = self.imap(server)
        try:
            typ, data = c.select("INBOX", readonly=True)
            return int(data[0])
        finally:
            c.logout()

    def session(self, server_kind: str, **params) -> dict:
        """One measured session (an :class:`Experiment` row) on this lab's mailbox."""
        exp = Experiment(server=server_kind, messages=self.messages, sizes=self.sizes, seed=self.seed,
                         headers=self.headers, **params)
        return cell_rows(exp, self.cache_dir)[0]


def _logout(c) -> None:
    try:
        c.logout() if isinstance(c, imaplib.IMAP4) else c.quit()
    except (OSError, imaplib.IMAP4.error, poplib.error_proto):
        pass


# ---- the claims ----------------------------------------------------------------------------------------------
def claim_ports(lab: Lab, kind: str) -> Verdict:
    services = {}
    for name in ("imap", "imaps", "pop3", "pop3s"):
        try:
            services[name] = socket.getservbyname(name, "tcp")
        except OSError:
            services[name] = None
    dovecot = _dovecot_default_ports()
    expected = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}
    agree = services == expected and (not dovecot or dovecot == expected)
    measured = "services database: " + ", ".join(f"{k} {v}" for k, v in services.items())
    if dovecot:
        measured += "; Dovecot's defaults (doveconf -d): " + ", ".join(f"{k} {v}" for k, v in dovecot.items())
    return Verdict("ports", "IMAP listens on 143 (993 with TLS), POP3 on 110 (995 with TLS)",
                   "它在端口号 143 上监听，而 IMAPDS(带有 SSL 的 IMAP)在端口 993 上监听。",
                   "look the service names up in the system's services database; read Dovecot's default listeners",
                   measured, SUPPORTED if agree else CONTRADICTED,
                   "assigned ports; any server may listen elsewhere (ours listen on free loopback ports)",
                   numbers={"services": services, "dovecot": dovecot}, server="(none needed)")


def _dovecot_default_ports() -> dict:
    try:
        out = subprocess.run(["doveconf", "-d"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found = {}
    for name, port in re.findall(r"inet_listener (\w+) \{[^}]*?port = (\d+)", out):
        if name in ("imap", "imaps", "pop3", "pop3s"):
            found[name] = int(port)
    return found


def claim_storage(lab: Lab, kind: str) -> list[Verdict]:
    """Where the mail is after each protocol's download-all: IMAP keeps it, POP3 delete removes it."""
    n = lab.messages
    with lab.server(kind) as s:
        row = run_experiment_on(s, lab, protocol="imap", strategy="download-all")
        after_imap = lab.count_on_server(s)
    with lab.server(kind) as s:
        row_del = run_experiment_on(s, lab, protocol="pop3", strategy="download-all", pop3_mode="delete")
        after_delete = lab.count_on_server(s)
    with lab.server(kind) as s:
        row_keep = run_experiment_on(s, lab, protocol="pop3", strategy="download-all", pop3_mode="keep")
        after_keep = lab.count_on_server(s)
    numbers = dict(messages=n, after_imap=after_imap, after_pop3_delete=after_delete, after_pop3_keep=after_keep,
                   imap_bodies=row["bodies_fetched"], pop3_delete_bodies=row_del["bodies_fetched"],
                   pop3_keep_bodies=row_keep["bodies_fetched"])
    keeps = after_imap == n and after_delete == 0
    modes = after_keep == n and after_delete == 0
    return [
        Verdict("imap-keeps-pop3-delete-removes", "IMAP keeps mail on the server; POP3 (delete mode) removes it",
                "电子邮件存储在服务器上，而不是电子邮件客户端。",
                f"download all {n} messages with each protocol, then count INBOX over IMAP",
                f"after IMAP download-all {after_imap}/{n} remain; after POP3 delete {after_delete}/{n}",
                SUPPORTED if keeps else CONTRADICTED, numbers=numbers, server=kind, seeds=(lab.seed,)),
        Verdict("pop3-keep-delete", "POP3 has a keep mode and a delete mode",
                "POP3 在两种模式下工作:删除模式和保留模式。",
                f"POP3 download-all of {n} messages with and without DELE, then count INBOX",
                f"keep: {after_keep}/{n} remain; delete: {after_delete}/{n} remain "
                f"({row_keep['bodies_fetched']} and {row_del['bodies_fetched']} bodies downloaded)",
                SUPPORTED if modes else CONTRADICTED,
                "the mode is the client's choice (DELE or not), not a server setting", numbers=numbers, server=kind,
                seeds=(lab.seed,)),
        Verdict("storage-row", "the article's 'email storage' row: with IMAP mail is kept on one device once "
                "downloaded and deleted from the server; with POP3 it stays on the server, synced across devices",
                "电子邮件存储 | IMAP: 电子邮件一旦下载并从服务器上删除，就会存储在一个设备上。 | "
                "POP3: 电子邮件存储在服务器上并同步&可以使用多种设备访问。",
                "the same counts: where is the mail after each protocol's download-all?",
                f"IMAP: {after_imap}/{n} still on the server; POP3 delete: {after_delete}/{n} on the server, "
                f"{row_del['bodies_fetched']} on the device",
                verdict_storage_row(after_imap, after_delete, n),
                "the row's two columns are swapped: its IMAP text describes POP3 (delete mode) and its POP3 text "
                "describes IMAP; read the other way round it matches the measurement",
                numbers=numbers, server=kind, seeds=(lab.seed,)),
    ]


def verdict_storage_row(after_imap: int, after_pop3_delete: int, n: int) -> str:
    """The row as the article wrote it: after IMAP's download-all nothing is left on the server, after POP3's
    everything is. Supported only if the counts say so; the opposite counts contradict it."""
    if after_imap == 0 and after_pop3_delete == n:
        return SUPPORTED
    return CONTRADICTED


def run_experiment_on(server, lab: Lab, **params) -> dict:
    """One strategy session against an already running ``server`` (so the caller can look at it afterwards)."""
    from mailstudy.live.access import Known, run_session
    from mailstudy.live.devices import Device

    spec = Experiment(messages=lab.messages, sizes=lab.sizes, seed=lab.seed, headers=lab.headers, **params).spec()
    result = run_session(server.host, server.imap_port, server.pop3_port, server.account.user,
                         server.account.password, spec, Known(lab.corpus.raws()), Device())
    return result.row()


def claim_sent_folder(lab: Lab, kind: str) -> Verdict:
    sent = make_message(lab.seed, 9999, 3000).raw
    with lab.server(kind) as s:
        a, b = lab.imap(s), lab.imap(s)
        try:
            a.create("Sent")
            typ, _ = a.append("Sent", r"(\Seen)", None, sent)
            b_list = b.list()[1]
            typ_b, data = b.select("Sent", readonly=True)
            visible = int(data[0]) if typ_b == "OK" else 0
            _, fetched = b.fetch("1", "(BODY.PEEK[])")
            same = hashlib.sha256(fetched[0][1]).hexdigest() == hashlib.sha256(sent).hexdigest()
        finally:
            _logout(a), _logout(b)
        p = lab.pop3(s)
        try:
            pop_count = p.stat()[0]
        finally:
            _logout(p)
    listed = any(b"Sent" in x for x in b_list if x)
    ok = typ == "OK" and listed and visible == 1 and same
    return Verdict("sent-folder", "IMAP's Sent folder lives on the server and is visible from another device",
                   "已发送的邮件也存储在服务器端的“已发送”文件夹中，这使我们可以从任何地方检查已发送的电子邮件。",
                   "device A: CREATE Sent, APPEND a sent message; "
                   "device B (a second session): LIST, SELECT Sent, FETCH",
                   f"APPEND {typ}; device B lists Sent: {listed}, sees {visible} message, byte-identical: {same}; "
                   f"POP3 sees {pop_count} (INBOX only: the message is not there)",
                   SUPPORTED if ok else CONTRADICTED, "the client must APPEND its sent mail (most do)",
                   numbers=dict(visible=visible, identical=same, pop3_inbox=pop_count), server=kind)


def _fleet(kind: str, seed: int, **kw) -> dict:
    """One small fleet (3 simulated hours, about 12 new messages, polls every 30 min) on a fresh ``kind`` server:
    its fleet row and device rows (:mod:`mailstudy.study.fleet`)."""
    from mailstudy.study.fleet import FleetCell, run_fleet_rows

    cell = FleetCell(server=kind, hours=3, rate=96, start_messages=2, poll_s=1800, seed=seed, read_fraction=0.5,
                     **kw)
    rows = run_fleet_rows(cell)
    return {"fleet": rows["fleet"][0], "devices": rows["devices"]}


def claim_read_state(lab: Lab, kind: str) -> Verdict:
    imap = _fleet(kind, lab.seed, devices=3, clients=("neomutt",))["fleet"]
    pop3 = _fleet(kind, lab.seed, devices=3, clients=("thunderbird-pop3",))["fleet"]
    answered = _answered_elsewhere(lab, kind)
    ok = imap["reads"] > 0 and imap["read_agreement"] == 1.0 and answered
    return Verdict("read-state", "IMAP syncs read, unread and answered state across devices",
                   "服务器还保存电子邮件的状态，如已读、未读或已回复。它有助于检查来自任何计算机或设备的电子邮件的状态。",
                   "a fleet of 3 devices over 3 simulated hours; the user reads half the new mail, each message on "
                   "one device; then every device syncs once more",
                   f"IMAP (neomutt): {imap['reads']} reads, read state agrees on "
                   f"{100 * imap['read_agreement']:.0f} % of messages on every device; POP3 keep "
                   f"(thunderbird-pop3): {100 * (pop3['read_agreement'] or 0):.0f} %; \\Answered stored by one "
                   f"IMAP session seen by another: {answered}",
                   SUPPORTED if ok else CONTRADICTED,
                   "a device sees another's reads at its next sync; POP3 has no flags at all",
                   numbers=dict(imap_agreement=imap["read_agreement"], pop3_agreement=pop3["read_agreement"],
                                reads=imap["reads"], answered_seen=answered), server=kind)


def _answered_elsewhere(lab: Lab, kind: str) -> bool:
    """Device A marks message 1 answered; does device B (a second IMAP session) see the flag?"""
    with lab.server(kind) as s:
        a, b = lab.imap(s), lab.imap(s)
        try:
            a.select("INBOX")
            a.store("1", "+FLAGS", r"(\Answered)")
            b.select("INBOX", readonly=True)
            _, flags = b.fetch("1", "(FLAGS)")
        finally:
            _logout(a), _logout(b)
    return b"\\Answered" in flags[0]


def claim_device_loss(lab: Lab, kind: str) -> Verdict:
    imap = _fleet(kind, lab.seed, devices=2, clients=("thunderbird",), lose_device=0, lose_at_h=1.5)
    pop3 = _fleet(kind, lab.seed, devices=2, clients=("pop3-delete",), lose_device=0, lose_at_h=1.5)
    held = {name: next(d["held_at_loss"] for d in f["devices"] if d["lost"]) for name, f in
            (("imap", imap), ("pop3", pop3))}
    ok = imap["fleet"]["messages_lost"] == 0
    return Verdict("device-loss", "with IMAP, losing a device loses no mail",
                   "即使我们的设备被破坏或被盗，我们也不会丢失电子邮件。",
                   "a fleet of 2 devices over 3 simulated hours; device 0 is lost with its store after 1.5 h",
                   f"IMAP (thunderbird): the lost device held {held['imap']}, messages lost "
                   f"{imap['fleet']['messages_lost']} of {imap['fleet']['delivered']}; POP3 delete: it held "
                   f"{held['pop3']}, lost {pop3['fleet']['messages_lost']} of {pop3['fleet']['delivered']}",
                   SUPPORTED if ok else CONTRADICTED, "POP3 keep mode loses none either: the server keeps it",
                   numbers=dict(imap_lost=imap["fleet"]["messages_lost"], pop3_lost=pop3["fleet"]["messages_lost"],
                                held_at_loss=held), server=kind)


def _median(values: list[float]) -> float:
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def _range(values: list[float], fmt: str, what: str) -> str:
    if len(values) < 2:
        return ""
    return f"{format(min(values), fmt)} to {format(max(values), fmt)} {what} over {len(values)} seeds (min to max)"


def verdict_header_first(share: float) -> str:
    """Supported when listing costs less than :data:`HEADER_FIRST_MAX_SHARE` of download-all."""
    return SUPPORTED if share < HEADER_FIRST_MAX_SHARE else CONTRADICTED


def claim_headers_first(lab: Lab, kind: str) -> Verdict:
    shares, rows = [], {}
    for seed in lab.seeds:
        one = lab if seed == lab.seed else lab.with_seed(seed)
        hf = one.session(kind, protocol="imap", strategy="header-first")
        da = one.session(kind, protocol="imap", strategy="download-all")
        shares.append(hf["bytes_down"] / da["bytes_down"])
        rows[seed] = (hf["bytes_down"], da["bytes_down"])
    share = _median(shares)
    hf_b, da_b = rows[lab.seed]
    return Verdict("headers-first", "IMAP shows headers first, so the user can decide what to download",
                   "当我们开始使用 IMAP 下载电子邮件时，它首先显示标题(发件人、日期、电子邮件主题)；"
                   "在那一刻，我们可以决定是否下载电子邮件。",
                   f"IMAP header-first (read fraction 0) against download-all, {lab.messages} messages "
                   f"({lab.headers} headers)",
                   f"listing costs {100 * share:.1f} % of download-all (median over {len(shares)} seeds); seed "
                   f"{lab.seed}: {hf_b:,} B down against {da_b:,} B",
                   verdict_header_first(share), "POP3 can do the same with TOP n 0 (see below)",
                   numbers=dict(share=round(share, 5), shares=[round(x, 5) for x in shares], header_first=hf_b,
                                download_all=da_b),
                   server=kind, thresholds=_thresholds("header_first_max_share"), seeds=lab.seeds,
                   interval=_range([100 * x for x in shares], ".1f", "%"))


def _costing(trace: Trace, call, *args):
    """``(call(*args), bytes down it cost)`` as the client's traced socket saw them."""
    before = trace.bytes_down
    result = call(*args)
    return result, trace.bytes_down - before


def _largest(lab: Lab) -> tuple[int, bytes]:
    raws = lab.corpus.raws()
    i = max(range(len(raws)), key=lambda k: len(raws[k]))
    return i + 1, raws[i]


def claim_partial_read(lab: Lab, kind: str, preview: int = 2048) -> Verdict:
    num, raw = _largest(lab)
    with lab.traced(kind, "imap") as (c, trace):
        c.select("INBOX", readonly=True)
        (_, data), cost = _costing(trace, c.fetch, str(num), f"(BODY.PEEK[]<0.{preview}>)")
    got = data[0][1]
    ok = got == raw[:preview] and cost < len(raw)
    return Verdict("partial-read", "IMAP can read part of a message before it has been downloaded",
                   "我们可以在完成下载之前部分阅读消息。", f"BODY.PEEK[]<0.{preview}> of the largest message",
                   f"first {len(got):,} B of a {len(raw):,} B message in {cost:,} B down "
                   f"({100 * cost / len(raw):.1f} % of it), byte-identical: {got == raw[:preview]}",
                   SUPPORTED if ok else CONTRADICTED, numbers=dict(message=len(raw), cost=cost), server=kind,
                   thresholds=_thresholds("partial_max_share"), seeds=(lab.seed,))


def claim_pop3_top(lab: Lab, kind: str, lines: int = 10) -> Verdict:
    num, raw = _largest(lab)
    with lab.traced(kind, "pop3") as (p, trace):
        _, top_cost = _costing(trace, p.top, num, lines)
        _, retr_cost = _costing(trace, p.retr, num)
    return Verdict("pop3-only-after-download", "POP3 can only read a message after downloading it",
                   "我们只能在消息下载后阅读它。",
                   f"TOP {num} {lines} (headers + {lines} body lines) against RETR {num}",
                   f"TOP: {top_cost:,} B down; RETR: {retr_cost:,} B ({100 * top_cost / retr_cost:.1f} %)",
                   CONTRADICTED if top_cost < retr_cost else SUPPORTED,
                   "TOP (RFC 1939, optional) reads the header and the first lines without the rest",
                   numbers=dict(top=top_cost, retr=retr_cost), server=kind,
                   thresholds=_thresholds("partial_max_share"), seeds=(lab.seed,))


def claim_pop3_one_device(lab: Lab, kind: str, with_lock: bool = False) -> Verdict:
    """Two POP3 sessions on one maildrop at once: does the second get in? RFC 1939 says the server locks."""
    kwargs = {"extra_config": "pop3_lock_session = yes\n"} if with_lock else {}
    with lab.server(kind, **kwargs) as s:
        a = lab.pop3(s)
        t0 = time.monotonic()
        try:
            b = lab.pop3(s)
            second, b_count = "+OK", b.stat()[0]
            _logout(b)
        except (poplib.error_proto, OSError) as exc:
            why = exc.args[0] if exc.args else exc
            why = why.decode("ascii", "replace") if isinstance(why, bytes) else str(why)
            second, b_count = f"refused ({' '.join(why.split())[:70]})", 0
        waited = time.monotonic() - t0
        _logout(a)
    locked = second != "+OK"
    server = f"{kind}{' (pop3_lock_session = yes)' if with_lock else ''}"
    return Verdict("pop3-one-device" + ("-locked" if with_lock else ""),
                   "POP3 can be used from only one device at a time", "使用 POP3，一次只能使用一个设备访问邮件。",
                   "device A logs in over POP3 and stays; device B logs in at the same time",
                   f"second login: {second} after {waited:.2f} s"
                   + (f", sees {b_count} messages" if not locked else ""),
                   verdict_one_device(locked),
                   "the server decides: RFC 1939's maildrop lock is enforced here" if locked else
                   "the server decides: this one lets two sessions share the maildrop (Dovecot does unless "
                   "pop3_lock_session = yes); and one device at a time is not one device: keep mode serves many "
                   "devices in turn",
                   numbers=dict(second_login=second, second_refused=locked, waited_s=round(waited, 3)),
                   server=server, thresholds=_thresholds("second_session"), seeds=(lab.seed,))


def verdict_one_device(second_refused: bool) -> str:
    """Supported when a second concurrent login is refused (the maildrop lock); contradicted when it gets in."""
    return SUPPORTED if second_refused else CONTRADICTED


def claim_offline(lab: Lab, kind: str) -> Verdict:
    from mailstudy.live.access import Known, run_session
    from mailstudy.live.devices import Device

    held, fetched = {}, {}
    for protocol in ("pop3", "imap"):
        device = Device()
        spec = Experiment(protocol=protocol, strategy="download-all", messages=lab.messages, sizes=lab.sizes,
                          seed=lab.seed, headers=lab.headers).spec()
        with lab.server(kind) as s:
            result = run_session(s.host, s.imap_port, s.pop3_port, s.account.user, s.account.password, spec,
                                 Known(lab.corpus.raws()), device)
        held[protocol] = device.messages_held  # counted after the server is gone
        fetched[protocol] = result.bodies_fetched
    n = lab.messages
    return Verdict("pop3-offline", "POP3 messages are available offline", "下载的电子邮件也可以离线访问。",
                   "download all, stop the server, count the bodies the device holds",
                   f"POP3: {held['pop3']}/{n} bodies held by the device after the server stopped; IMAP "
                   f"download-all fetched {fetched['imap']}/{n} bodies too (a client may keep them)",
                   SUPPORTED if held["pop3"] == n else CONTRADICTED,
                   "not POP3's alone: an IMAP client that downloads bodies (offline sync) holds them too",
                   numbers=dict(pop3_held=held["pop3"], imap_fetched=fetched["imap"]), server=kind)


def verdict_many_messages(ratio: float, ratio_all_read: float | None) -> str:
    """Supported when POP3's download-all moves at most :data:`MANY_MESSAGES_MAX_RATIO` times the bytes of IMAP's
    cheaper way at the lab's read fraction; holds-only-when if that is so only when every message is read;
    contradicted otherwise."""
    if ratio <= MANY_MESSAGES_MAX_RATIO:
        return SUPPORTED
    if ratio_all_read is not None and ratio_all_read <= MANY_MESSAGES_MAX_RATIO:
        return HOLDS_ONLY_WHEN
    return CONTRADICTED


def _many_rows(lab: Lab, kind: str, fraction: float) -> dict:
    return {
        "POP3 download-all": lab.session(kind, protocol="pop3", strategy="download-all"),
        "POP3 download-all pipelined": lab.session(kind, protocol="pop3", strategy="download-all", pipelining=True),
        "IMAP download-all": lab.session(kind, protocol="imap", strategy="download-all"),
        f"IMAP header-first, {100 * fraction:.0f} % read": lab.session(kind, protocol="imap", strategy="header-first",
                                                                   read_fraction=fraction),
    }


def _pop3_ratio(rows: dict) -> float:
    imap = min(r["bytes_down"] for k, r in rows.items() if k.startswith("IMAP"))
    return rows["POP3 download-all"]["bytes_down"] / imap


def claim_many_messages(lab: Lab, kind: str) -> Verdict:
    f = lab.read_fraction
    ratios, rows = [], {}
    for seed in lab.seeds:
        one = lab if seed == lab.seed else lab.with_seed(seed)
        got = _many_rows(one, kind, f)
        ratios.append(_pop3_ratio(got))
        if seed == lab.seed:
            rows = got
    ratio = _median(ratios)
    all_read = None
    if ratio > MANY_MESSAGES_MAX_RATIO and f < 1.0:  # would it hold if every message were read?
        full = lab.session(kind, protocol="imap", strategy="header-first", read_fraction=1.0)
        rows["IMAP header-first, 100 % read"] = full
        imap_all = min(full["bytes_down"], rows["IMAP download-all"]["bytes_down"])
        all_read = rows["POP3 download-all"]["bytes_down"] / imap_all
    parts = [f"{k}: {r['bytes_down']:,} B, {r['round_trips']} round trips" for k, r in rows.items()]
    pop = rows["POP3 download-all"]
    verdict = verdict_many_messages(ratio, all_read)
    condition = {SUPPORTED: f"POP3 moves {ratio:.2f} x the bytes of IMAP's cheaper way at this read fraction",
                 HOLDS_ONLY_WHEN: f"only when nearly every message is read: at {100 * f:.0f} % read POP3 moves "
                                  f"{ratio:.2f} x IMAP's bytes, with every message read {all_read or 0:.2f} x",
                 CONTRADICTED: f"POP3 moves {ratio:.2f} x the bytes of IMAP's cheaper way, even with every "
                               f"message read ({all_read or 0:.2f} x)"}[verdict]
    return Verdict("pop3-many-messages", "POP3 suits a large number of messages",
                   "如果邮件数量多。",
                   f"{lab.messages} messages, {100 * f:.0f} % of them read: bytes down and round trips of each way "
                   "to get them",
                   "; ".join(parts) + f"; POP3 / IMAP's cheaper way: {ratio:.3f} (median over {len(ratios)} seeds)",
                   verdict, condition + f"; POP3 needs {pop['round_trips']} round trips to IMAP download-all's "
                   f"{rows['IMAP download-all']['round_trips']} unless it pipelines",
                   numbers={**{k: dict(bytes_down=r["bytes_down"], round_trips=r["round_trips"]) for k, r in rows.items()},
                            "ratio": round(ratio, 4), "ratios": [round(x, 4) for x in ratios],
                            "ratio_all_read": None if all_read is None else round(all_read, 4), "read_fraction": f},
                   server=kind, thresholds=_thresholds("many_messages_max_ratio", "typical_read_fraction"),
                   seeds=lab.seeds, interval=_range(ratios, ".3f", "x"))


def claim_folders(lab: Lab, kind: str) -> Verdict:
    with lab.server(kind) as s:
        c = lab.imap(s)
        try:
            steps = [c.create("Projects")[0], c.rename("Projects", "Archive")[0]]
            listed = any(b"Archive" in x for x in c.list()[1] if x)
            steps.append(c.delete("Archive")[0])
            gone = not any(b"Archive" in x for x in c.list()[1] if x)
        finally:
            _logout(c)
        p = lab.pop3(s)
        try:
            p._putcmd("CREATE Projects")  # poplib has no folder command because POP3 has none
            pop_reply = p._getresp().decode("ascii", "replace")
        except poplib.error_proto as exc:
            pop_reply = exc.args[0].decode("ascii", "replace") if exc.args and isinstance(exc.args[0], bytes) \
                else str(exc)
        finally:
            _logout(p)
    ok = steps == ["OK", "OK", "OK"] and listed and gone and pop_reply.startswith("-ERR")
    return Verdict("folders", "IMAP can create, rename and delete folders on the server; POP3 cannot",
                   "IMAP 允许用户在邮件服务器上创建、删除或更新邮箱……"
                   "POP3 不允许用户创建、删除或更新邮件服务器上的邮箱。",
                   "IMAP CREATE, RENAME, DELETE with LIST between; POP3 'CREATE'",
                   f"IMAP: {' '.join(steps)}, listed after RENAME: {listed}, gone after DELETE: {gone}; "
                   f"POP3 answers {pop_reply[:50]}", SUPPORTED if ok else CONTRADICTED,
                   "POP3 (RFC 1939) knows one maildrop and no folders", numbers=dict(steps=steps, pop3=pop_reply),
                   server=kind)


def claim_spam_virus(lab: Lab, kind: str) -> Verdict:
    virus = make_message(lab.seed, 8888, 2000).raw
    virus = virus.replace(b"\r\n\r\n", b"\r\n\r\n" + EICAR + b"\r\n", 1)
    spam = (b"From: winner@lottery.example\r\nTo: alice@example.org\r\nSubject: =?utf-8?q?You_have_WON?=\r\n"
            b"Message-ID: <spam@lottery.example>\r\n\r\nClick here to claim 1,000,000 EUR.\r\n")
    with lab.server(kind, mailbox=[virus, spam]) as s:
        p = lab.pop3(s)
        try:
            got = [b"\r\n".join(p.retr(i)[1]) + b"\r\n" for i in range(1, p.stat()[0] + 1)]
        finally:
            _logout(p)
        c = lab.imap(s)
        try:
            c.select("INBOX", readonly=True)
            _, data = c.fetch("1:*", "(BODY.PEEK[])")
            imap_got = [d[1] for d in data if isinstance(d, tuple)]
        finally:
            _logout(c)
    pop3_same = _delivered_as_sent(got, (virus, spam))
    imap_same = _delivered_as_sent(imap_got, (virus, spam))
    return Verdict("pop3-spam-virus", "POP3 protects email from spam and viruses",
                   "它有助于保护电子邮件免受互联网上的垃圾邮件和病毒的侵害。",
                   "deliver the EICAR test virus and an obvious spam; fetch both over POP3 (RETR) and IMAP (FETCH)",
                   f"POP3 returned {sum(pop3_same)} of 2 byte for byte, IMAP {sum(imap_same)} of 2: the "
                   f"{len(virus):,} B message carrying EICAR (POP3 identical: {pop3_same[0]}) and the {len(spam)} B "
                   f"spam (POP3 identical: {pop3_same[1]})",
                   verdict_spam_virus(pop3_same, imap_same),
                   "filtering is done by the server's MTA/MDA or the client's scanner; RFC 1939 defines no filter, "
                   "and IMAP carries the same bytes",
                   numbers=dict(identical=pop3_same, imap_identical=imap_same), server=kind,
                   thresholds=_thresholds("same_bytes"), seeds=(lab.seed,))


def _delivered_as_sent(got: list[bytes], sent: tuple[bytes, ...]) -> list[bool]:
    return [i < len(got) and hashlib.sha256(got[i]).digest() == hashlib.sha256(w).digest()
            for i, w in enumerate(sent)]


def verdict_spam_virus(pop3_same: list[bool], imap_same: list[bool]) -> str:
    """Supported when POP3 withheld or changed a message that IMAP delivered as sent (POP3 itself protected);
    otherwise the protocol made no difference: not a protocol property."""
    if any(i and not p for p, i in zip(pop3_same, imap_same)):
        return SUPPORTED
    return NOT_PROTOCOL


# ---- a phone's battery: IMAP push and POP3 polling, priced by the energy ledger (issue 19) -------------------
def _phone_settings(poll_s: float):
    from mailstudy.study.energy import Setting

    return (Setting("IMAP IDLE (push)", "thunderbird", None, True),
            Setting(f"IMAP poll {poll_s / 60:g} min", "thunderbird", poll_s),
            Setting(f"POP3 keep, poll {poll_s / 60:g} min", "thunderbird-pop3", poll_s))


def _day_numbers(rows) -> dict:
    """Medians over seeds (and the per-seed joules) of one setting's phone day."""
    return {"joules_per_day": float(rows["joules_per_day"].median()),
            "joules_per_day_seeds": [round(float(x), 1) for x in rows["joules_per_day"]],
            "tail_share": float(rows["tail_share"].median()),
            "promotions": float(rows["promotions"].median()),
            "staleness_median_s": float(rows["staleness_median_s"].median())}


def verdict_push_battery(ratios: dict) -> str:
    """``ratios``: push's radio joules per day over polling's, by arrival rate. Supported when push costs more
    than :data:`PHONE_SAME_ENERGY_RATIO` times polling at every rate measured; holds-only-when at some of them;
    contradicted at none."""
    more = [r > PHONE_SAME_ENERGY_RATIO for r in ratios.values()]
    if more and all(more):
        return SUPPORTED
    return HOLDS_ONLY_WHEN if any(more) else CONTRADICTED


def push_breakeven_rate(ratios: dict) -> float | None:
    """The arrival rate (messages a day) at which push costs what polling does: linear between the two rates
    measured whose ratios straddle 1 (ours: the energy of push grows about linearly with the arrivals that wake
    the radio), or None when none do."""
    pts = sorted(ratios.items())
    for (r0, y0), (r1, y1) in zip(pts, pts[1:]):
        if (y0 - 1) * (y1 - 1) <= 0 and y1 != y0:
            return r0 + (r1 - r0) * (1 - y0) / (y1 - y0)
    return None


def claim_push_battery(lab: Lab, kind: str) -> Verdict:
    """IMAP push (IDLE) against polling every :data:`PHONE_POLL_S` on a phone's LTE radio, at each of the lab's
    arrival rates: a fleet day of one device each, every session real, priced by the energy ledger."""
    push, poll, _ = _phone_settings(PHONE_POLL_S)
    days = {rate: (_day_numbers(lab.phone_day(kind, push, rate)), _day_numbers(lab.phone_day(kind, poll, rate)))
            for rate in lab.phone_rates}
    ratios = {rate: p["joules_per_day"] / q["joules_per_day"] for rate, (p, q) in days.items()}
    verdict = verdict_push_battery(ratios)
    even = push_breakeven_rate(ratios)
    parts = [f"at {rate:g} messages/day push {p['joules_per_day']:,.0f} J/day (tail {p['tail_share']:.0%}, "
             f"{p['promotions']:.0f} promotions) against polling's {q['joules_per_day']:,.0f} J/day (tail "
             f"{q['tail_share']:.0%}): {ratios[rate]:.2f} x" for rate, (p, q) in days.items()]
    shown = f"; they cost the same at about {even:.0f} messages a day (linear between the rates)" if even else ""
    condition = {SUPPORTED: "push wakes the radio at every arrival and every keep-alive; at these rates that is "
                            f"more often than a poll every {PHONE_POLL_S / 60:g} minutes",
                 HOLDS_ONLY_WHEN: "only when mail arrives often: each arrival wakes the radio for a promotion and a "
                                  f"whole tail, each {PHONE_POLL_S / 60:g}-minute poll once" + shown,
                 CONTRADICTED: f"push costs no more than polling every {PHONE_POLL_S / 60:g} minutes at these "
                               "rates: its keep-alives and arrivals wake the radio less often than the polls"}[verdict]
    stale = days[lab.phone_rates[0]]
    return Verdict("phone-push-battery",
                   f"on a phone, IMAP push (IDLE) costs the radio more energy per day than polling every "
                   f"{PHONE_POLL_S / 60:g} minutes",
                   "(not the article's; issue 19:) K-9 Mail users have reported battery drain from push (IDLE) "
                   "in its issue tracker for years",
                   f"one phone (thunderbird profile) holding IDLE, and the same polling every {PHONE_POLL_S / 60:g} "
                   f"min, {lab.phone_hours:g} simulated hours at each arrival rate, every session real, priced on "
                   "LTE (Huang et al., MobiSys 2012) by the energy ledger, scaled to a day",
                   "; ".join(parts) + f"; mail shown after {stale[0]['staleness_median_s']:.0f} s with push, "
                   f"{stale[1]['staleness_median_s']:.0f} s polling (median, {lab.phone_rates[0]:g}/day)",
                   verdict, condition,
                   numbers={"ratios": {f"{r:g}": round(x, 4) for r, x in ratios.items()},
                            "breakeven_rate": None if even is None else round(even, 1),
                            "days": {f"{r:g}": {"push": p, "poll": q} for r, (p, q) in days.items()}},
                   server=kind, thresholds=_thresholds("phone_same_energy_ratio", "phone_poll_s", "phone_rates"),
                   seeds=lab.seeds,
                   interval="; ".join(f"push at {r:g}/day {min(p['joules_per_day_seeds']):,.0f} to "
                                      f"{max(p['joules_per_day_seeds']):,.0f} J/day over {len(lab.seeds)} seeds"
                                      for r, (p, _q) in days.items()) if len(lab.seeds) > 1 else "")


def verdict_pop3_polling(ratio: float) -> str:
    """``ratio``: POP3 polling's radio joules per day over IMAP polling's at the same interval. Supported when
    POP3 costs less than IMAP by more than :data:`PHONE_SAME_ENERGY_RATIO`; contradicted when it costs more by
    as much; not a protocol property when the two are the same (the poll interval decides)."""
    if ratio * PHONE_SAME_ENERGY_RATIO < 1:
        return SUPPORTED
    if ratio > PHONE_SAME_ENERGY_RATIO:
        return CONTRADICTED
    return NOT_PROTOCOL


def claim_pop3_polling(lab: Lab, kind: str, imap_poll_s: float | None = None) -> Verdict:
    """POP3 keep mode against IMAP, both polling (every :data:`PHONE_POLL_S`, or IMAP every ``imap_poll_s``), on
    a phone's LTE radio at the lab's busy arrival rate."""
    rate = lab.phone_rates[0]
    _, _, pop = _phone_settings(PHONE_POLL_S)
    _, imap, _ = _phone_settings(imap_poll_s or PHONE_POLL_S)
    p, i = _day_numbers(lab.phone_day(kind, pop, rate)), _day_numbers(lab.phone_day(kind, imap, rate))
    ratio = p["joules_per_day"] / i["joules_per_day"]
    verdict = verdict_pop3_polling(ratio)
    condition = {SUPPORTED: "POP3 costs less here",
                 CONTRADICTED: "POP3 costs more here",
                 NOT_PROTOCOL: f"the poll interval decides, not the protocol: every poll pays a promotion and a "
                               f"whole tail ({p['tail_share']:.0%} of POP3's joules, {i['tail_share']:.0%} of "
                               "IMAP's are tail) whatever it carries"}[verdict]
    return Verdict("phone-pop3-polling",
                   "on a phone, POP3 polling costs the radio less energy per day than IMAP polling",
                   "(not the article's; issue 19:) The article that started this project says IMAP suits many "
                   "devices and POP3 suits one. For the phone among those devices, the question a user asks is "
                   "what each choice costs its battery.",
                   f"one phone polling with POP3 keep mode (thunderbird-pop3) and with IMAP (thunderbird), "
                   f"POP3 every {PHONE_POLL_S / 60:g} min, IMAP every "
                   f"{(imap_poll_s or PHONE_POLL_S) / 60:g} min, {lab.phone_hours:g} simulated hours at {rate:g} "
                   "messages/day, priced on LTE, scaled to a day",
                   f"POP3 {p['joules_per_day']:,.0f} J/day (tail {p['tail_share']:.0%}) against IMAP "
                   f"{i['joules_per_day']:,.0f} J/day (tail {i['tail_share']:.0%}): {ratio:.3f} x",
                   verdict, condition,
                   numbers={"ratio": round(ratio, 4), "pop3": p, "imap": i, "rate": rate,
                            "imap_poll_s": imap_poll_s or PHONE_POLL_S},
                   server=kind, thresholds=_thresholds("phone_same_energy_ratio", "phone_poll_s"), seeds=lab.seeds,
                   interval=(f"POP3 {min(p['joules_per_day_seeds']):,.0f} to {max(p['joules_per_day_seeds']):,.0f}, "
                             f"IMAP {min(i['joules_per_day_seeds']):,.0f} to {max(i['joules_per_day_seeds']):,.0f} "
                             f"J/day over {len(lab.seeds)} seeds") if len(lab.seeds) > 1 else "")


# ---- JMAP's own claims, on Cyrus against its IMAP (issue 20) ---------------------------------------------------
def _cyrus_missing(key: str, claim: str, quote: str, experiment: str) -> Verdict | None:
    """The row of a JMAP claim when Cyrus cannot run here (the reason as Cyrus's check gives it), else None."""
    from mailstudy.servers.cyrus import cyrus_available

    why = cyrus_available()
    if why is None:
        return None
    return Verdict(key, claim, quote, experiment, f"not run: Cyrus is not available here ({why})", NOT_MEASURABLE,
                   "JMAP is measured on Cyrus only (the one server here that speaks it)", server="cyrus")


def _spread(values) -> str:
    return f"{min(values):,} to {max(values):,}" if min(values) != max(values) else f"{values[0]:,}"


def verdict_jmap_list(api_requests: int, jmap_round_trips: int, imap_round_trips: int) -> str:
    """Supported when the list took at most :data:`JMAP_LIST_MAX_REQUESTS` API requests and JMAP's whole session
    (discovery included) fewer round trips than IMAP's; holds only when the session resource is kept when the
    list is one request but discovery makes the session no shorter than IMAP's; contradicted otherwise."""
    if api_requests > JMAP_LIST_MAX_REQUESTS:
        return CONTRADICTED
    return SUPPORTED if jmap_round_trips < imap_round_trips else HOLDS_ONLY_WHEN


def claim_jmap_list(lab: Lab, kind: str = "cyrus") -> Verdict:
    """JMAP's header-first list with previews against IMAP's header-first, on Cyrus, over the lab's seeds."""
    claim = "JMAP lists the newest messages with their previews in one request"
    quote = "(not the article's; issue 20:) JMAP's promise of one request for the newest headers with previews"
    experiment = (f"list {lab.messages} messages on Cyrus: JMAP discovery, then Email/query + Email/get of the "
                  "list's properties (preview among them) by back-reference; IMAP header-first (LOGIN, SELECT, "
                  "FETCH of every header, LOGOUT) on the same mailbox; nothing opened")
    missing = _cyrus_missing("jmap-list-one-request", claim, quote, experiment)
    if missing:
        return missing
    runs = lab.jmap_lists()
    worst = max(runs, key=lambda r: (r["jmap_api_requests"], r["jmap_round_trips"] - r["imap_round_trips"]))
    verdict = verdict_jmap_list(worst["jmap_api_requests"], worst["jmap_round_trips"], worst["imap_round_trips"])
    col = {k: [r[k] for r in runs] for k in runs[0]}
    measured = (f"JMAP {_spread(col['jmap_api_requests'])} API request(s) after {_spread(col['jmap_discovery'])} "
                f"of discovery ({_spread(col['jmap_round_trips'])} round trips, {_spread(col['jmap_bytes'])} B), "
                f"IMAP {_spread(col['imap_round_trips'])} round trips ({_spread(col['imap_bytes'])} B) for "
                f"{worst['listed']} messages listed")
    condition = {SUPPORTED: "the list is one POST; discovery is once per session resource, and a client that keeps "
                            "it saves those round trips too",
                 HOLDS_ONLY_WHEN: "only when the client kept the session resource: with discovery the session is "
                                  "no shorter than IMAP's",
                 CONTRADICTED: "the server needed more than one API request for the list"}[verdict]
    return Verdict("jmap-list-one-request", claim, quote, experiment, measured, verdict, condition,
                   numbers={"runs": runs}, server=kind, thresholds=_thresholds("jmap_list_max_requests"),
                   seeds=lab.seeds)


def verdict_jmap_changes(jmap_rts: int, jmap_bytes: int, imap_rts: int, imap_bytes: int) -> str:
    """Supported when JMAP's change sync took at most :data:`JMAP_SYNC_MAX_REQUESTS` round trips and fewer
    bytes than IMAP's CONDSTORE sync; holds only when it wins on one of the two; contradicted on neither."""
    fewer_rts = jmap_rts <= JMAP_SYNC_MAX_REQUESTS and jmap_rts < imap_rts
    fewer_bytes = jmap_bytes < imap_bytes
    if fewer_rts and fewer_bytes:
        return SUPPORTED
    return HOLDS_ONLY_WHEN if fewer_rts or fewer_bytes else CONTRADICTED


def claim_jmap_changes(lab: Lab, kind: str = "cyrus") -> Verdict:
    """Email/changes after new mail against IMAP CONDSTORE's resync, on Cyrus, over the lab's seeds."""
    claim = "JMAP's change sync is cheap"
    quote = "(not the article's; issue 20:) JMAP's promise of cheap change sync (Email/changes)"
    experiment = (f"a device that holds {lab.messages} messages on Cyrus; {JMAP_NEW_MESSAGES} arrive; JMAP: one "
                  "Email/changes + Email/get of the created and updated ids (session resource kept); IMAP: "
                  "LOGIN, SELECT (CONDSTORE), UID FETCH CHANGEDSINCE, the new headers, LOGOUT")
    missing = _cyrus_missing("jmap-change-sync", claim, quote, experiment)
    if missing:
        return missing
    rows, _ = lab.jmap_catch_up()
    sync = rows[rows["workload"] == "change-sync"].assign(bytes=lambda d: d["bytes_up"] + d["bytes_down"])
    j, i = sync[sync["protocol"] == "jmap"], sync[sync["protocol"] == "imap"]
    jr, ir = int(j["round_trips"].max()), int(i["round_trips"].min())
    jb, ib = int(j["bytes"].median()), int(i["bytes"].median())
    verdict = verdict_jmap_changes(jr, jb, ir, ib)
    measured = (f"JMAP {_spread(sorted(int(x) for x in j['round_trips']))} round trip(s), median {jb:,} B; IMAP "
                f"CONDSTORE {_spread(sorted(int(x) for x in i['round_trips']))} round trips, median {ib:,} B "
                f"({ib / jb:.1f} x JMAP's bytes) for {int(j['listed'].median())} new messages")
    condition = {SUPPORTED: "the client kept its session resource and its last state; IMAP logs in anew, as a "
                            "client that polls does, and fetches whole headers where JMAP gets the list's "
                            "properties",
                 HOLDS_ONLY_WHEN: "JMAP wins on round trips or on bytes, not on both",
                 CONTRADICTED: "JMAP's change sync cost more round trips and more bytes than IMAP's"}[verdict]
    return Verdict("jmap-change-sync", claim, quote, experiment, measured, verdict, condition,
                   numbers={"jmap_round_trips": jr, "imap_round_trips": ir, "jmap_bytes": jb, "imap_bytes": ib,
                            "jmap_bytes_seeds": [int(x) for x in j["bytes"]],
                            "imap_bytes_seeds": [int(x) for x in i["bytes"]], "new": JMAP_NEW_MESSAGES},
                   server=kind, thresholds=_thresholds("jmap_sync_max_requests"), seeds=lab.seeds,
                   interval=(f"JMAP {_spread(sorted(int(x) for x in j['bytes']))} B, IMAP "
                             f"{_spread(sorted(int(x) for x in i['bytes']))} B over {len(lab.seeds)} seeds")
                   if len(lab.seeds) > 1 else "")


def verdict_jmap_push(offered: bool, latency_s: float | None) -> str:
    """Not measurable here when the server offers no event stream; supported when it does and the new mail's
    ``state`` event arrived (a latency was measured); contradicted when the stream never told."""
    if not offered:
        return NOT_MEASURABLE
    return SUPPORTED if latency_s is not None else CONTRADICTED


def _event_source_answer(result) -> str:
    """What the server answered to the EventSource request, as the trace shows it."""
    for e in reversed(result.exchanges if result is not None else []):
        if "eventsource" in e.arguments.lower():
            return f"{e.command} {e.arguments} answered {e.status_text}"
    return "no EventSource request was made"


def claim_jmap_push(lab: Lab, kind: str = "cyrus") -> Verdict:
    """JMAP's EventSource against IMAP IDLE, on Cyrus: offered or not, and how late the client knows."""
    claim = "JMAP pushes new mail without a held IMAP connection"
    quote = "(not the article's; issue 20:) JMAP's promise of push over an event stream (EventSource)"
    experiment = ("open the session's eventSourceUrl (types=*, closeafter=state) on Cyrus and deliver a message; "
                  "beside it IMAP IDLE on the same server")
    missing = _cyrus_missing("jmap-push", claim, quote, experiment)
    if missing:
        return missing
    rows, results = lab.jmap_catch_up()
    push = [(r, res) for (_, r), res in zip(rows.iterrows(), results) if r["workload"] == "push"]
    jmap = [(r, res) for r, res in push if r["protocol"] == "jmap"]
    imap = [r for r, _ in push if r["protocol"] == "imap"]
    offered = all(bool(r["offered"]) for r, _ in jmap)
    latencies = [r["latency_s"] for r, _ in jmap if r["latency_s"] == r["latency_s"] and r["latency_s"] is not None]
    verdict = verdict_jmap_push(offered, latencies[0] if offered and len(latencies) == len(jmap) else None)
    said = [_event_source_answer(res) for _, res in jmap]
    answers = sorted(set(said))
    imap_ms = sorted(round(r["latency_s"] * 1000, 1) for r in imap if r["latency_s"] == r["latency_s"])
    measured = "; ".join(f"{a} ({said.count(a)} of {len(said)} seeds)" for a in answers) + \
        f"; IMAP IDLE on the same server told the client in {_spread(imap_ms)} ms"
    if latencies:
        measured += f"; JMAP's state event after {_spread(sorted(round(x * 1000, 1) for x in latencies))} ms"
    why = sorted({str(r["why"]) for r, _ in jmap if r["why"]})
    condition = {NOT_MEASURABLE: "this server offers no JMAP push: " + "; ".join(why) + ". A client polls "
                                 "instead (claim jmap-change-sync: a poll is one round trip)",
                 SUPPORTED: "the event stream told the client of the new mail",
                 CONTRADICTED: "the event stream was open but no state event came"}[verdict]
    return Verdict("jmap-push", claim, quote, experiment, measured, verdict, condition,
                   numbers={"offered": offered, "answers": answers, "why": why, "jmap_latency_s": latencies,
                            "imap_idle_latency_ms": imap_ms},
                   server=kind, thresholds=_thresholds("jmap_push_stream"), seeds=lab.seeds)


#: JMAP's claims: measured on Cyrus whatever servers the ledger runs on.
JMAP_CLAIMS: tuple[Callable, ...] = (claim_jmap_list, claim_jmap_changes, claim_jmap_push)

#: Every claim, in the order the ledger lists them. Each takes ``(lab, server_kind)``.
CLAIMS: tuple[Callable, ...] = (claim_ports, claim_storage, claim_sent_folder, claim_read_state, claim_device_loss,
                                claim_headers_first, claim_partial_read, claim_pop3_top, claim_pop3_one_device,
                                claim_offline, claim_many_messages, claim_folders, claim_spam_virus,
                                claim_push_battery, claim_pop3_polling) + JMAP_CLAIMS


def run_claims(quick: bool = False, servers: list[str] | None = None, seed: int = 0,
               progress: Callable[[str], None] | None = None, n_seeds: int | None = None) -> list[Verdict]:
    """Run every claim's experiment and return the ledger (one row per claim, more when a server differs).

    Quick: 20 messages on the embedded server, ratios over 3 seeds, the phone's days 3 simulated hours long.
    Full: 100 messages on every available server, ratios over 10 seeds (``seed`` to ``seed + n_seeds - 1``), the
    sessions and phone days notebooks 01 and 07 already ran read back from the study's cache (``data/cache``), the
    phone's days 24 hours long, and Dovecot's POP3 lock tried with ``pop3_lock_session = yes`` (it waits about
    11 s before refusing). JMAP's claims run on Cyrus in both (``not-measurable-here`` rows without it).
    """
    servers = servers or (["embedded"] if quick else available_servers())
    n_seeds = n_seeds or (3 if quick else 10)
    lab = Lab(messages=20 if quick else 100, seed=seed, seeds=tuple(range(seed, seed + n_seeds)),
              phone_hours=3.0 if quick else 24.0, cache_dir=None if quick else data_dir("cache"))
    out: list[Verdict] = []
    for fn in CLAIMS:
        kinds = servers if fn in (claim_pop3_one_device,) else servers[:1]
        if fn is claim_ports:
            kinds = ["embedded"]
        if fn in JMAP_CLAIMS:
            kinds = ["cyrus"]
        for kind in kinds:
            if progress:
                progress(f"{fn.__name__} on {kind}")
            t0 = time.monotonic()
            got = fn(lab, kind)
            took = time.monotonic() - t0
            for v in got if isinstance(got, list) else [got]:
                out.append(replace(v, seconds=round(took, 3), seeds=v.seeds or (lab.seed,)))
    if not quick and "dovecot" in servers:
        t0 = time.monotonic()
        v = claim_pop3_one_device(lab, "dovecot", with_lock=True)
        out.append(replace(v, seconds=round(time.monotonic() - t0, 3)))
    return out


def ledger_frame(verdicts: list[Verdict]):
    """The ledger as a DataFrame (``numbers`` as JSON text)."""
    import json

    import pandas as pd

    rows = []
    for v in verdicts:
        d = asdict(v)
        d["numbers"] = json.dumps(d["numbers"], default=str, ensure_ascii=False)
        d["thresholds"] = json.dumps(d["thresholds"], ensure_ascii=False)
        d["seeds"] = " ".join(str(x) for x in d["seeds"])
        rows.append(d)
    return pd.DataFrame(rows, columns=[f for f in Verdict.__dataclass_fields__])


def format_ledger(verdicts: list[Verdict]) -> str:
    """The ledger as text: one block per claim."""
    lines = []
    for v in verdicts:
        lines.append(f"[{v.verdict}] {v.claim}  ({v.server})")
        lines.append(f"    article:    {v.quote}")
        lines.append(f"    experiment: {v.experiment}")
        lines.append(f"    measured:   {v.measured}")
        if v.interval:
            lines.append(f"    interval:   {v.interval}")
        if v.seeds:
            lines.append(f"    seeds:      {', '.join(str(x) for x in v.seeds)}")
        for name, why in v.thresholds.items():
            lines.append(f"    threshold:  {name} = {why}")
        if v.condition:
            lines.append(f"    {'condition' if v.verdict == HOLDS_ONLY_WHEN else 'note'}:  {v.condition}")
    return "\n".join(lines)
