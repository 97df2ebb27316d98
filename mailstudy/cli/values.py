"""argparse types for the values the subcommands take, each with its range: the one place a range is written.

Why a module of its own: what counts as a valid port, seed, fraction, duration or size is one rule for every
subcommand, checked while the arguments are parsed, so a bad value is argparse's one-line usage error (exit 2)
before any server starts, never a traceback deep inside a server, a relay or a fleet, nor a run that never ends.
``nan`` and ``inf`` are refused everywhere. Upper limits that are not a protocol's own (a fleet's devices, a
simulated period, a link's slowest rate) are ours: they keep one command's work in minutes to hours on one
machine, and the message of each says what to change. :data:`LIMITS` lists them all (the tests pin each).
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Limit:
    """A closed range ``[low, high]`` of one kind of value (``low_open``: ``low`` itself is refused)."""

    noun: str  # what a value is, for "not NOUN: 'x'"
    low: float
    high: float
    unit: str = ""
    low_open: bool = False
    why: str = ""  # why the upper limit is what it is (ours unless a protocol says so)
    said: str = ""  # the rule in words, when they are shorter than the generated ones

    def ok(self, v: float) -> bool:
        return math.isfinite(v) and (v > self.low if self.low_open else v >= self.low) and v <= self.high

    def rule(self) -> str:
        if self.said:
            return self.said
        unit = f" {self.unit}" if self.unit else ""
        low = f"above {_number(self.low)}" if self.low_open else f"at least {_number(self.low)}"
        text = f"must be {low} and at most {_number(self.high)}{unit}"
        return f"{text} ({self.why})" if self.why else text


def _number(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


#: Every range the command line checks, by name; the tests run each name's edges.
LIMITS = {
    "port": Limit("a port number", 1, 65535, said="port must be 1-65535"),
    "seconds": Limit("a number of seconds", 0, 86400, "s", low_open=True),
    "count": Limit("a whole number", 0, 10**18),  # mailbox sizes are capped by their estimate in bytes
    "seed": Limit("a whole number", 0, 2**32 - 1, why="a seed is a 32-bit unsigned number"),
    "fraction": Limit("a number", 0, 1),
    "gigabytes": Limit("a number of gigabytes", 0, 1e6, "GB", low_open=True),
    "preview": Limit("a whole number of bytes", 0, 2**32 - 1, "bytes", why="IMAP partial counts are 32-bit"),
    "session": Limit("a whole number", 0, 2**31 - 1),
    "devices": Limit("a whole number of devices", 1, 64,
                     why="a fleet needs at least one device; 64 is our cap, as each runs real sessions"),
    "hours": Limit("a number of hours", 0, 31 * 24, "h", low_open=True,
                   why="a simulated month at most; our cap"),
    "rate": Limit("a number of messages per day", 0, 10_000, why="every message is really delivered; our cap"),
    "start": Limit("a whole number of messages", 0, 100_000, why="each is delivered before the first poll; our cap"),
    "poll": Limit("a poll interval", 1, 7 * 86400, "s", why="one second to one week"),
    "rtt": Limit("a round-trip time", 0, 10, "s", why="10 s is ten times a GEO satellite's; our cap"),
    "jitter": Limit("a jitter", 0, 10, "s", why="our cap, as for the RTT"),
    "rate_bps": Limit("a bandwidth", 9600, 1e11, "bit/s",
                      why="9600 bit/s is an old modem's, 100 Gbit/s more than loopback; our caps"),
}


def _parse(text: str, cast: Callable, limit: Limit):
    """``cast(text)`` when it parses and lies within ``limit``; else argparse's one-line error (a parser of our
    own says which forms it accepts; int and float only fail, so their failure is put in words here)."""
    try:
        value = cast(text)
    except (ValueError, OverflowError) as exc:
        own = cast not in (int, float, _whole)
        raise argparse.ArgumentTypeError(str(exc) if own else f"not {limit.noun}: {text!r}") from None
    if not limit.ok(float(value)):
        raise argparse.ArgumentTypeError(f"{limit.rule()}, not {text}")
    return value


def _whole(text: str) -> int:
    """An int written as digits (``1e3`` and ``2.0`` are refused: a count is whole)."""
    return int(text)


def ranged(name: str, cast: Callable = float) -> Callable[[str], float]:
    """An argparse type for ``LIMITS[name]``: ``type=ranged("hours")``."""
    limit = LIMITS[name]

    def parse(text: str):
        return _parse(text, cast, limit)

    parse.__name__ = name  # argparse names the type in "invalid NAME value" only when the type raises TypeError
    parse.limit = limit
    return parse


port = ranged("port", _whole)
seconds = ranged("seconds")
count = ranged("count", _whole)
seed = ranged("seed", _whole)
fraction = ranged("fraction")
preview = ranged("preview", _whole)


def gigabytes(text: str) -> int:
    """A positive size in gigabytes (10^9 bytes), returned in bytes."""
    return int(_parse(text, float, LIMITS["gigabytes"]) * 1e9)


_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h``, ``1d`` in seconds; ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h|d)?\s*", text)
    if not m:
        raise ValueError(f"cannot read the interval {text!r}; write e.g. 90s, 10m, 1h")
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def parse_loss(text: str) -> tuple[int, float]:
    """``DEVICE@HOURS`` (``1@12``: device 1 is lost after 12 simulated hours)."""
    m = re.fullmatch(r"\s*(\d+)\s*@\s*([0-9]*\.?[0-9]+)\s*h?\s*", text)
    if not m:
        raise ValueError(f"cannot read --lose {text!r}; write DEVICE@HOURS, e.g. 1@12")
    return int(m.group(1)), float(m.group(2))


def interval(text: str) -> float:
    """A poll interval (``90``, ``90s``, ``10m``, ``1.5h``, ``1d``) in seconds, within ``LIMITS["poll"]``."""
    return _parse(text, parse_interval, LIMITS["poll"])


def _link(name: str, parser: str, what: str) -> Callable[[str], str]:
    """A link option's text (kept as text: the link layer parses it again into its profile) once its value,
    read by the link layer's own parser, lies within ``LIMITS[name]``."""

    def parse(text: str) -> str:
        from mailstudy.link import profiles

        _parse(text, lambda t: getattr(profiles, parser)(t, what), LIMITS[name])
        return text

    parse.__name__ = name
    parse.limit = LIMITS[name]
    return parse


rtt = _link("rtt", "parse_duration", "RTT")
jitter = _link("jitter", "parse_duration", "jitter")
bandwidth = _link("rate_bps", "parse_rate", "bandwidth")
