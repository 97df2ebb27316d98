"""Many devices on one account: the sweeps behind notebook ``04-devices``.

Why a module of its own: the notebook asks four questions of fleets (:mod:`mailstudy.study.fleet`): what a day
costs as devices are added, how far the devices agree (duplicate downloads, availability, read state,
staleness), what is lost (POP3 delete, a lost device), and what flag sync costs as the mailbox grows, naive
against CONDSTORE. The cells and the arithmetic on their rows live here; the charts in
:mod:`mailstudy.faces.plots`. Every number is a count from real sessions under a simulated clock, and a median
over seeds (arrivals, sizes, reads) with its bootstrap interval (:mod:`mailstudy.study.intervals`); counts do not
depend on the machine, so the cells run in parallel through the sweep's executor.
"""

from __future__ import annotations

from dataclasses import fields, replace

from mailstudy.study.fleet import FleetCell, fleet_sweep
from mailstudy.study.intervals import summarize


def device_count_cells(servers, clients, device_counts, hours: float, rate: float, seed: int = 0,
                       read_fraction: float = 0.5, poll_s: float | None = 900, seeds=None) -> list[FleetCell]:
    """Each client profile alone at each device count on each server, on each of ``seeds`` (``seed`` alone by
    default)."""
    base = FleetCell(hours=hours, rate=rate, read_fraction=read_fraction, poll_s=poll_s)
    return [replace(base, server=s, clients=(c,), devices=n, seed=k) for k in _seeds(seeds, seed) for s in servers
            for c in clients for n in device_counts]


def _seeds(seeds, seed: int) -> list[int]:
    return [seed] if seeds is None else list(seeds)


def per_day(fleet_df):
    """The fleet rows with bytes and sessions scaled to one day (``*_per_day``)."""
    out = fleet_df.copy()
    scale = 24.0 / out["hours"].astype(float)
    for c in ("bytes_down", "bytes_up", "sessions", "round_trips"):
        out[f"{c}_per_day"] = out[c].astype(float) * scale
    return out


def loss_cells(server: str, clients, devices: int, hours: float, rate: float, seed: int = 0,
               poll_s: float | None = 900, seeds=None) -> list[FleetCell]:
    """Per client profile: the fleet as it is (the same cell as :func:`device_count_cells`' at that device
    count, so a cached sweep shares it), and the same fleet losing device 0 halfway through."""
    base = FleetCell(server=server, devices=devices, hours=hours, rate=rate, poll_s=poll_s)
    return [replace(base, clients=(c,), seed=k, lose_device=lost, lose_at_h=None if lost is None else hours / 2)
            for k in _seeds(seeds, seed) for c in clients for lost in (None, 0)]


def condstore_cells(server: str, start_counts, hours: float, seed: int = 0, client: str = "neomutt",
                    devices: int = 2, poll_s: float | None = 900, seeds=None) -> list[FleetCell]:
    """Flag sync as the mailbox grows: the same fleet with and without CONDSTORE (``CHANGEDSINCE``). No new mail
    arrives and nobody reads, so every byte down is the cost of keeping the devices in sync."""
    base = FleetCell(server=server, devices=devices, clients=(client,), hours=hours, rate=0.0,
                     read_fraction=0.0, poll_s=poll_s)
    return [replace(base, start_messages=n, condstore=c, seed=k) for k in _seeds(seeds, seed)
            for n in start_counts for c in (False, True)]


def run(cells, cache_dir=None, progress: bool = False, executor=None) -> dict:
    """The cells' device, fleet and session tables (``fleet`` scaled per day as well)."""
    tables = fleet_sweep(cells, cache_dir=cache_dir, progress=progress, executor=executor)
    tables["fleet"] = per_day(tables["fleet"])
    return tables


#: What a fleet row is, apart from its seed: the cell's parameters and its label.
FLEET_KEYS = [f.name for f in fields(FleetCell) if f.name != "seed"] + ["label"]


def summarize_fleet(fleet_df):
    """One row per fleet cell without its seed: each count's median over the seeds with ``_lo``/``_hi`` and
    ``seeds`` (:func:`mailstudy.study.intervals.summarize`)."""
    keys = [k for k in FLEET_KEYS if k in fleet_df.columns]
    df = fleet_df.astype({c: "float64" for c in fleet_df.select_dtypes("number").columns  # pandas' NA to NaN
                          if c not in keys})
    return summarize(df, keys)


def device_tables(servers, clients, device_counts, hours: float, rate: float, loss_clients, condstore_server: str,
                  condstore_counts, seeds, cache_dir=None, executor=None) -> dict:
    """Notebook 04's tables over ``seeds``: ``devices_fleet`` (device counts), ``devices_losses``,
    ``devices_condstore``, each summarized over the seeds, with the per-seed fleet rows (``NAME_seeds``) and
    the per-device rows of the device-count sweep (``devices_per_device``)."""
    seeds = list(seeds)
    sweep_tables = run(device_count_cells(servers, clients, device_counts, hours, rate, seeds=seeds), cache_dir,
                       executor=executor)
    loss = run(loss_cells(servers[0], loss_clients, max(device_counts), hours, rate, seeds=seeds), cache_dir,
               executor=executor)
    cond = run(condstore_cells(condstore_server, condstore_counts, hours, seeds=seeds), cache_dir,
               executor=executor)
    out = {"devices_per_device": sweep_tables["devices"]}
    for name, table in (("devices_fleet", sweep_tables), ("devices_losses", loss), ("devices_condstore", cond)):
        out[f"{name}_seeds"] = table["fleet"]
        out[name] = summarize_fleet(table["fleet"])
    return out
