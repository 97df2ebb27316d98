"""Link traces: Mahimahi delivery-opportunity files and loss files, read once and checked line by line.

Why a module of its own: the relay and the model must read a trace the same way, and a bad file must stop the run
with one line that names the file and the line, before any session starts. The only files read here are the
ones a profile names (``down_trace``, ``up_trace``, ``loss_trace``), so the module sits with the pure layer.

The delivery format is Mahimahi's (Netravali et al., USENIX ATC 2015; ``mm-link``): one integer per line, a
time in milliseconds from the start of the trace, each line one opportunity to deliver one 1500-byte packet;
several lines may share a millisecond; the trace loops with a period of its last timestamp. We also accept
decimals (our extension). A loss file holds one 0 or 1 per line (1: the segment in that position is lost),
looping; blank lines and ``#`` comments are skipped in both.

:data:`SHIPPED` names the traces that come with mailstudy (``mailstudy/link/traces/``, made by
``python -m mailstudy.link.tracegen``).
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

from mailstudy.errors import MailstudyError

#: Bytes one Mahimahi delivery opportunity carries (its MTU-sized packet).
OPPORTUNITY_BYTES = 1500
TRACE_DIR = Path(__file__).resolve().parent / "traces"


class TraceError(MailstudyError, ValueError):
    """A trace file that cannot be used: missing, empty, not numbers, or going back in time."""


def shipped() -> dict[str, Path]:
    """The traces that come with mailstudy, by name (the file name)."""
    return {p.name: p for p in sorted(TRACE_DIR.glob("*.trace"))} if TRACE_DIR.is_dir() else {}


def resolve(path: str | os.PathLike) -> Path:
    """A trace's file: a path, or the name of a shipped trace."""
    p = Path(path)
    if not p.exists() and str(path) in shipped():
        return shipped()[str(path)]
    return p


def _lines(path: str | os.PathLike, what: str):
    p = resolve(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(f"{what} {str(path)!r} cannot be read: {e.strerror if isinstance(e, OSError) else e}; "
                         f"give a file of one number per line, or one of {', '.join(shipped()) or 'none'}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append((n, line))
    if not out:
        raise TraceError(f"{what} {str(path)!r} is empty: it needs one number per line")
    return p, out


def parse_opportunities(lines, name: str) -> tuple[tuple[float, ...], float]:
    """Delivery times in seconds and the loop period (the last time), from ``(line_number, text)`` pairs."""
    times = []
    prev = 0.0
    for n, text in lines:
        try:
            ms = float(text)
        except ValueError:
            raise TraceError(f"{name} line {n}: {text[:40]!r} is not a number of milliseconds") from None
        if math.isnan(ms) or math.isinf(ms) or ms < 0:
            raise TraceError(f"{name} line {n}: {text[:40]!r} is not a time >= 0 ms")
        if ms < prev:
            raise TraceError(f"{name} line {n}: {text[:40]} ms comes before the line above ({prev:g} ms); "
                             f"a trace's times never go back")
        prev = ms
        times.append(ms / 1000)
    if times[-1] <= 0:
        raise TraceError(f"{name} line {lines[-1][0]}: the last time is 0 ms, so the trace has no period to loop")
    return tuple(times), times[-1]


@lru_cache(maxsize=32)
def _load(path: str, mtime: float) -> tuple[tuple[float, ...], float]:
    p, lines = _lines(path, "trace")
    return parse_opportunities(lines, f"trace {str(path)!r}")


def load_trace(path: str | os.PathLike) -> tuple[tuple[float, ...], float]:
    """``(times_s, period_s)`` of a Mahimahi trace (cached while the file is unchanged)."""
    p = resolve(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        mtime = 0.0
    return _load(str(path), mtime)


@lru_cache(maxsize=32)
def _load_loss(path: str, mtime: float) -> tuple[bool, ...]:
    _, lines = _lines(path, "loss trace")
    out = []
    for n, text in lines:
        if text not in ("0", "1"):
            raise TraceError(f"loss trace {str(path)!r} line {n}: {text[:40]!r} is not 0 (delivered) or 1 (lost)")
        out.append(text == "1")
    return tuple(out)


def load_loss(path: str | os.PathLike) -> tuple[bool, ...]:
    """One flag per segment position (True: lost), looping."""
    p = resolve(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        mtime = 0.0
    return _load_loss(str(path), mtime)


def mean_rate_bps(path: str | os.PathLike) -> float:
    """A trace's average capacity: opportunities x 1500 B x 8 / period."""
    times, period = load_trace(path)
    return len(times) * OPPORTUNITY_BYTES * 8 / period
