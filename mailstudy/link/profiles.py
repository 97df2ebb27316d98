"""Network profiles: named links (RTT, bandwidth each way, jitter), each with the source of its figures.

Why a module of its own: a chart that says "4G" must say whose 4G. Every profile here is plain data with its
source beside its numbers, and an assumption is called one. Pure: no sockets, no clock. Units are SI: seconds
and bits per second; ``None`` bandwidth means unlimited (no serialization delay).

Custom links are parsed from the command line's forms (``--rtt 80ms --down 10mbit --up 2mbit --jitter 5ms``) by
:func:`parse_duration` and :func:`parse_rate`, which raise :class:`ProfileError` naming the accepted forms.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from dataclasses import asdict, dataclass, replace

from mailstudy.errors import MailstudyError
from mailstudy.link.traces import load_trace, shipped

#: Linux's usual MSS on a 1500-byte path; the slow-start window is counted in these.
MSS = 1448
#: Initial congestion window in segments (RFC 6928).
INITIAL_WINDOW = 10
#: TCP/IP header bytes per segment on the wire: IPv4 20 + TCP 20 + the timestamps option 12 (on by default in
#: Linux, net.ipv4.tcp_timestamps = 1), so a full segment of 1448 B costs 1500 B, the Ethernet MTU. Link framing
#: below IP (Ethernet's 14 + 4 + preamble and gap, PPP's 2) is not added: a profile's rate is taken as the IP
#: layer's rate (our choice, stated where it is used).
HEADER_BYTES = 52
#: The receive window the link assumes when a profile names none: Linux's largest receive buffer,
#: net.ipv4.tcp_rmem max = 6291456 B, of which tcp_adv_win_scale = 1 advertises half (3 MiB). Our reading of
#: the kernel's defaults; autotuning reaches it only on long transfers, which is where it matters.
RWND_BYTES = 3 * 1024 * 1024
#: How the per-packet jitter is drawn (``jitter_s`` is its scale): ``normal`` (sd = jitter_s, clipped so the
#: delay is never negative; mean about 0), ``uniform`` (-jitter_s .. +jitter_s) and ``exponential`` (mean
#: jitter_s, only ever added: a queue's waiting time is one-sided).
JITTER_DISTRIBUTIONS = ("normal", "uniform", "exponential")
#: The shapes a profile's spread may take, with their tuple lengths.
SPREAD_KINDS = {"uniform": 3, "triangular": 4}

DURATION_FORMS = "a number with a unit: 80ms, 0.08s, 1s or 500us (0 allowed)"
LOSS_FORMS = "a fraction such as 0.01 or a percentage such as 1%"
RATE_FORMS = "a positive number with a unit: 10mbit, 200kbit, 1gbit, 9600bit (bits per second)"


class ProfileError(MailstudyError, ValueError):
    """An unknown profile name or a malformed or impossible link parameter."""


@dataclass(frozen=True)
class Profile:
    """One network: what a session through the link pays. ``down``/``up`` in bit/s (None: unlimited)."""

    name: str
    rtt_s: float = 0.0
    down_bps: float | None = None
    up_bps: float | None = None
    jitter_s: float = 0.0
    slow_start: bool = True  # RFC 6928's initial window, growth per acknowledged byte (schedule.py)
    source: str = ""
    idle_restart: bool = True  # Linux's tcp_slow_start_after_idle = 1 (RFC 5681 4.1)
    rwnd_bytes: int | None = RWND_BYTES  # the receiver's window; None: unlimited
    header_bytes: int = HEADER_BYTES  # TCP/IP bytes per segment serialized with its payload; 0: payload only
    jitter_dist: str = "normal"
    loss: float = 0.0  # the chance that a segment is lost (each direction on its own; recovered, never dropped)
    loss_trace: str | None = None  # a file of 0/1 per segment (1: lost), looping; instead of ``loss``
    down_trace: str | None = None  # Mahimahi delivery opportunities (ms, one 1500 B packet each), looping
    up_trace: str | None = None
    # The spread of each figure, as its source gives it (None: a single figure, no spread published):
    # ("uniform", low, high) or ("triangular", low, high, mode); :meth:`sample` draws from them per seed.
    rtt_spread: tuple | None = None
    down_spread: tuple | None = None
    up_spread: tuple | None = None
    spread_source: str = ""
    sample_seed: int | None = None  # set on a profile drawn by :meth:`sample`

    def __post_init__(self) -> None:
        for side in ("rtt_spread", "down_spread", "up_spread"):
            v = getattr(self, side)
            if v is not None:
                v = tuple(v)  # a cached row or the relay's JSON gives lists
                object.__setattr__(self, side, v)
                if not (v and v[0] in SPREAD_KINDS and len(v) == SPREAD_KINDS[v[0]]
                        and all(isinstance(x, (int, float)) and x > 0 for x in v[1:]) and v[1] <= v[2]
                        and (v[0] != "triangular" or v[1] <= v[3] <= v[2])):
                    raise ProfileError(f"bad {side}: {v!r}; accepted: ('uniform', low, high) or "
                                       f"('triangular', low, high, mode), 0 < low <= mode <= high")
        if not isinstance(self.rtt_s, (int, float)) or math.isnan(self.rtt_s) or self.rtt_s < 0:
            raise ProfileError(f"RTT must be >= 0 s, not {self.rtt_s!r}; accepted: {DURATION_FORMS}")
        if not isinstance(self.jitter_s, (int, float)) or math.isnan(self.jitter_s) or self.jitter_s < 0:
            raise ProfileError(f"jitter must be >= 0 s, not {self.jitter_s!r}; accepted: {DURATION_FORMS}")
        for side in ("down_bps", "up_bps"):
            v = getattr(self, side)
            if v is not None and (not isinstance(v, (int, float)) or math.isnan(v) or v <= 0):
                raise ProfileError(f"{side[:-4]} bandwidth must be > 0 bit/s, not {v!r}; accepted: {RATE_FORMS}")
        if not isinstance(self.loss, (int, float)) or math.isnan(self.loss) or not 0 <= self.loss < 1:
            raise ProfileError(f"loss rate must be in [0, 1), not {self.loss!r}; accepted: {LOSS_FORMS}")
        if self.jitter_dist not in JITTER_DISTRIBUTIONS:
            raise ProfileError(f"unknown jitter distribution {self.jitter_dist!r}; choose one of "
                               f"{', '.join(JITTER_DISTRIBUTIONS)}")
        if self.rwnd_bytes is not None and (not isinstance(self.rwnd_bytes, int) or self.rwnd_bytes < MSS):
            raise ProfileError(f"receive window must be a whole number of bytes >= {MSS}, not {self.rwnd_bytes!r}")
        if not isinstance(self.header_bytes, int) or not 0 <= self.header_bytes <= 120:
            raise ProfileError(f"header bytes must be a whole number in 0..120, not {self.header_bytes!r}")

    @property
    def shaped(self) -> bool:
        """False for a link that changes nothing (loopback): sessions then skip the relay."""
        return bool(self.rtt_s or self.jitter_s or self.down_bps or self.up_bps or self.loss or self.loss_trace
                    or self.down_trace or self.up_trace)

    @property
    def only_delays(self) -> bool:
        """True when the link adds nothing but its round trip: no rate, trace, jitter or loss (TCP's window
        needs a rate to matter, so it is then moot). The model takes its work from such links only."""
        return not (self.down_bps or self.up_bps or self.jitter_s or self.loss or self.loss_trace
                    or self.down_trace or self.up_trace)

    def params(self) -> dict:
        """The parameters every result row carries (``profile`` is the name)."""
        return {"profile": self.name, "rtt_s": self.rtt_s, "down_bps": self.down_bps, "up_bps": self.up_bps,
                "jitter_s": self.jitter_s, "slow_start": self.slow_start, "idle_restart": self.idle_restart,
                "rwnd_bytes": self.rwnd_bytes, "header_bytes": self.header_bytes, "jitter_dist": self.jitter_dist,
                "loss": self.loss, "loss_trace": self.loss_trace, "down_trace": self.down_trace,
                "up_trace": self.up_trace, "sample_seed": self.sample_seed}

    @property
    def spread(self) -> bool:
        return bool(self.rtt_spread or self.down_spread or self.up_spread)

    def sample(self, seed: int) -> Profile:
        """This network as one user of it might see it: each figure with a spread drawn from it (seeded by the
        profile's name and ``seed``), the others as they are. The fixed figures stay on the profile itself."""
        if not self.spread:
            return self
        rng = random.Random(f"profile:{self.name}:{seed}")
        drawn = {}
        for field, spread in (("rtt_s", self.rtt_spread), ("down_bps", self.down_spread),
                              ("up_bps", self.up_spread)):
            if spread is not None:
                drawn[field] = rng.uniform(spread[1], spread[2]) if spread[0] == "uniform" \
                    else rng.triangular(spread[1], spread[2], spread[3])
        return replace(self, sample_seed=int(seed), **drawn)

    def simple(self) -> Profile:
        """The named control ``tcp=simple``: the link as it was before TCP's behaviour was modelled (no slow
        start, no restart after idle, no receive window, payload bytes only). Loss, jitter and traces stay."""
        if not (self.slow_start or self.idle_restart or self.rwnd_bytes or self.header_bytes):
            return self
        return replace(self, name=f"{self.name}+simple-tcp", slow_start=False, idle_restart=False,
                       rwnd_bytes=None, header_bytes=0)

    def to_dict(self) -> dict:
        return asdict(self)


ASSUMED = "assumption (no published figure used)"

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("loopback", source="no shaping: the kernel's loopback (about 50 us per round trip)"),
    Profile("lan", 0.001, 100e6, 100e6,
            source="assumption: switched 100 Mbit/s Ethernet, 1 ms RTT"),
    Profile("4g", 0.055, 21.3e6, 6.3e6,
            source="OpenSignal (Opensignal), State of Mobile USA, Q1 2019: 'average download speeds experienced by "
                   "smartphone users across the U.S.' 21.3 Mbps (all users, not 4G only); 'U.S. users with 4G "
                   "devices ... experienced average upload speeds of 6.3 Mbps'; 'latency ... ranged from 44.1ms to "
                   "66.4ms' (RTT 55 ms is the middle of that range: ours)",
            rtt_spread=("uniform", 0.0441, 0.0664), down_spread=("triangular", 12.1e6, 32.9e6, 18.9e6),
            spread_source="Opensignal, May 2019: latency ranged from 44.1 to 66.4 ms; state download averages "
                          "ranged from 12.1 Mbps (Mississippi) to 32.9 Mbps (New Jersey). Ours: the shapes (RTT "
                          "uniform over its range; download a triangle over the states' range with its mode at "
                          "18.9 Mbps, so that its mean is the national 21.3 Mbps); upload has no published spread"),
    Profile("lte-2012", 0.070, 13e6, 6e6,
            source="Huang et al., MobiSys 2012 (4GTest medians): 13 Mbit/s down, 6 Mbit/s up; "
                   "RTT 70 ms is an assumption (not taken from the paper's abstract)"),
    Profile("3g", 0.150, 2e6, 0.5e6,
            source="assumption: no published figure was found for 150 ms, 2 Mbit/s down, 0.5 Mbit/s up"),
    Profile("edge", 1.000, 200e3, 100e3,
            source="Trojita's IMAP notes: GPRS/EDGE round trips 'can often be larger than one second' "
                   "(RTT 1 s); the rates 200/100 kbit/s are assumptions"),
    Profile("satellite-geo", 0.600, 10e6, 1e6,
            source="physics: light travels 4 x 35,786 km (>= 477 ms) plus processing; 'typical round trip times "
                   "of ~600 ms' (FAU Computer Networks and Communication Systems, 2024); HughesNet's VSAT circuit "
                   "path 'is typically around 600 milliseconds' (Computerworld); the rates 10/1 Mbit/s are "
                   "assumptions (Ookla's GEO medians are higher: docs/network-sources.md)"),
)}


