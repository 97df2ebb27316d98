"""Clients as they keep their connections, beside the reconnect-and-poll baseline: the cells and the table behind
notebook 04's kept-connection section.

Why a module of its own: the device sweeps (:mod:`mailstudy.study.device_counts`) run every device as today's
sweeps do (connect, log in and sync on every poll); this asks the other question of issue 18: what one device
costs and how late it shows new mail when it keeps its connection as its client ships (IDLE, NOOP polling, a
sync over a kept connection; :mod:`mailstudy.live.keeping`), against the same device reconnecting on every poll
of the same client's own interval. Each pair of cells is the same seeded day on the same server, so the
difference is the client's way of keeping its connection alone. A client whose real client asks for
COMPRESS=DEFLATE when the server offers it (the profile's ``compression``) has a third cell: the same day as it
ships, on a server that offers COMPRESS; the bytes on the wire (``wire_bytes_*``, deflated) then fall below the
protocol's (``bytes_*``), which every cell also reports. :func:`kept_wire_per_day` puts the three side by side.
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
#: The cells of each client: (name, the fleet's behaviour, the server offers COMPRESS). The third only for a
#: client that asks for COMPRESS (with COMPRESS off, as shipped is what such a client does on a server without it).
VARIANTS = (("reconnect-and-poll", "poll", False), ("as shipped", "profile", False),
            ("as shipped + COMPRESS", "profile", True))
#: The columns of :func:`kept_table`, in order.
KEPT_COLUMNS = ("server", "client", "ships_with", "compress_default", "variant", "behaviour", "compress", "way",
                "compressed", "poll_s", "logins", "commands", "round_trips", "bytes_up", "bytes_down",
                "wire_bytes_up", "wire_bytes_down", "bytes_per_day", "wire_bytes_per_day", "staleness_median_s",
                "staleness_max_s")


def compress_default(client: str) -> str:
    """What a client does about COMPRESS=DEFLATE as it ships (its profile's ``compression``, with its source)."""
    prof = get_client(client)
    if prof.protocol != "imap":
        return "none (POP3 has no COMPRESS)"
    return "asks for COMPRESS when offered" if prof.compression else "never asks for COMPRESS"


def variant_of(behaviour: str, compress: bool) -> str:
    """The name in :data:`VARIANTS` of a cell's behaviour and COMPRESS."""
    return next(name for name, b, z in VARIANTS if (b, z) == (behaviour, bool(compress)))


def kept_cells(servers, clients=KEPT_CLIENTS, hours: float = 24.0, rate: float = 100.0, seed: int = 0,
               devices: int = 1, read_fraction: float = 0.5) -> list[FleetCell]:
    """Per server and client: the day with each device as its client keeps its connection (``profile``) and the
    same day reconnecting on every poll of the client's own interval (``poll``, the baseline); for a client that
    asks for COMPRESS, also the ``profile`` day on a server that offers it (:data:`VARIANTS`)."""
    base = FleetCell(hours=hours, rate=rate, seed=seed, devices=devices, read_fraction=read_fraction, poll_s=None)
    return [replace(base, server=s, clients=(c,), behaviour=b, compress=z) for s in servers for c in clients
            for _name, b, z in VARIANTS if b in BEHAVIOURS and (not z or get_client(c).compression)]


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
    df["compress_default"] = [compress_default(c) for c in df["client"]]
    df["variant"] = [variant_of(b, z) for b, z in zip(df["behaviour"], df["compress"])]
    per_day = 24.0 / df["hours"].astype(float)
    df["bytes_per_day"] = (df["bytes_up"] + df["bytes_down"]).astype(float) * per_day
    df["wire_bytes_per_day"] = (df["wire_bytes_up"] + df["wire_bytes_down"]).astype(float) * per_day
    order = {name: k for k, (name, _b, _z) in enumerate(VARIANTS)}
    df = df.sort_values(["server", "client", "variant"], key=lambda c: c.map(order) if c.name == "variant" else c)
    return df[list(KEPT_COLUMNS)].reset_index(drop=True)


def kept_wire_per_day(table):
    """One row per server and client: what it ships with and its bytes on the wire per day in each of
    :data:`VARIANTS` (empty where the client never asks for COMPRESS), and as shipped with COMPRESS against
    without."""
    wide = table.pivot_table(index=["server", "client", "ships_with", "compress_default"], columns="variant",
                             values="wire_bytes_per_day", aggfunc="first")
    wide = wide.reindex(columns=[name for name, _b, _z in VARIANTS])
    wide["compress_ratio"] = wide["as shipped + COMPRESS"] / wide["as shipped"]
    wide.columns.name = None
    return wide.reset_index()


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


__all__ = ["KEPT_CLIENTS", "KEPT_COLUMNS", "VARIANTS", "compress_default", "kept_cells", "kept_comparison",
           "kept_table", "kept_wire_per_day", "poll_sweep_cells", "variant_of"]
