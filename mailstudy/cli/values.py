"""argparse types for the values several subcommands take (a port, a number of seconds, a count).

Why a module of its own: what counts as a valid port or timeout is one rule for every subcommand; a bad value is
argparse's one-line usage error (exit 2), never a traceback deep inside a server or a replay.
"""

from __future__ import annotations

import argparse
import math


def port(text: str) -> int:
    """A TCP port, 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, not {value}")
    return value


def seconds(text: str) -> float:
    """A positive, finite number of seconds (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds, not {text}")
    return value


def count(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def gigabytes(text: str) -> int:
    """A positive size in gigabytes (10^9 bytes), returned in bytes."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of gigabytes: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of gigabytes, not {text}")
    return int(value * 1e9)
