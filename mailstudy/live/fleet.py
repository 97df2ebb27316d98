"""A fleet: N devices on one account over a simulated day, every session real, the clock simulated.

Why: the article's central claims are about devices (IMAP keeps one mailbox for all of them; POP3 brings mail
down to one; losing an IMAP device loses nothing). A fleet turns them into measured facts: mail arrives as a
seeded Poisson process and is really delivered into the running server; each device polls on its own interval
(staggered starts) with its client profile (:mod:`mailstudy.live.client_profiles`); the user reads a seeded
share of the new mail, each message on one device picked by a seeded draw; optionally one device is lost.

The clock is simulated: nothing sleeps. Events (arrivals, polls, the loss) are sorted by simulated time (at the
same moment an arrival comes before a poll, then by device number) and the sessions run back to back against
the real server. A session's seconds on the network come from :mod:`mailstudy.live.network_time` (loopback
measured today, the latency model when it lands). Staleness is simulated time: the poll that first shows a
message minus its arrival. A device reads a message in the session that first lists it, so under IMAP the
\\Seen flag is on the server from then on and under POP3 only on that device.

With ``final_round`` (the default) every device still in use syncs once more at the end of the period, without
reading (the user has stopped), so the end state is "after one full round of polls"; that is the state the
rows describe.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field

from mailstudy.corpus import SIZE_PRESETS, Corpus, generate
from mailstudy.errors import MailstudyError
from mailstudy.link import BASELINE, Link, LinkError, Profile
from mailstudy.live.client_profiles import CLIENTS, Account, Catalog, get_profile
from mailstudy.live.devices import Device
from mailstudy.live.idle import KEEPALIVE_S, IdleConnection
from mailstudy.live.network_time import LOOPBACK, check_profile, network_seconds
from mailstudy.live.pop3_lock import probe_concurrent_pop3
from mailstudy.live.trace import DOWN
from mailstudy.servers.dovecot import IDLE_NOTICE, TIMING_TEXT

DAY_S = 86400.0
_SESSION_COUNTS = ("bytes_up", "bytes_down", "commands", "round_trips")
_SUMMED = ("server_timing_bytes",)  # summed over sessions as the counts are


class FleetError(MailstudyError, RuntimeError):
    """The fleet could not go on (a server died mid-fleet); the message says when, on which device and why."""


@dataclass(frozen=True)
class FleetSpec:
    """One fleet: who syncs, how often, for how long, and what mail arrives. Everything seeded."""

    devices: int = 2
    clients: tuple[str, ...] = ("thunderbird",)  # device i runs clients[i % len(clients)]
    hours: float = 24.0
    rate: float = 100.0  # new messages per day (Poisson)
    poll_s: float | None = None  # every device's poll interval; None: each client profile's own
    start_messages: int = 0
    sizes: str = "buchner2009"
    read_fraction: float = 0.5
    seed: int = 0
    lose_device: int | None = None  # index of a device lost at lose_at_h
    lose_at_h: float | None = None
    condstore: bool = False  # IMAP flag sync with CHANGEDSINCE where the server offers CONDSTORE
    idle: bool = False  # devices whose client profile can IDLE hold a connection instead of polling
    final_round: bool = True
    profile: str = LOOPBACK  # network profile for the modelled seconds

    def __post_init__(self) -> None:
        if isinstance(self.clients, (str, list)):
            object.__setattr__(self, "clients", (self.clients,) if isinstance(self.clients, str)
                               else tuple(self.clients))
        if self.devices < 1:
            raise ValueError(f"a fleet needs at least one device, not {self.devices}")
        if not self.clients:
            raise ValueError("a fleet needs at least one client profile")
        for c in self.clients:
            get_profile(c)
        if self.hours <= 0:
            raise ValueError(f"the period must be longer than 0 hours, not {self.hours}")
        if self.rate < 0 or math.isnan(self.rate):
            raise ValueError(f"the arrival rate must be >= 0 messages per day, not {self.rate}")
        if self.start_messages < 0:
            raise ValueError(f"start_messages must be >= 0, not {self.start_messages}")
        if self.sizes not in SIZE_PRESETS:
            raise ValueError(f"unknown size preset {self.sizes!r}; choose one of {sorted(SIZE_PRESETS)}")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError(f"read_fraction must be within [0, 1], not {self.read_fraction}")
        for i in range(self.devices):
            poll = self.poll_of(i)
            if poll <= 0:
                raise ValueError(f"the poll interval must be longer than 0 s, not {poll}")
            if poll > self.hours * 3600:
                raise ValueError(f"poll interval {poll:g} s of device {i} ({self.client_of(i)}) is longer than "
                                 f"the period ({self.hours:g} h)")
        if self.lose_device is not None:
            if not 0 <= self.lose_device < self.devices:
                raise ValueError(f"lose_device must name one of the {self.devices} devices (0..{self.devices - 1})")
            if self.lose_at_h is None or not 0 <= self.lose_at_h <= self.hours:
                raise ValueError(f"lose_at_h must be within the period (0..{self.hours:g} h)")
        check_profile(self.profile)

    def client_of(self, i: int) -> str:
        return self.clients[i % len(self.clients)]

    def poll_of(self, i: int) -> float:
        return float(self.poll_s if self.poll_s is not None else get_profile(self.client_of(i)).poll_s)

    @property
    def period_s(self) -> float:
        return self.hours * 3600.0


@dataclass(frozen=True)
class Plan:
    """What the seed decides before anything runs: the mail, when it arrives, who reads what, when devices poll."""

    corpus: Corpus  # start mailbox first, then the arrivals in order
    start: int
    arrivals: tuple[float, ...]  # simulated seconds of each arrival (message start + k)
    readers: dict[int, int]  # corpus index -> device that reads it
    polls: tuple[tuple[float, int], ...]  # (simulated seconds, device)

    @property
    def start_raws(self) -> list[bytes]:
        return [m.raw for m in self.corpus.messages[: self.start]]


def plan(spec: FleetSpec) -> Plan:
    """The seeded schedule of ``spec`` (the same seed gives the same plan on any machine)."""
    rng = random.Random(f"fleet-arrivals:{spec.seed}")
    arrivals: list[float] = []
    t = 0.0
    rate_per_s = spec.rate / DAY_S
    while rate_per_s > 0:
        t += rng.expovariate(rate_per_s)
        if t >= spec.period_s:
            break
        arrivals.append(round(t, 3))
    corpus = generate(spec.start_messages + len(arrivals), spec.sizes, spec.seed)
    reads = random.Random(f"fleet-reads:{spec.seed}")
    readers = {}
    for k in range(len(arrivals)):
        if reads.random() < spec.read_fraction:
            readers[spec.start_messages + k] = reads.randrange(spec.devices)
    polls = []
    for i in range(spec.devices):
        poll = spec.poll_of(i)
        t = poll * i / spec.devices  # staggered starts
        while t < spec.period_s:
            polls.append((round(t, 3), i))
            t += poll
    return Plan(corpus, spec.start_messages, tuple(arrivals), readers, tuple(sorted(polls)))


@dataclass
class FleetResult:
    """Tidy rows: one per session, one per device, one for the fleet."""

    sessions: list[dict] = field(default_factory=list)
    devices: list[dict] = field(default_factory=list)
    fleet: dict = field(default_factory=dict)


def _hms(t: float) -> str:
    return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{int(t % 60):02d}"


def run_fleet(server, spec: FleetSpec, the_plan: Plan | None = None, progress=None) -> FleetResult:
    """Run ``spec`` against ``server`` (running, its INBOX holding ``plan.start_raws``); tidy rows out.

    ``progress(done, total)`` is called after each event. A session that fails stops the fleet with a
    :class:`FleetError` saying when and where. With a network ``profile`` the devices reach the server through
    the latency model's baseline link (:data:`mailstudy.link.BASELINE`), so each session's modelled seconds
    come from work timed as a network makes it (see :mod:`mailstudy.link.model`); on loopback, directly."""
    if spec.profile == LOOPBACK:
        return _run_fleet(server, (server.host, server.imap_port, server.pop3_port), None, spec, the_plan, progress)
    try:
        link = Link(BASELINE, [(server.host, server.imap_port), (server.host, server.pop3_port)]).start()
    except LinkError as exc:
        raise FleetError(f"the fleet's link to the server did not start: {exc}") from None
    try:
        return _run_fleet(server, (link.host, *link.ports), BASELINE, spec, the_plan, progress)
    finally:
        link.stop()


def _run_fleet(server, via: tuple[str, int, int], link: Profile | None, spec: FleetSpec, the_plan: Plan | None,
               progress) -> FleetResult:
    """:func:`run_fleet` with the devices connecting to ``via`` (host, IMAP port, POP3 port), which is ``link``
    in front of ``server`` (None: the server itself)."""
    p = the_plan or plan(spec)
    catalog = Catalog(m.raw for m in p.corpus.messages)
    account = Account(*via, server.account.user, server.account.password, catalog)
    devices = [Device(name=f"device-{i}", keep_bytes=False) for i in range(spec.devices)]  # bytes were checked
    profiles = [get_profile(spec.client_of(i)) for i in range(spec.devices)]
    sha_of = [m.sha256 for m in p.corpus.messages]
    arrived_at: dict[str, float] = {sha_of[k]: 0.0 for k in range(p.start)}
    pending: list[set[str]] = [set() for _ in devices]  # messages each device's user will read there
    first_shown: list[dict[str, float]] = [{} for _ in devices]
    held_at_loss = 0
    truth: set[str] = set()
    condstore = {"offered": None, "used": False}
    result = FleetResult()

    idle = {i for i in range(spec.devices) if spec.idle and profiles[i].idle}
    conns: dict[int, IdleConnection] = {}
    opened_at: dict[int, float] = {}
    first_poll: dict[int, float] = {}
    for t, i in p.polls:
        first_poll.setdefault(i, t)
    # (t, kind, device or arrival): 0 arrival, 1 loss, 2 poll, 3 final round, 4 IDLE keep-alive, 5 IDLE start
    events: list[tuple[float, int, int]] = [(t, 0, k) for k, t in enumerate(p.arrivals)]
    if spec.lose_device is not None:
        events.append((spec.lose_at_h * 3600.0, 1, spec.lose_device))
    events += [(t, 2, i) for t, i in p.polls if i not in idle]
    for i in idle:
        events.append((first_poll[i], 5, i))
        events += [(first_poll[i] + k * KEEPALIVE_S, 4, i)
                   for k in range(1, int((spec.period_s - first_poll[i]) // KEEPALIVE_S) + 1)
                   if first_poll[i] + k * KEEPALIVE_S < spec.period_s]
    if spec.final_round:
        events += [(spec.period_s, 3, i) for i in range(spec.devices)]
    events.sort()

    arrived: list[tuple[float, int]] = []  # delivered together before the next event that looks at the server

    def flush() -> None:
        if arrived:
            _deliver(server, [p.corpus.messages[k].raw for _, k in arrived], arrived[0][0])
            for t_arrival, k in arrived:
                arrived_at[sha_of[k]] = t_arrival
                if k in p.readers:
                    pending[p.readers[k]].add(sha_of[k])
            arrived.clear()

    def guarded(t: float, idx: int, work):
        try:
            return work()
        except Exception as exc:  # SessionError, IntegrityError: stop the fleet and say where
            raise FleetError(f"fleet stopped at simulated {_hms(t)} on device {idx} ({profiles[idx].name}): "
                             f"{exc}") from exc

    def take(t: float, idx: int, out) -> None:
        """What a sync changed: reads done, messages shown for the first time."""
        pending[idx] -= set(out.read)
        truth.update(out.read)
        for sha in out.new_listed:
            first_shown[idx].setdefault(sha, t)
        if profiles[idx].protocol == "imap":
            condstore["offered"] = bool(condstore["offered"]) or out.condstore_offered
            condstore["used"] = condstore["used"] or out.condstore_used

    def session_row(t: float, idx: int, out, final: bool, held_s: float | None = None) -> None:
        prof = profiles[idx]
        out.result.link = link  # what the model takes out of the session's times
        result.sessions.append({
            "device": idx, "client": prof.name, "protocol": prof.protocol, "t_sim_s": t, "final_round": final,
            "idle": held_s is not None, "held_s": held_s, **{c: out.result.metrics[c] for c in _SESSION_COUNTS},
            "network_s": network_seconds(out.result, spec.profile), "headers": out.headers, "bodies": out.bodies,
            "partial_bodies": out.partial_bodies, "new_listed": len(out.new_listed), "read": len(out.read),
            "exchanges_failed": out.result.metrics["exchanges_failed"],
            "server_timing_bytes": _clock_bytes(out.result.trace.stream(DOWN))})

    def poll(t: float, idx: int, final: bool) -> None:
        to_read = set() if final else set(pending[idx])
        out = guarded(t, idx, lambda: profiles[idx].run(account, devices[idx], to_read, condstore=spec.condstore))
        take(t, idx, out)
        session_row(t, idx, out, final)

    def end_idle(t: float, idx: int, final_sync: bool) -> None:
        conn = conns.pop(idx)
        out = guarded(t, idx, lambda: conn.close(final_sync))
        take(t, idx, out)
        session_row(opened_at[idx], idx, out, final_sync, held_s=t - opened_at[idx])

    for done, (t, kind, idx) in enumerate(events, 1):
        if kind == 0:
            arrived.append((t, p.start + idx))
            if conns:  # an IDLE device hears of it at once
                flush()
                for i in sorted(conns):
                    take(t, i, guarded(t, i, lambda i=i: conns[i].wake(set(pending[i]))))
        else:
            flush()
        if kind == 1:
            held_at_loss = len(devices[idx].store)
            if idx in conns:
                session_row(opened_at[idx], idx, conns.pop(idx).drop(), False, held_s=t - opened_at[idx])
            devices[idx].lose()
            pending[idx].clear()
        elif kind in (2, 3) and not devices[idx].lost:
            if idx in conns:
                end_idle(t, idx, True)
            elif idx not in idle:
                poll(t, idx, kind == 3)
        elif kind == 4 and idx in conns:
            guarded(t, idx, conns[idx].keepalive)
        elif kind == 5 and not devices[idx].lost:
            conns[idx] = IdleConnection(profiles[idx], account, devices[idx], spec.condstore)
            opened_at[idx] = t
            take(t, idx, guarded(t, idx, lambda idx=idx: conns[idx].open(set(pending[idx]))))
        if progress:
            progress(done, len(events))

    for idx in sorted(conns):  # no final round: the IDLE connections end with the period
        end_idle(spec.period_s, idx, False)
    flush()  # mail after the last poll (no final round): on the server, seen by no device
    on_server = _on_server(server, catalog)
    result = _tidy(spec, p, devices, profiles, result, arrived_at, first_shown, truth, on_server, held_at_loss,
                   condstore, server)
    if any(prof.protocol == "pop3" for prof in profiles):
        result.fleet.update(probe_concurrent_pop3(server.host, server.pop3_port, server.account.user,
                                                  server.account.password))
    return result


def _clock_bytes(down: bytes) -> int:
    """Bytes the server sent because of its wall clock, not the workload: Dovecot's "(0.001 + 0.000 secs)" and
    its IDLE "* OK Still here" (every 2 real minutes). Counts that must repeat subtract them."""
    return sum(len(m) for rx in (TIMING_TEXT, IDLE_NOTICE) for m in rx.findall(down))


def _deliver(server, raws: list[bytes], t: float) -> None:
    try:
        server.deliver_many(server.account.user, raws)
    except Exception as exc:
        raise FleetError(f"fleet stopped at simulated {_hms(t)}: delivering a new message failed: {exc}") from exc


def _on_server(server, catalog: Catalog) -> set[str]:
    """The messages the account still holds at the end (read by Message-ID, outside any measured session)."""
    import imaplib

    try:
        with imaplib.IMAP4(server.host, server.imap_port, timeout=60) as c:
            c.login(server.account.user, server.account.password)
            _typ, data = c.select("INBOX", readonly=True)
            found: set[str] = set()
            if int(data[0] or 0):
                _typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                for item in data:
                    if isinstance(item, tuple):
                        found.add(catalog.identify_fields(item[1], "end-of-fleet inventory"))
            c.logout()
    except (OSError, imaplib.IMAP4.error) as exc:
        raise FleetError(f"fleet finished but the server could not be asked what it holds: {exc}") from exc
    return found


def _quantiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[-1]


def _tidy(spec, p, devices, profiles, result, arrived_at, first_shown, truth, on_server, held_at_loss,
          condstore, server) -> FleetResult:
    delivered = set(arrived_at)
    n_delivered = len(delivered) or 1
    params = {"devices": spec.devices, "clients": ",".join(spec.clients), "hours": spec.hours, "rate": spec.rate,
              "start_messages": spec.start_messages, "sizes": spec.sizes, "read_fraction": spec.read_fraction,
              "seed": spec.seed, "condstore": spec.condstore, "idle": spec.idle, "profile": spec.profile,
              "lose_device": spec.lose_device, "lose_at_h": spec.lose_at_h, "server": server.name,
              "server_version": server.version}
    holders = {sha: [i for i, d in enumerate(devices) if sha in d.store] for sha in delivered}
    arrivals = [m.sha256 for m in p.corpus.messages[p.start:]]
    all_delays = []
    for i, (dev, prof) in enumerate(zip(devices, profiles)):
        mine = [s for s in result.sessions if s["device"] == i]
        listed = dev.listed & delivered
        agree = sum(1 for sha in listed if (sha in dev.seen) == (sha in truth))
        delays = [first_shown[i][sha] - arrived_at[sha] for sha in arrivals if sha in first_shown[i]]
        all_delays += delays
        med, p95 = _quantiles(delays)
        row = {**params, "device": i, "client": prof.name, "protocol": prof.protocol, "poll_s": spec.poll_of(i),
               "uses_idle": spec.idle and prof.idle,
               "sessions": len(mine), **{c: sum(s[c] for s in mine) for c in _SESSION_COUNTS},
               "network_s": sum(s["network_s"] for s in mine),
               **{c: sum(s[c] for s in mine) for c in _SUMMED},
               "headers_downloaded": sum(s["headers"] for s in mine),
               "bodies_downloaded": sum(dev.body_downloads.values()),
               "partial_bodies": sum(s["partial_bodies"] for s in mine),
               "reads": sum(s["read"] for s in mine), "listed": len(listed),
               "held_whole": len(set(dev.store) & delivered),
               "availability_listed": len(listed) / n_delivered,
               "availability_offline": len(set(dev.store) & delivered) / n_delivered,
               "read_agreement": agree / len(listed) if listed else None,
               "sole_holder": sum(1 for sha, h in holders.items() if h == [i] and sha not in on_server),
               "lost": dev.lost, "held_at_loss": held_at_loss if dev.lost else None,
               "staleness_median_s": med, "staleness_p95_s": p95, "shown_new": len(delays)}
        result.devices.append(row)
    # read-state agreement over the fleet: messages some device lists whose flag matches the truth everywhere
    listed_anywhere = {sha for d in devices for sha in d.listed & delivered}
    agreeing = sum(1 for sha in listed_anywhere
                   if all((sha in d.seen) == (sha in truth) for d in devices if sha in d.listed))
    downloads = sum(sum(d.body_downloads.values()) for d in devices)
    distinct = len({sha for d in devices for sha in d.body_downloads})
    med, p95 = _quantiles(all_delays)
    result.fleet = {
        **params, "sessions": len(result.sessions),
        **{c: sum(s[c] for s in result.sessions) for c in _SESSION_COUNTS},
        "network_s": sum(s["network_s"] for s in result.sessions),
        **{c: sum(s[c] for s in result.sessions) for c in _SUMMED},
        "delivered": len(delivered), "arrivals": len(p.arrivals), "reads_planned": len(p.readers),
        "reads": len(truth), "body_downloads": downloads, "duplicate_downloads": downloads - distinct,
        "read_agreement": agreeing / len(listed_anywhere) if listed_anywhere else None,
        "on_server": len(on_server & delivered),
        "messages_only_on_one_device": sum(1 for sha, h in holders.items() if len(h) == 1 and sha not in on_server),
        "messages_lost": sum(1 for sha, h in holders.items() if not h and sha not in on_server),
        "availability_min": min(r["availability_listed"] for r in result.devices),
        "staleness_median_s": med, "staleness_p95_s": p95,
        "condstore_offered": condstore["offered"], "condstore_used": condstore["used"],
    }
    return result


__all__ = ["CLIENTS", "FleetError", "FleetResult", "FleetSpec", "Plan", "plan", "run_fleet"]
