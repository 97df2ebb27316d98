"""What a fleet is before it runs: its parameters (:class:`FleetSpec`), its seeded schedule (:class:`Plan`) and the
shape of its result (:class:`FleetResult`).

Why a module of its own: the fleet's run (:mod:`mailstudy.live.fleet_run`), its rows
(:mod:`mailstudy.live.fleet_rows`) and the study's fleet cells all need these nouns, and none of them needs the
others' machinery. A fleet's values shared with a single session (size preset, read fraction, client names) are
checked by the one rule for each in :mod:`mailstudy.live.values`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from mailstudy.corpus import Corpus, generate
from mailstudy.errors import MailstudyError
from mailstudy.live.fleet_jmap import device_profile, is_jmap
from mailstudy.live.keeping import KEPT_WAYS, RFC2177_RENEW_S
from mailstudy.live.network_time import LOOPBACK, check_profile
from mailstudy.live.params import SessionParams
from mailstudy.live.values import ParameterValueError, check_flag, check_positive

DAY_S = 86400.0
#: How devices keep their connections: ``poll`` (each connects, logs in and syncs on every poll; ``idle`` lets a
#: client that can IDLE hold one connection) or ``profile`` (each as its client profile keeps it).
BEHAVIOURS = ("poll", "profile")
#: What a device that connects and logs in on every poll does between syncs (:meth:`FleetSpec.way_of`; the others
#: are the kept-connection ways, :data:`mailstudy.live.keeping.KEPT_WAYS`, and ``none``).
RECONNECT = "reconnect"


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
    behaviour: str = "poll"  # one of BEHAVIOURS; "profile": each device keeps its connection as its client does
    compress: bool = False  # the server offers COMPRESS=DEFLATE; a device whose client asks for it (the profile's
    # ``compression``) then uses it, the others do not (RFC 4978: the client decides)
    final_round: bool = True
    profile: str = LOOPBACK  # network profile for the modelled seconds

    def __post_init__(self) -> None:
        if isinstance(self.clients, (str, list)):
            object.__setattr__(self, "clients", (self.clients,) if isinstance(self.clients, str)
                               else tuple(self.clients))
        self._check_sizes_of_things()
        for name in ("condstore", "idle", "compress"):
            check_flag(name, getattr(self, name))
        if self.behaviour not in BEHAVIOURS:
            raise ParameterValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}, not {self.behaviour!r}")
        if self.idle and self.behaviour == "profile":
            raise ParameterValueError("idle is for the poll behaviour; under profile each client IDLEs (or not) as "
                                      "it does by default")
        for c in self.clients:  # each device's session values (client, corpus, read fraction): the one rule each
            SessionParams(workload="header-first" if is_jmap(c) else c, messages=self.start_messages,
                          sizes=self.sizes, seed=self.seed, read_fraction=self.read_fraction)
        for i in range(min(self.devices, len(self.clients))):  # device i and i + len(clients) poll alike
            poll = check_positive("the poll interval", self.poll_of(i), "s")
            if poll > self.hours * 3600:
                raise ParameterValueError(f"poll interval {poll:g} s of device {i} ({self.client_of(i)}) is longer "
                                          f"than the period ({self.hours:g} h)")
        self._check_loss()
        check_profile(self.profile)

    def _check_sizes_of_things(self) -> None:
        """Devices, clients, hours, arrival rate and starting mailbox: whole or finite numbers in range."""
        if isinstance(self.devices, bool) or not isinstance(self.devices, int) or self.devices < 1:
            raise ParameterValueError(f"a fleet needs at least one device, not {self.devices}")
        if not self.clients:
            raise ParameterValueError("a fleet needs at least one client profile")
        check_positive("hours", self.hours, "h")
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not math.isfinite(self.rate) \
                or self.rate < 0:
            raise ParameterValueError(f"the arrival rate must be >= 0 messages per day, not {self.rate}")
        if isinstance(self.start_messages, bool) or not isinstance(self.start_messages, int) \
                or self.start_messages < 0:
            raise ParameterValueError(f"start_messages must be >= 0, not {self.start_messages}")

    def _check_loss(self) -> None:
        if self.lose_device is None:
            return
        if not 0 <= self.lose_device < self.devices:
            raise ParameterValueError(f"lose_device must name one of the {self.devices} devices "
                                      f"(0..{self.devices - 1})")
        if self.lose_at_h is None or not 0 <= self.lose_at_h <= self.hours:
            raise ParameterValueError(f"lose_at_h must be within the period (0..{self.hours:g} h)")

    def client_of(self, i: int) -> str:
        return self.clients[i % len(self.clients)]

    def poll_of(self, i: int) -> float:
        """Device ``i``'s poll interval: ``poll_s`` when given (under ``profile``: only for a client whose user can
        set it), else its client's own default."""
        prof = device_profile(self.client_of(i))
        if self.poll_s is None or (self.behaviour == "profile" and not prof.poll_user_set):
            return float(prof.poll_s)
        return float(self.poll_s)

    def way_of(self, i: int) -> str:
        """What device ``i`` does between syncs: ``idle``, ``noop`` or ``poll`` over a kept connection,
        ``reconnect`` (connect, log in and sync on every poll) or ``none`` (no look of its own: only the final
        round's sync)."""
        prof = device_profile(self.client_of(i))
        if self.behaviour == "poll":
            return "idle" if self.idle and prof.idle else RECONNECT
        if prof.new_mail == "none":
            return "none"
        if prof.protocol == "imap" and prof.keep_connection and prof.new_mail in KEPT_WAYS:
            return prof.new_mail
        return RECONNECT

    def renew_of(self, i: int) -> float:
        """How often device ``i`` (in IDLE) ends its IDLE and checks: its client's own timer under ``profile``, at
        most RFC 2177's 29 minutes; the 29 minutes under ``poll``."""
        own = device_profile(self.client_of(i)).idle_renew_s if self.behaviour == "profile" else 0.0
        return min(own, RFC2177_RENEW_S) if own > 0 else float(RFC2177_RENEW_S)

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
