"""A fleet day's ledger: every session of a device on the simulated clock, and every IDLE keep-alive and push.

Why a module of its own: the question a phone's user asks of a client setting is joules per day, and a fleet
day (:mod:`mailstudy.live.fleet`) is the project's day of real sessions. This turns its public session rows
(``t_sim_s``, ``bytes_up``, ``bytes_down``, ``network_s``, ``held_s``, ``final_round``, ``device``) into one
device's timeline for :func:`mailstudy.energy.ledger.ledger`. Pure: it reads the rows and times it is handed
(the keep-alive interval and the arrivals come from the caller, who has them from the fleet's own modules).

How each row becomes radio activity (ours, said where the rows do not carry the detail):

* a poll: one flight from ``t_sim_s`` lasting its modelled ``network_s``;
* an IDLE connection (a row with ``held_s``): its opening at ``t_sim_s`` (the row's bytes are charged there:
  the row does not split them per event, and at LTE's throughput terms a byte costs under half a microjoule,
  so where they sit changes nothing visible), a ``DONE``/``IDLE`` keep-alive every ``keepalive_s``, a push at
  every arrival while it is open, and its close at ``t_sim_s + held_s``. A server's own unsolicited lines
  (Dovecot's "* OK Still here" every 2 real minutes) and TCP keep-alives are not in the simulated clock and are
  not charged.
* ``final_round`` polls (the fleet's closing sync at the end of the period) are left out: they are the next
  day's first poll. An IDLE connection closed by the final round is kept (it is the day's connection).

The day's window is ``period_s`` long and starts one promotion before 0, so a poll at 0 pays its whole
promotion; the last tail is cut at the window's end.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from mailstudy.energy.ledger import Activity, Ledger, ledger
from mailstudy.energy.radios import RadioModel


def device_activities(sessions: Iterable[dict], device: int, keepalive_s: float,
                      arrivals: Sequence[float] = ()) -> list[Activity]:
    """The radio activity of ``device`` over a fleet's period, from the fleet's session rows (see the module)."""
    mine = sorted((s for s in sessions if s["device"] == device
                   and not (s.get("final_round") and s.get("held_s") is None)),
                  key=lambda s: s["t_sim_s"])
    events: list[tuple[float, float, int, int]] = []  # (t, t_end, up, down)
    for s in mine:
        t = float(s["t_sim_s"])
        held = s.get("held_s")
        if held is None:
            events.append((t, t + float(s.get("network_s") or 0.0), int(s["bytes_up"]), int(s["bytes_down"])))
            continue
        end = t + float(held)
        events.append((t, t, int(s["bytes_up"]), int(s["bytes_down"])))
        k = 1
        while t + k * keepalive_s < end:
            events.append((t + k * keepalive_s, t + k * keepalive_s, 0, 0))
            k += 1
        events += [(a, a, 0, 0) for a in arrivals if t < a < end]
        events.append((end, end, 0, 0))
    events.sort()
    out: list[Activity] = []
    for t, t_end, up, down in events:
        if out and t < out[-1].end:  # an event inside a poll's flight (cannot happen on one device's clock)
            t = out[-1].end
            t_end = max(t, t_end)
        out.append(Activity(t, up, down, t_end if t_end > t else None))
    return out


def batched_polls(sessions: Iterable[dict], device: int, arrivals: Sequence[float], batch: int,
                  period_s: float) -> tuple[list[dict], list[float]]:
    """What-if: ``device`` fetches only on the first poll after ``batch`` new arrivals; the other polls do not
    happen. Returns ``(sessions, delays)``: the device's session rows with the skipped polls left out, and each
    arrival's seconds until a kept poll (or the day's end, ``period_s``, when the last few never make a batch)
    has fetched it.

    Ours (said in the chart and the notebook): the phone learns of an arrival without its radio (a
    notification channel that is awake anyway), so the what-if bounds what batching could save. A kept poll is
    charged its own measured flight plus the bytes of the polls it stands in for (at LTE's throughput terms a
    kilobyte costs under a millijoule); the flight's length is its own. ``batch`` 0 keeps every poll (the day
    as measured). A device holding IDLE (rows with ``held_s``) is returned as is: it has no polls to skip.
    """
    if batch < 0:
        raise ValueError(f"batch must be a whole number >= 0, not {batch!r}")
    mine = sorted((s for s in sessions if s["device"] == device), key=lambda s: s["t_sim_s"])
    if any(s.get("held_s") is not None for s in mine):
        return mine, []
    arr = sorted(arrivals)
    kept: list[dict] = []
    delays: list[float] = []
    pending: list[float] = []  # arrivals not yet fetched
    carry_up = carry_down = 0
    i = 0
    for s in mine:
        t = float(s["t_sim_s"])
        while i < len(arr) and arr[i] <= t:
            pending.append(arr[i])
            i += 1
        if s.get("final_round") or len(pending) >= batch:
            done = t + float(s.get("network_s") or 0.0)
            if not s.get("final_round"):
                delays += [done - a for a in pending]
                kept.append({**s, "bytes_up": int(s["bytes_up"]) + carry_up,
                             "bytes_down": int(s["bytes_down"]) + carry_down})
                pending, carry_up, carry_down = [], 0, 0
            else:
                kept.append(s)
        else:
            carry_up += int(s["bytes_up"])
            carry_down += int(s["bytes_down"])
    pending += arr[i:]
    delays += [max(period_s - a, 0.0) for a in pending if a < period_s]
    return kept, delays


def device_day_ledger(model: RadioModel, sessions: Iterable[dict], device: int, period_s: float,
                      keepalive_s: float, arrivals: Sequence[float] = (), keep_segments: bool = False) -> Ledger:
    """Joules by state of ``device``'s day (a window of ``period_s`` seconds; see the module)."""
    acts = device_activities(sessions, device, keepalive_s, arrivals)
    start = -model.promotion_s
    end = max(start + period_s, acts[-1].end if acts else start)
    return ledger(model, acts, start=start, end=end, keep_segments=keep_segments)
