"""Network profiles: named links (RTT, bandwidth each way, jitter), each with the source of its figures.

Why a module of its own: a chart that says "4G" must say whose 4G. Every profile here is plain data with its
source beside its numbers, and an assumption is called one. Pure: no sockets, no clock. Units are SI: seconds
and bits per second; ``None`` bandwidth means unlimited (no serialization delay).

Custom links are parsed from the command line's forms (``--rtt 80ms --down 10mbit --up 2mbit --jitter 5ms``) by
:func:`parse_duration` and :func:`parse_rate`, which raise :class:`ProfileError` naming the accepted forms.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace

from mailstudy.errors import MailstudyError

#: Linux's usual MSS on a 1500-byte path; the slow-start window is counted in these.
MSS = 1448
#: Initial congestion window in segments (RFC 6928).
INITIAL_WINDOW = 10

DURATION_FORMS = "a number with a unit: 80ms, 0.08s, 1s or 500us (0 allowed)"
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
    slow_start: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.rtt_s, (int, float)) or math.isnan(self.rtt_s) or self.rtt_s < 0:
            raise ProfileError(f"RTT must be >= 0 s, not {self.rtt_s!r}; accepted: {DURATION_FORMS}")
        if not isinstance(self.jitter_s, (int, float)) or math.isnan(self.jitter_s) or self.jitter_s < 0:
            raise ProfileError(f"jitter must be >= 0 s, not {self.jitter_s!r}; accepted: {DURATION_FORMS}")
        for side in ("down_bps", "up_bps"):
            v = getattr(self, side)
            if v is not None and (not isinstance(v, (int, float)) or math.isnan(v) or v <= 0):
                raise ProfileError(f"{side[:-4]} bandwidth must be > 0 bit/s, not {v!r}; accepted: {RATE_FORMS}")

    @property
    def shaped(self) -> bool:
        """False for a link that changes nothing (loopback): sessions then skip the relay."""
        return bool(self.rtt_s or self.jitter_s or self.down_bps or self.up_bps)

    def params(self) -> dict:
        """The parameters every result row carries (``profile`` is the name)."""
        return {"profile": self.name, "rtt_s": self.rtt_s, "down_bps": self.down_bps, "up_bps": self.up_bps,
                "jitter_s": self.jitter_s, "slow_start": self.slow_start}

    def to_dict(self) -> dict:
        return asdict(self)


ASSUMED = "assumption (no published figure used)"

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("loopback", source="no shaping: the kernel's loopback (about 50 us per round trip)"),
    Profile("lan", 0.001, 100e6, 100e6,
            source="assumption: switched 100 Mbit/s Ethernet, 1 ms RTT"),
    Profile("4g", 0.055, 21.3e6, 6.3e6,
            source="OpenSignal, US, Q1 2019: 21.3 Mbit/s down, 6.3 Mbit/s up, latency 44.1-66.4 ms "
                   "(RTT 55 ms, the middle of that range)"),
    Profile("lte-2012", 0.070, 13e6, 6e6,
            source="Huang et al., MobiSys 2012 (4GTest medians): 13 Mbit/s down, 6 Mbit/s up; "
                   "RTT 70 ms is an assumption (not taken from the paper's abstract)"),
    Profile("3g", 0.150, 2e6, 0.5e6,
            source="assumption: no published figure was found for 150 ms, 2 Mbit/s down, 0.5 Mbit/s up"),
    Profile("edge", 1.000, 200e3, 100e3,
            source="Trojita's IMAP notes: GPRS/EDGE round trips 'can often be larger than one second' "
                   "(RTT 1 s); the rates 200/100 kbit/s are assumptions"),
    Profile("satellite-geo", 0.600, 10e6, 1e6,
            source="physics: light travels 4 x 35,786 km (>= 477 ms) plus processing, about 600 ms RTT; "
                   "the rates 10/1 Mbit/s are assumptions"),
)}


def get_profile(profile: str | Profile | dict) -> Profile:
    """A :class:`Profile` from a name, a Profile, or a dict of its fields (as a cached row holds it)."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, dict):
        return Profile(**{k: v for k, v in profile.items() if k in Profile.__dataclass_fields__})
    try:
        return PROFILES[str(profile)]
    except KeyError:
        raise ProfileError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}, or a custom "
                           f"link with --rtt/--down/--up/--jitter") from None


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


def custom(base: str | Profile = "loopback", rtt: str | None = None, down: str | None = None,
           up: str | None = None, jitter: str | None = None, slow_start: bool | None = None) -> Profile:
    """``base`` with the given command-line values put in; named ``custom`` when any value changed it."""
    p = get_profile(base)
    changes: dict = {}
    if rtt is not None:
        changes["rtt_s"] = parse_duration(rtt, "RTT")
    if down is not None:
        changes["down_bps"] = parse_rate(down, "down bandwidth")
    if up is not None:
        changes["up_bps"] = parse_rate(up, "up bandwidth")
    if jitter is not None:
        changes["jitter_s"] = parse_duration(jitter, "jitter")
    if slow_start is not None and slow_start != p.slow_start:
        changes["slow_start"] = slow_start
    if not changes:
        return p
    named = "custom" if set(changes) - {"slow_start"} else f"{p.name}+slow-start"
    return replace(p, name=named, source=f"custom link (from {p.name})", **changes)


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
