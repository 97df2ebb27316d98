"""Run a fleet day and price it on a radio: joules per device per day, beside the fleet's own device rows.

Why a module of its own: the pure ledger (:mod:`mailstudy.energy.fleet`) needs a fleet's session rows, its
arrivals and the IDLE keep-alive interval; those come from the fleet's modules (orchestration: it starts a
server and runs real sessions through :func:`mailstudy.study.fleet.run_fleet_rows`). Used by
``mailstudy energy --fleet`` and the energy notebook.
"""

from __future__ import annotations

from typing import Iterable

from mailstudy.energy.fleet import device_day_ledger
from mailstudy.energy.radios import RadioModel
from mailstudy.live.fleet import plan
from mailstudy.live.idle import KEEPALIVE_S
from mailstudy.study.fleet import FleetCell, run_fleet_rows


def fleet_energy_rows(cell: FleetCell, models: Iterable[RadioModel], rows: dict | None = None) -> list[dict]:
    """One row per device and radio model: the fleet's device row (staleness, bytes, sessions) with the
    ledger's joules by state added (``total_j``, ``promotion_j``, ..., ``tail_share``), scaled to a day
    (``joules_per_day``); ``radio_bytes_up``/``_down`` are the bytes the day's window charged (the device row's
    ``bytes_*`` include the closing sync, which the window leaves to the next day). ``rows``: the cell's
    :func:`run_fleet_rows` result, if it has already run."""
    rows = rows or run_fleet_rows(cell)
    spec = cell.spec()
    arrivals = list(plan(spec).arrivals)
    out = []
    for dev in rows["devices"]:
        for model in models:
            led = device_day_ledger(model, rows["sessions"], dev["device"], spec.period_s, KEEPALIVE_S, arrivals)
            radio = led.as_row()
            radio["radio_bytes_up"], radio["radio_bytes_down"] = radio.pop("bytes_up"), radio.pop("bytes_down")
            out.append({**dev, **radio, "joules_per_day": led.total_j * 86400.0 / spec.period_s})
    return out
