"""Many devices on one account: the sweeps behind notebook ``04-devices``.

Why a module of its own: the notebook asks four questions of fleets (:mod:`mailstudy.study.fleet`): what a day
costs as devices are added, how far the devices agree (duplicate downloads, availability, read state,
staleness), what is lost (POP3 delete, a lost device), and what flag sync costs as the mailbox grows, naive
against CONDSTORE. The cells and the arithmetic on their rows live here; the charts in
:mod:`mailstudy.faces.plots`. Every number is a count from real sessions under a simulated clock.
"""

from __future__ import annotations

from dataclasses import replace

from mailstudy.study.fleet import FleetCell, fleet_sweep


def device_count_cells(servers, clients, device_counts, hours: float, rate: float, seed: int = 0,
                       read_fraction: float = 0.5, poll_s: float | None = 900) -> list[FleetCell]:
    """Each client profile alone at each device count on each server."""
    base = FleetCell(hours=hours, rate=rate, seed=seed, read_fraction=read_fraction, poll_s=poll_s)
    return [replace(base, server=s, clients=(c,), devices=n) for s in servers for c in clients
            for n in device_counts]


def per_day(fleet_df):
    """The fleet rows with bytes and sessions scaled to one day (``*_per_day``)."""
    out = fleet_df.copy()
    scale = 24.0 / out["hours"].astype(float)
    for c in ("bytes_down", "bytes_up", "sessions", "round_trips"):
        out[f"{c}_per_day"] = out[c].astype(float) * scale
    return out


def loss_cells(server: str, clients, devices: int, hours: float, rate: float, seed: int = 0,
               poll_s: float | None = 900) -> list[FleetCell]:
    """Per client profile: the fleet as it is, and the same fleet losing device 0 halfway through."""
    base = FleetCell(server=server, devices=devices, hours=hours, rate=rate, seed=seed, poll_s=poll_s)
    return [replace(base, clients=(c,), lose_device=lost, lose_at_h=None if lost is None else hours / 2)
            for c in clients for lost in (None, 0)]


def condstore_cells(server: str, start_counts, hours: float, seed: int = 0, client: str = "neomutt",
                    devices: int = 2, poll_s: float | None = 900) -> list[FleetCell]:
    """Flag sync as the mailbox grows: the same fleet with and without CONDSTORE (``CHANGEDSINCE``). No new mail
    arrives and nobody reads, so every byte down is the cost of keeping the devices in sync."""
    base = FleetCell(server=server, devices=devices, clients=(client,), hours=hours, rate=0.0, seed=seed,
                     read_fraction=0.0, poll_s=poll_s)
    return [replace(base, start_messages=n, condstore=c) for n in start_counts for c in (False, True)]


def run(cells, cache_dir=None, progress: bool = False) -> dict:
    """The cells' device, fleet and session tables (``fleet`` scaled per day as well)."""
    tables = fleet_sweep(cells, cache_dir=cache_dir, progress=progress)
    tables["fleet"] = per_day(tables["fleet"])
    return tables
