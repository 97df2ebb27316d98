"""argparse types for the values several subcommands take (a port, a number of seconds, a count, a size).

Why a module of its own: what counts as a valid port or timeout is one rule for every subcommand; a bad value is
argparse's one-line usage error (exit 2), never a traceback deep inside a server or a replay.
"""

from __future__ import annotations

import argparse
import math


def _parse(text: str, cast, noun: str, ok, rule: str):
    """``cast(text)`` when it parses and ``ok(value)``; else argparse's error: "not NOUN" or "RULE, not TEXT"."""
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{rule}, not {text}")
    return value


def port(text: str) -> int:
    """A TCP port, 1-65535."""
    return _parse(text, int, "a port number", lambda v: 0 < v < 65536, "port must be 1-65535")


def seconds(text: str) -> float:
    """A positive, finite number of seconds (``nan`` and ``inf`` are refused)."""
    return _parse(text, float, "a number of seconds", lambda v: math.isfinite(v) and v > 0,
                  "must be a positive, finite number of seconds")


def count(text: str) -> int:
    """A whole number >= 0."""
    return _parse(text, int, "a whole number", lambda v: v >= 0, "must be 0 or more")


def gigabytes(text: str) -> int:
    """A positive size in gigabytes (10^9 bytes), returned in bytes."""
    value = _parse(text, float, "a number of gigabytes", lambda v: math.isfinite(v) and v > 0,
                   "must be a positive number of gigabytes")
    return int(value * 1e9)