#: Trace-driven links: each direction's rate varies from one moment to the next (Mahimahi traces shipped with
#: mailstudy, generated from the published figure by ``python -m mailstudy.link.tracegen``; the variation is
#: ours). Apart from PROFILES so that sweeps over PROFILES keep their size; :func:`get_profile` knows both.
TRACED: dict[str, Profile] = {p.name: p for p in (
    Profile("4g-trace", 0.055, down_trace="4g-us-2019-down.trace", up_trace="4g-us-2019-up.trace",
            rtt_spread=("uniform", 0.0441, 0.0664),
            spread_source="Opensignal, May 2019: latency ranged from 44.1 to 66.4 ms (uniform over it: ours)",
            source="traces whose means are Opensignal's US Q1 2019 averages (21.3 Mbps down, all users; 6.3 Mbps "
                   "up, users with 4G devices); their variation is an assumption (mailstudy.link.tracegen); RTT "
                   "55 ms, the middle of the 44.1-66.4 ms range Opensignal gives"),
    Profile("lte-2012-trace", 0.070, down_trace="lte-2012-down.trace", up_trace="lte-2012-up.trace",
            source="traces whose means are Huang et al.'s MobiSys 2012 LTE medians (13 Mbps down, 6 Mbps up); "
                   "their variation and the 70 ms RTT are assumptions"),
)}


