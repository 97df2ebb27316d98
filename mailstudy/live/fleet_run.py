"""The fleet's loop: simulated events in time order, each handled by one named step, the state in one object.

Why a module of its own: :mod:`mailstudy.live.fleet` says what a fleet is for and starts it; this is how it runs.
Events (:class:`Event`) are sorted by simulated time, then by kind (at the same moment an arrival comes before a
loss, a loss before a poll), then by device. Mail that arrives is delivered together just before the next event
that looks at the server (or at once when a device holds an IDLE connection, which hears of it then). Each
session's counts go to :class:`FleetState`, from which :mod:`mailstudy.live.fleet_rows` makes the tidy rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from mailstudy.link import Profile
from mailstudy.live.client_profiles import Catalog, Destination
from mailstudy.live.devices import Device
from mailstudy.live.engine import SyncOutcome
from mailstudy.live.fleet_jmap import device_profile
from mailstudy.live.fleet_spec import FleetError, FleetSpec, Plan
from mailstudy.live.idle import KeptConnection
from mailstudy.live.keeping import KEPT_WAYS
from mailstudy.live.network_time import network_seconds
from mailstudy.live.trace import DOWN
from mailstudy.servers.dovecot import IDLE_NOTICE, TIMING_TEXT

#: ``bytes_*`` are the protocol's; ``wire_bytes_*`` what crossed the socket (deflated under COMPRESS)
SESSION_COUNTS = ("bytes_up", "bytes_down", "wire_bytes_up", "wire_bytes_down", "commands", "round_trips")


class Event(IntEnum):
    """What happens at a moment of simulated time; the value orders events at the same moment."""

    ARRIVAL = 0  # a new message reaches the account
    LOSS = 1  # a device is lost
    POLL = 2  # a device checks for new mail
    FINAL = 3  # the end of the period: every device still in use syncs once more, without reading
    KEEPALIVE = 4  # an IDLE connection is renewed (RFC 2177's 29 minutes, or the client's own shorter timer)
    IDLE_START = 5  # a device that keeps its connection opens it (at its first poll)


def hms(t: float) -> str:
    return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{int(t % 60):02d}"


def clock_bytes(down: bytes) -> int:
    """Bytes the server sent because of its wall clock, not the workload: Dovecot's "(0.001 + 0.000 secs)" and
    its IDLE "* OK Still here" (every 2 real minutes). Counts that must repeat subtract them."""
    return sum(len(m) for rx in (TIMING_TEXT, IDLE_NOTICE) for m in rx.findall(down))


@dataclass
class FleetState:
    """Everything the run learns that the rows report: per device and for the fleet."""

    devices: list[Device]
    profiles: list
    arrived_at: dict[str, float]  # sha256 -> simulated arrival (0 for the starting mailbox)
    pending: list[set[str]]  # per device: messages its user will read there
    first_shown: list[dict[str, float]]  # per device: sha256 -> simulated time it was first listed
    truth: set[str] = field(default_factory=set)  # messages the user has read (somewhere)
    held_at_loss: int = 0
    condstore_offered: bool | None = None
    condstore_used: bool = False
    sessions: list[dict] = field(default_factory=list)


class FleetRun:
    """One fleet's run against a server reached at ``via`` (host, IMAP port, POP3 port) through ``link``;
    ``http_port``: its JMAP port there, for JMAP devices (:mod:`mailstudy.live.fleet_jmap`)."""

    def __init__(self, server, via: tuple[str, int, int], link: Profile | None, spec: FleetSpec, plan: Plan,
                 http_port: int = 0):
        self.server, self.link, self.spec, self.plan = server, link, spec, plan
        self.catalog = Catalog(m.raw for m in plan.corpus.messages)
        self.account = Destination(*via, server.account.user, server.account.password, self.catalog)
        self.sha_of = [m.sha256 for m in plan.corpus.messages]
        n = spec.devices
        self.state = FleetState(
            devices=[Device(name=f"device-{i}", keep_bytes=False) for i in range(n)],  # bytes were checked
            profiles=[self.profile_of(spec.client_of(i), via[0], http_port) for i in range(n)],
            arrived_at={self.sha_of[k]: 0.0 for k in range(plan.start)},
            pending=[set() for _ in range(n)], first_shown=[{} for _ in range(n)])
        self.ways = [spec.way_of(i) for i in range(n)]
        self.kept = {i for i in range(n) if self.ways[i] in KEPT_WAYS}
        self.conns: dict[int, KeptConnection] = {}
        self.opened_at: dict[int, float] = {}
        self.arrived: list[tuple[float, int]] = []  # delivered together before the next event that looks

    @staticmethod
    def profile_of(client: str, host: str, http_port: int):
        """A device's client profile; a JMAP one connects to ``host``:``http_port``."""
        prof = device_profile(client)
        return prof.at(host, http_port) if prof.protocol == "jmap" else prof

    # -- the loop ----------------------------------------------------------------------------------------------
    def events(self) -> list[tuple[float, Event, int]]:
        """Every event of the period, in order: (simulated seconds, kind, device or arrival number)."""
        spec, p = self.spec, self.plan
        events = [(t, Event.ARRIVAL, k) for k, t in enumerate(p.arrivals)]
        if spec.lose_device is not None:
            events.append((spec.lose_at_h * 3600.0, Event.LOSS, spec.lose_device))
        first_poll: dict[int, float] = {}
        for t, i in p.polls:
            if i in self.kept and i not in first_poll:
                events.append((t, Event.IDLE_START, i))  # a kept connection opens at the first poll
            elif self.ways[i] not in ("idle", "none"):  # IDLE: its timer is its renewal; none: no look of its own
                events.append((t, Event.POLL, i))
            first_poll.setdefault(i, t)
        for i in (i for i in self.kept if self.ways[i] == "idle"):
            every = spec.renew_of(i)
            renewals = int((spec.period_s - first_poll[i]) // every)
            events += [(first_poll[i] + k * every, Event.KEEPALIVE, i) for k in range(1, renewals + 1)
                       if first_poll[i] + k * every < spec.period_s]
        if spec.final_round:
            events += [(spec.period_s, Event.FINAL, i) for i in range(spec.devices)]
        return sorted(events)

    def run(self, progress=None) -> FleetState:
        events = self.events()
        steps = {Event.ARRIVAL: self.arrival, Event.LOSS: self.loss, Event.POLL: self.poll, Event.FINAL: self.final,
                 Event.KEEPALIVE: self.keepalive, Event.IDLE_START: self.idle_start}
        for done, (t, kind, idx) in enumerate(events, 1):
            if kind != Event.ARRIVAL:
                self.flush()
            steps[kind](t, idx)
            if progress:
                progress(done, len(events))
        for idx in sorted(self.conns):  # no final round: the IDLE connections end with the period
            self.end_idle(self.spec.period_s, idx, False)
        self.flush()  # mail after the last poll (no final round): on the server, seen by no device
        return self.state

    # -- the steps, one per kind of event ----------------------------------------------------------------------
    def arrival(self, t: float, k: int) -> None:
        self.arrived.append((t, self.plan.start + k))
        idling = sorted(i for i in self.conns if self.ways[i] == "idle")
        if idling:  # an IDLE device hears of it at once
            self.flush()
            for i in idling:
                self.take(t, i, self.guarded(t, i, lambda i=i: self.conns[i].wake(set(self.state.pending[i]))))

    def loss(self, t: float, idx: int) -> None:
        st = self.state
        st.held_at_loss = len(st.devices[idx].store)
        if idx in self.conns:
            self.session_row(self.opened_at[idx], idx, self.conns.pop(idx).drop(), False,
                             held_s=t - self.opened_at[idx])
        st.devices[idx].lose()
        st.pending[idx].clear()

    def poll(self, t: float, idx: int, final: bool = False) -> None:
        if self.state.devices[idx].lost:
            return
        if idx in self.conns:
            if final:
                self.end_idle(t, idx, True)
            else:  # the kept connection's own check: NOOP, or the whole sync over it
                pending = set(self.state.pending[idx])
                self.take(t, idx, self.guarded(t, idx, lambda: self.conns[idx].check(pending)))
        elif idx not in self.kept:
            to_read = set() if final else set(self.state.pending[idx])
            profile, device = self.state.profiles[idx], self.state.devices[idx]
            out = self.guarded(t, idx, lambda: profile.run(self.account, device, to_read,
                                                           condstore=self.spec.condstore))
            self.take(t, idx, out)
            self.session_row(t, idx, out, final)

    def final(self, t: float, idx: int) -> None:
        self.poll(t, idx, final=True)

    def keepalive(self, t: float, idx: int) -> None:
        """The IDLE's renewal: DONE and IDLE (``poll``), or the client's own check (``profile``)."""
        if idx not in self.conns:
            return
        if self.spec.behaviour == "profile":
            pending = set(self.state.pending[idx])
            self.take(t, idx, self.guarded(t, idx, lambda: self.conns[idx].check(pending)))
        else:
            self.guarded(t, idx, self.conns[idx].keepalive)

    def idle_start(self, t: float, idx: int) -> None:
        st = self.state
        if st.devices[idx].lost:
            return
        self.conns[idx] = KeptConnection(st.profiles[idx], self.account, st.devices[idx], self.spec.condstore,
                                         mode=self.ways[idx])
        self.opened_at[idx] = t
        self.take(t, idx, self.guarded(t, idx, lambda: self.conns[idx].open(set(st.pending[idx]))))

    # -- what the steps share ----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Deliver the mail that has arrived since the last look at the server."""
        if not self.arrived:
            return
        t0 = self.arrived[0][0]
        try:
            self.server.deliver_many(self.server.account.user, [self.plan.corpus.messages[k].raw
                                                                for _, k in self.arrived])
        except Exception as exc:
            raise FleetError(f"fleet stopped at simulated {hms(t0)}: delivering a new message failed: {exc}") from exc
        for t_arrival, k in self.arrived:
            self.state.arrived_at[self.sha_of[k]] = t_arrival
            if k in self.plan.readers:
                self.state.pending[self.plan.readers[k]].add(self.sha_of[k])
        self.arrived.clear()

    def guarded(self, t: float, idx: int, work):
        try:
            return work()
        except Exception as exc:  # SessionError, IntegrityError: stop the fleet and say where
            raise FleetError(f"fleet stopped at simulated {hms(t)} on device {idx} "
                             f"({self.state.profiles[idx].name}): {exc}") from exc

    def take(self, t: float, idx: int, out: SyncOutcome) -> None:
        """What a sync changed: reads done, messages shown for the first time."""
        st = self.state
        st.pending[idx] -= set(out.read)
        st.truth.update(out.read)
        for sha in out.new_listed:
            st.first_shown[idx].setdefault(sha, t)
        if st.profiles[idx].protocol == "imap":
            st.condstore_offered = bool(st.condstore_offered) or out.condstore_offered
            st.condstore_used = st.condstore_used or out.condstore_used

    def end_idle(self, t: float, idx: int, final_sync: bool) -> None:
        conn = self.conns.pop(idx)
        out = self.guarded(t, idx, lambda: conn.close(final_sync))
        self.take(t, idx, out)
        self.session_row(self.opened_at[idx], idx, out, final_sync, held_s=t - self.opened_at[idx])

    def session_row(self, t: float, idx: int, out: SyncOutcome, final: bool, held_s: float | None = None) -> None:
        prof = self.state.profiles[idx]
        out.result.link = self.link  # what the model takes out of the session's times
        m = out.result.metrics
        self.state.sessions.append({
            "device": idx, "client": prof.name, "protocol": prof.protocol, "t_sim_s": t, "final_round": final,
            "idle": held_s is not None and self.ways[idx] == "idle", "kept": held_s is not None,
            "way": self.ways[idx], "held_s": held_s, **{c: m[c] for c in SESSION_COUNTS},
            "network_s": network_seconds(out.result, self.spec.profile), "headers": out.headers,
            "bodies": out.bodies, "partial_bodies": out.partial_bodies, "new_listed": len(out.new_listed),
            "read": len(out.read), "exchanges_failed": m["exchanges_failed"], "compressed": out.result.compressed,
            "server_timing_bytes": clock_bytes(out.result.trace.stream(DOWN))})
