"""Clients as they keep their connections, beside the reconnect-and-poll baseline: the cells and the table behind
notebook 04's kept-connection section.

Why a module of its own: the device sweeps (:mod:`mailstudy.study.device_counts`) run every device as today's
sweeps do (connect, log in and sync on every poll); this asks the other question of issue 18: what one device
costs and how late it shows new mail when it keeps its connection as its client ships (IDLE, NOOP polling, a
sync over a kept connection; :mod:`mailstudy.live.keeping`), against the same device reconnecting on every poll
of the same client's own interval. Each pair of cells is the same seeded day on the same server, so the
difference is the client's way of keeping its connection alone. COMPRESS on and off is not here yet: it waits
for COMPRESS=DEFLATE in the sessions (issue 18 item 3).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mailstudy.live.client_profiles import get_client
from mailstudy.live.fleet_spec import BEHAVIOURS
from mailstudy.live.keeping import ships_with
from mailstudy.outputs import data_dir
from mailstudy.study.experiment import write_csv_atomically
from mailstudy.study.fleet import FleetCell, fleet_sweep

#: One IMAP client of each way (IDLE, kept poll, NOOP, reconnect) and one POP3 client.
KEPT_CLIENTS = ("thunderbird", "k9", "neomutt", "mbsync", "thunderbird-pop3")
#: The columns of :func:`kept_table`, in order.
KEPT_COLUMNS = ("server", "client", "ships_with", "behaviour", "way", "poll_s", "logins", "commands", "round_trips",
                "bytes_up", "bytes_down", "bytes_per_day", "staleness_median_s", "staleness_max_s")


def kept_cells(servers, clients=KEPT_CLIENTS, hours: float = 24.0, rate: float = 100.0, seed: int = 0,
               devices: int = 1, read_fraction: float = 0.5) -> list[FleetCell]:
    """Per server and client: the day with each device as its client keeps its connection (``profile``) and the
    same day reconnecting on every poll of the client's own interval (``poll``, the baseline)."""
    base = FleetCell(hours=hours, rate=rate, seed=seed, devices=devices, read_fraction=read_fraction, poll_s=None)
    return [replace(base, server=s, clients=(c,), behaviour=b) for s in servers for c in clients for b in BEHAVIOURS]


def poll_sweep_cells(servers, clients=KEPT_CLIENTS, polls=(300.0, 900.0, 3600.0), hours: float = 24.0,
                     rate: float = 100.0, seed: int = 0, devices: int = 1) -> list[FleetCell]:
    """A sweep of the poll interval with each client as it ships: a client whose user can set the interval gets
    each of ``polls``; one whose user cannot keeps its own default, so it is one cell, not one per interval."""
    base = FleetCell(hours=hours, rate=rate, seed=seed, devices=devices, behaviour="profile")
    cells: list[FleetCell] = []
    for s in servers:
        for c in clients:
            settable = get_client(c).poll_user_set
            for poll in polls if settable else (None,):
                cells.append(replace(base, server=s, clients=(c,), poll_s=poll))
    return cells


def kept_table(devices_df):
    """The device rows of :func:`kept_cells` as the notebook shows them: what each client ships with, its way,
    logins, commands, round trips, bytes (and bytes scaled to a day) and staleness."""
    df = devices_df.copy()
    df["ships_with"] = [ships_with(get_client(c)) for c in df["client"]]
    df["bytes_per_day"] = (df["bytes_up"] + df["bytes_down"]).astype(float) * 24.0 / df["hours"].astype(float)
    return df[list(KEPT_COLUMNS)].sort_values(["server", "client", "behaviour"]).reset_index(drop=True)


def kept_comparison(servers, clients=KEPT_CLIENTS, hours: float = 24.0, rate: float = 100.0, seed: int = 0,
                    cache_dir: str | Path | None = data_dir("cache") / "fleet",
                    results: str | Path | None = data_dir("results"), progress: bool = False):
    """Run :func:`kept_cells` (cached per cell) and return :func:`kept_table`; with ``results``, also written
    atomically as ``devices_kept_connections.csv`` there."""
    tables = fleet_sweep(kept_cells(servers, clients, hours, rate, seed), cache_dir=cache_dir, progress=progress)
    table = kept_table(tables["devices"])
    if results is not None:
        write_csv_atomically(table, Path(results) / "devices_kept_connections.csv")
    return table


__all__ = ["KEPT_CLIENTS", "KEPT_COLUMNS", "kept_cells", "kept_comparison", "kept_table", "poll_sweep_cells"]