def get_profile(profile: str | Profile | dict) -> Profile:
    """A :class:`Profile` from a name, a Profile, or a dict of its fields (as a cached row holds it)."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, dict):
        return Profile(**{k: v for k, v in profile.items() if k in Profile.__dataclass_fields__})
    try:
        return PROFILES[str(profile)] if str(profile) in PROFILES else TRACED[str(profile)]
    except KeyError:
        raise ProfileError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}, "
                           f"{', '.join(TRACED)}, or a custom link with --rtt/--down/--up/--jitter") from None


def rows() -> list[dict]:
    """The profiles table, one dict per profile (for pandas: ``pd.DataFrame(rows())``)."""
    return [p.to_dict() for p in PROFILES.values()]


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(us|ms|s)\s*$")
_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kmg]?)(?:bit|bps)\s*$", re.IGNORECASE)
_DURATION_SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_RATE_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_duration(text: str, what: str = "RTT") -> float:
    """``"80ms"`` -> 0.08 (seconds). Negative or unit-less values raise :class:`ProfileError`."""
    m = _DURATION.match(str(text))
    if not m:
        raise ProfileError(f"bad {what} {text!r}; accepted: {DURATION_FORMS}")
    return float(m.group(1)) * _DURATION_SCALE[m.group(2)]


def parse_rate(text: str, what: str = "bandwidth") -> float:
    """``"10mbit"`` -> 1e7 (bit/s). Zero, negative or unit-less values raise :class:`ProfileError`."""
    m = _RATE.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise ProfileError(f"bad {what} {text!r}; accepted: {RATE_FORMS}")
    return float(m.group(1)) * _RATE_SCALE[m.group(2).lower()]


def parse_loss(text: str | float) -> float:
    """``"1%"`` or ``"0.01"`` -> 0.01. Outside [0, 1) or not a number: :class:`ProfileError` (one line)."""
    t = str(text).strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise ProfileError(f"bad loss rate {text!r}; accepted: {LOSS_FORMS}") from None
    if math.isnan(v) or not 0 <= v < 1:
        raise ProfileError(f"loss rate must be in [0, 1), not {text!r}; accepted: {LOSS_FORMS}")
    return v


def custom(base: str | Profile = "loopback", rtt: str | None = None, down: str | None = None,
           up: str | None = None, jitter: str | None = None, slow_start: bool | None = None,
           loss: str | float | None = None, tcp: str | None = None, down_trace: str | None = None,
           up_trace: str | None = None) -> Profile:
    """``base`` with the given command-line values put in; named ``custom`` when any value changed it.
    ``tcp="simple"`` gives the named control (:meth:`Profile.simple`); ``tcp="full"`` (the default) keeps
    TCP's behaviour. A trace replaces the rate of its direction."""
    p = get_profile(base)
    if tcp not in (None, "full", "simple"):
        raise ProfileError(f"unknown tcp mode {tcp!r}; choose full (slow start, restart after idle, receive "
                           f"window, header bytes) or simple (none of them: the old link)")
    changes: dict = {}
    if rtt is not None:
        changes["rtt_s"] = parse_duration(rtt, "RTT")
    if down is not None:
        changes["down_bps"] = parse_rate(down, "down bandwidth")
    if up is not None:
        changes["up_bps"] = parse_rate(up, "up bandwidth")
    if jitter is not None:
        changes["jitter_s"] = parse_duration(jitter, "jitter")
    if loss is not None:
        changes["loss"] = parse_loss(loss)
    for side, path in (("down", down_trace), ("up", up_trace)):
        if path is not None:
            load_trace(path)  # a bad file fails here, naming the line, not in the relay
            changes[f"{side}_trace"] = str(path) if str(path) in shipped() else str(Path(path).resolve())
            changes[f"{side}_bps"] = None
    if slow_start is not None and slow_start != p.slow_start:
        changes["slow_start"] = slow_start
    if changes:
        named = "custom" if set(changes) - {"slow_start"} else f"{p.name}{'+' if slow_start else '-no-'}slow-start"
        p = replace(p, name=named, source=f"custom link (from {p.name})", **changes)
    return p.simple() if tcp == "simple" else p


def format_rate(bps: float | None) -> str:
    """``21.3e6`` -> ``"21.3 Mbit/s"``; None -> ``"unlimited"``."""
    if not bps:
        return "unlimited"
    for scale, unit in ((1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")):
        if bps >= scale:
            return f"{bps / scale:g} {unit}"
    return f"{bps:g} bit/s"


def format_duration(seconds: float) -> str:
    """``0.055`` -> ``"55 ms"``."""
    return f"{seconds * 1e3:g} ms" if seconds < 10 else f"{seconds:g} s"
