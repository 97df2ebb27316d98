"""The energy ledger: a timeline of packets or flights walked through a radio model into joules by state.

Why: the question a phone's user asks of a mail client is what it costs the battery, and that is decided by
*when* the radio carries data far more than by how many bytes it carries. Given a timeline (each activity: a
time, an optional end, bytes up and down) and a :class:`~mailstudy.energy.radios.RadioModel`, :func:`ledger`
walks the model's state machine and returns joules and seconds in four states:

* ``promotion``: bringing the radio from idle (or from a low tail stage, 3G's FACH) to carry data; a transfer
  small enough for the stage it finds the radio in (3G's FACH under its RLC thresholds) needs none, is carried
  there at that stage's power and restarts that stage's timer;
* ``transfer``: while data flows (activities closer than the model's ``burst_gap_s`` are one transfer), at
  ``beta`` plus the throughput terms' cost per bit;
* ``tail``: after each transfer, until the next or until the tail timer sends the radio to idle;
* ``idle``: the rest of the window, at the idle state's average power (paging wake-ups included).

Conventions (ours, after AT&T ARO's ``RRCStateRangeFactory``): the first packet after a promotion is seen when
the promotion is over, so a promotion occupies the ``promotion_s`` before that packet, cut short where the quiet
spell before it was shorter; the window starts at the first promotion and ends when the last tail does, unless
the caller gives ``start`` and ``end`` (a day, say). Times are float seconds from the timeline's origin.

A timeline whose times are negative or go backwards, or whose activities overlap, is refused with a one-line
:class:`TimelineError` naming the activity: a ledger of a timeline that is not one would be a wrong number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

from mailstudy.energy.radios import RadioModel, Stage
from mailstudy.errors import MailstudyError

#: The ledger's states, in the order tables show them.
CATEGORIES = ("promotion", "transfer", "tail", "idle")


class TimelineError(MailstudyError, ValueError):
    """A timeline that cannot be walked (negative, backwards or overlapping times); one line naming where."""


@dataclass(frozen=True, slots=True)
class Activity:
    """Data the radio carried: at ``t`` (an instant, a packet) or from ``t`` to ``t_end`` (a flight), seconds."""

    t: float
    bytes_up: int = 0
    bytes_down: int = 0
    t_end: float | None = None

    @property
    def end(self) -> float:
        return self.t if self.t_end is None else self.t_end


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time in one state: ``category`` (one of :data:`CATEGORIES`), ``stage`` (the model's name
    for it: ``long DRX``, ``FACH tail``, ...), and the joules it cost."""

    t0: float
    t1: float
    category: str
    stage: str
    joules: float


@dataclass
class Ledger:
    """Joules and seconds by state for one timeline on one radio model."""

    model: str
    start: float
    end: float
    joules: dict[str, float]
    seconds: dict[str, float]
    promotions: int
    transfers: int
    bytes_up: int
    bytes_down: int
    segments: list[Segment] = field(default_factory=list)

    @property
    def total_j(self) -> float:
        return sum(self.joules.values())

    @property
    def tail_share(self) -> float:
        """The tail's share of the whole energy (0 when nothing was spent)."""
        total = self.total_j
        return self.joules["tail"] / total if total > 0 else 0.0

    def as_row(self) -> dict:
        """One flat row: model, window, total, joules and seconds per state, counts, tail share."""
        row = {"radio": self.model, "start_s": self.start, "end_s": self.end, "total_j": self.total_j}
        row.update({f"{c}_j": self.joules[c] for c in CATEGORIES})
        row.update({f"{c}_s": self.seconds[c] for c in CATEGORIES})
        row.update(promotions=self.promotions, transfers=self.transfers, bytes_up=self.bytes_up,
                   bytes_down=self.bytes_down, tail_share=self.tail_share)
        return row


def _check(activities: list[Activity]) -> None:
    prev_end = None
    for i, a in enumerate(activities):
        if not (math.isfinite(a.t) and math.isfinite(a.end)):
            raise TimelineError(f"activity {i}: time {a.t!r} is not a finite number of seconds")
        if a.t < 0:
            raise TimelineError(f"activity {i}: negative time {a.t} s (times are seconds from the timeline's start)")
        if a.end < a.t:
            raise TimelineError(f"activity {i}: ends at {a.end} s, before it starts at {a.t} s")
        if a.bytes_up < 0 or a.bytes_down < 0:
            raise TimelineError(f"activity {i}: negative byte count ({a.bytes_up} up, {a.bytes_down} down)")
        if prev_end is not None and a.t < prev_end:
            raise TimelineError(f"activity {i} starts at {a.t} s, before activity {i - 1} ends at {prev_end} s: "
                                "activities must be in time order and must not overlap")
        prev_end = a.end


def _bursts(activities: list[Activity], gap: float) -> list[tuple[float, float, int, int]]:
    """Activities closer than ``gap`` merged: ``(t0, t1, bytes_up, bytes_down)`` each."""
    out: list[list] = []
    for a in activities:
        if out and a.t - out[-1][1] <= gap:
            b = out[-1]
            b[1] = a.end
            b[2] += a.bytes_up
            b[3] += a.bytes_down
        else:
            out.append([a.t, a.end, a.bytes_up, a.bytes_down])
    return [tuple(b) for b in out]


