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
