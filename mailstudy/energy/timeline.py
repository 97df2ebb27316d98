"""Timelines for the ledger from what mailstudy already records: a live session's trace, or a list of flights.

Why a module of its own: the ledger takes plain :class:`~mailstudy.energy.ledger.Activity` records; the live
trace (``Trace.chunks``: one ``send``/``recv`` each, stamped with ``perf_counter_ns``) and the shared
:class:`~mailstudy.wire.Flight` are the two shapes sessions come in. Through a link the trace's times are the
client's, that is the phone's: what its radio saw. Pure: it reads the objects it is handed (duck-typed, so this
layer never imports the live one).
"""

from __future__ import annotations

from typing import Any, Iterable

from mailstudy.energy.ledger import Activity, Ledger, ledger
from mailstudy.energy.radios import RadioModel
from mailstudy.wire import UP


def trace_activities(trace: Any) -> list[Activity]:
    """One activity per chunk of a live :class:`~mailstudy.live.trace.Trace`, in seconds from its connect(),
    plus a zero-byte activity at 0 for the connect itself (the SYN is the radio's first packet)."""
    t0 = trace.t_connect_ns or (trace.chunks[0].t if trace.chunks else 0)
    out = [Activity(0.0)]
    for c in trace.chunks:
        n = len(c.data)
        out.append(Activity(max((c.t - t0) / 1e9, 0.0), n if c.direction == UP else 0,
                            0 if c.direction == UP else n))
    return out


def flight_activities(flights: Iterable[Any], scale: float = 1.0, origin: Any = None) -> list[Activity]:
    """One activity per :class:`~mailstudy.wire.Flight` (``t_start`` to ``t_end``), in seconds: times are
    multiplied by ``scale`` (1e-9 for ``perf_counter_ns``) after ``origin`` (default: the first flight's start)
    is taken off."""
    fl = list(flights)
    if not fl:
        return []
    o = fl[0].t_start if origin is None else origin
    return [Activity((f.t_start - o) * scale, f.nbytes if f.direction == UP else 0,
                     0 if f.direction == UP else f.nbytes, (f.t_end - o) * scale) for f in fl]


def session_ledger(result: Any, model: RadioModel, **kwargs) -> Ledger:
    """The ledger of one live session (a :class:`~mailstudy.live.access.SessionResult`, or anything with a
    ``trace``) on ``model``; ``kwargs`` go to :func:`~mailstudy.energy.ledger.ledger`."""
    return ledger(model, trace_activities(result.trace), **kwargs)


def spread_opens(trace: Any, think_s: float) -> list[Activity]:
    """A live header-first session's activity with the user's opens spread out in time: what the radio sees
    when the user reads the list, then opens one message every ``think_s`` seconds (ours: the session ran them
    back to back), instead of all at once.

    The opens are the client's flights after the ``list_ready`` milestone; each open (a command and its answer)
    keeps its own timing and moves to ``think_s`` after the one before; the last flight pair (LOGOUT or QUIT)
    follows the last open as it did. A session without ``list_ready`` or without opens is returned as is."""
    acts = trace_activities(trace)
    t0 = trace.t_connect_ns or (trace.chunks[0].t if trace.chunks else 0)
    ready = trace.milestones.get("list_ready")
    if ready is None:
        return acts
    cut = (ready - t0) / 1e9
    before = [a for a in acts if a.t <= cut]
    after = [a for a in acts[len(before):]]
    units: list[list[Activity]] = []
    for a in after:  # a unit starts with an upward activity that follows a downward one (a new command)
        if a.bytes_up and (not units or units[-1][-1].bytes_down):
            units.append([])
        if units:
            units[-1].append(a)
        else:
            before.append(a)
    if len(units) < 2:
        return acts
    opens, closing = units[:-1], units[-1]
    out = list(before)
    start = out[-1].end if out else 0.0
    for k, unit in enumerate(opens):
        shift = start + (k + 1) * think_s - unit[0].t
        out += [Activity(a.t + shift, a.bytes_up, a.bytes_down, None if a.t_end is None else a.t_end + shift)
                for a in unit]
    shift = out[-1].end + (closing[0].t - opens[-1][-1].end) - closing[0].t
    out += [Activity(a.t + shift, a.bytes_up, a.bytes_down) for a in closing]
    return out