class _Walk:
    def __init__(self, model: RadioModel, keep: bool) -> None:
        self.model = model
        self.keep = keep
        self.joules = dict.fromkeys(CATEGORIES, 0.0)
        self.seconds = dict.fromkeys(CATEGORIES, 0.0)
        self.segments: list[Segment] = []
        self.promotions = 0

    def add(self, t0: float, t1: float, category: str, stage: str, power_w: float, extra_j: float = 0.0) -> None:
        if t1 <= t0 and not extra_j:
            return
        j = power_w * (t1 - t0) + extra_j
        self.joules[category] += j
        self.seconds[category] += t1 - t0
        if self.keep:
            self.segments.append(Segment(t0, t1, category, stage, j))

    def promote(self, t_from: float, t0: float, seconds: float, power_w: float, stage: Stage) -> None:
        """``stage`` (idle or a tail stage) from ``t_from`` until the promotion that ends at ``t0`` begins."""
        p0 = max(t_from, t0 - seconds)
        self.add(t_from, p0, "idle" if stage is self.model.idle else "tail", stage.name, stage.power_w)
        self.add(p0, t0, "promotion", "promotion", power_w)
        self.promotions += 1

    def quiet(self, t: float, until: float, burst: tuple | None = None, first: int = 0) -> Stage | None:
        """From the end of a transfer at ``t`` through the tail from stage ``first`` (and idle) to ``until``.
        With ``burst`` (``(t0, t1, up, down)``) data arrives at ``until``: the radio is promoted as the stage it
        is in requires, unless that stage carries so small a transfer itself; that stage is returned then."""
        m = self.model
        for stage in m.tail[first:]:
            s_end = t + stage.duration_s
            if until <= s_end:
                if burst is not None and stage.carries(burst[2], burst[3]):
                    self.add(t, until, "tail", stage.name, stage.power_w)
                    return stage
                if burst is not None and stage.promotion_s > 0:
                    self.promote(t, until, stage.promotion_s, stage.promotion_power_w, stage)
                else:
                    self.add(t, until, "tail", stage.name, stage.power_w)
                return None
            self.add(t, s_end, "tail", stage.name, stage.power_w)
            t = s_end
        self.idle(t, until, burst is not None)
        return None

    def idle(self, t: float, until: float, promote: bool) -> None:
        m = self.model
        if promote:
            self.promote(t, until, m.promotion_s, m.promotion_power_w, m.idle)
        else:
            self.add(t, until, "idle", m.idle.name, m.idle.power_w)


def ledger(model: RadioModel, activities: Iterable[Activity], start: float | None = None,
           end: float | None = None, keep_segments: bool = True) -> Ledger:
    """Walk ``activities`` (in time order, not overlapping) through ``model``: joules and seconds by state.

    ``start`` defaults to the first promotion (the radio is idle before the timeline), ``end`` to the end of
    the last tail; a day's ledger gives both (``0`` and ``86400``), so the idle hours count too. An empty
    timeline costs the idle power over ``[start, end]``. ``keep_segments=False`` keeps only the sums (for long
    fleet days).
    """
    acts = list(activities)
    _check(acts)
    walk = _Walk(model, keep_segments)
    bursts = _bursts(acts, model.burst_gap_s)
    if start is None:
        start = bursts[0][0] - model.promotion_s if bursts else 0.0
    if bursts and start > bursts[0][0]:
        raise TimelineError(f"start {start} s is after the first activity at {bursts[0][0]} s")
    last = bursts[-1][1] if bursts else start
    if end is None:
        end = last + model.tail_s
    elif end < last:
        raise TimelineError(f"end {end} s is before the last activity ends at {last} s")
    prev, first = None, 0
    for burst in bursts:
        t0, t1, up, down = burst
        carried = None
        if prev is None:
            walk.idle(start, t0, promote=True)
        else:
            carried = walk.quiet(prev, t0, burst, first)
        bits_j = (model.alpha_up_w_per_mbps * up + model.alpha_down_w_per_mbps * down) * 8 / 1e6
        if carried is None:
            walk.add(t0, t1, "transfer", "transfer", model.transfer_power_w, extra_j=bits_j)
            first = 0
        else:  # carried in a tail stage (3G's FACH): at its power, and its timer starts again after it
            walk.add(t0, t1, "transfer", f"transfer in {carried.name}", carried.power_w, extra_j=bits_j)
            first = model.tail.index(carried)
        prev = t1
    if prev is None:
        walk.idle(start, end, promote=False)
    else:
        walk.quiet(prev, end, None, first)
    return Ledger(model=model.name, start=start, end=end, joules=walk.joules, seconds=walk.seconds,
                  promotions=walk.promotions, transfers=len(bursts), bytes_up=sum(a.bytes_up for a in acts),
                  bytes_down=sum(a.bytes_down for a in acts), segments=walk.segments)
