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
#: What names a cell of :func:`kept_table` apart from its seed (a client's defaults follow from its name).
KEPT_KEYS = ("server", "client", "ships_with", "compress_default", "variant", "behaviour", "compress", "way",
             "compressed", "poll_s")
#: What each cell measured: the numbers :func:`kept_summary` gives as a median over seeds with an interval.
KEPT_METRICS = ("logins", "commands", "round_trips", "bytes_up", "bytes_down", "wire_bytes_up", "wire_bytes_down",
                "bytes_per_day", "wire_bytes_per_day", "staleness_median_s", "staleness_max_s")
#: The columns of :func:`kept_table`, in order: one row per cell and seed.
KEPT_COLUMNS = (*KEPT_KEYS, "seed", *KEPT_METRICS)
#: The groups :func:`kept_summary` takes medians over (the other keys are the same on all a group's rows).
SUMMARY_BY = ("server", "client", "variant")


def compress_default(client: str) -> str:
    """What a client does about COMPRESS=DEFLATE as it ships (its profile's ``compression``, with its source)."""
    prof = get_client(client)
    if prof.protocol != "imap":
        return "none (POP3 has no COMPRESS)"
    return "asks for COMPRESS when offered" if prof.compression else "never asks for COMPRESS"


def variant_of(behaviour: str, compress: bool) -> str:
    """The name in :data:`VARIANTS` of a cell's behaviour and COMPRESS."""
    return next(name for name, b, z in VARIANTS if (b, z) == (behaviour, bool(compress)))


def kept_cells(servers, clients=KEPT_CLIENTS, hours: float = 24.0, rate: float = 100.0, seeds=(0,),
               devices: int = 1, read_fraction: float = 0.5) -> list[FleetCell]:
    """Per server, client and seed: the day with each device as its client keeps its connection (``profile``) and
    the same day reconnecting on every poll of the client's own interval (``poll``, the baseline); for a client
    that asks for COMPRESS, also the ``profile`` day on a server that offers it (:data:`VARIANTS`)."""
    base = FleetCell(hours=hours, rate=rate, devices=devices, read_fraction=read_fraction, poll_s=None)
    return [replace(base, server=s, clients=(c,), behaviour=b, compress=z, seed=seed) for seed in seeds
            for s in servers for c in clients for _name, b, z in VARIANTS
            if b in BEHAVIOURS and (not z or get_client(c).compression)]


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
    df = df.sort_values(["server", "client", "variant", "seed"],
                        key=lambda c: c.map(order) if c.name == "variant" else c, kind="stable")
    return df[list(KEPT_COLUMNS)].reset_index(drop=True)


def kept_summary(table):
    """One row per server, client and variant of :func:`kept_table`: each of :data:`KEPT_METRICS` as its median
    over the seeds with its 95 % interval (``_lo``, ``_hi``; :func:`mailstudy.study.intervals.summarize`) and
    ``seeds``, beside what the client ships with."""
    from mailstudy.study.intervals import summarize

    return summarize(table, SUMMARY_BY, KEPT_METRICS)


def kept_wire_per_day(table):
    """One row per server and client: what it ships with and its bytes on the wire per day in each of
    :data:`VARIANTS` (empty where the client never asks for COMPRESS), and ``compress_ratio``, as shipped with
    COMPRESS against without. The ratio is taken within each seed (the same day with and without), then every
    column is a median over the seeds with its interval (``_lo``, ``_hi``) and ``seeds``."""
    from mailstudy.study.intervals import summarize

    keys = ["server", "client", "ships_with", "compress_default"]
    wide = table.pivot_table(index=[*keys, "seed"], columns="variant", values="wire_bytes_per_day",
                             aggfunc="first", dropna=False)
    names = [name for name, _b, _z in VARIANTS]
    wide = wide.reindex(columns=names)
    wide["compress_ratio"] = wide["as shipped + COMPRESS"] / wide["as shipped"]
    wide.columns.name = None
    wide = wide.reset_index()
    wide = wide[wide[names].notna().any(axis=1)]  # pivot's empty cross products (a client on another server)
    return summarize(wide, keys, [*names, "compress_ratio"])


def kept_comparison(servers, clients=KEPT_CLIENTS, hours: float = 24.0, rate: float = 100.0, seeds=(0,),
                    cache_dir: str | Path | None = data_dir("cache") / "fleet",
                    results: str | Path | None = data_dir("results"), executor=None, progress: bool = False):
    """Run :func:`kept_cells` over ``seeds`` (cached per cell, through ``executor`` when given: the counts and
    the simulated staleness do not depend on the machine) and return :func:`kept_table`, one row per cell and
    seed. With ``results``, also written atomically there: ``devices_kept_connections.csv`` (the summary,
    :func:`kept_summary`) and ``devices_kept_connections_seeds.csv`` (each seed's rows)."""
    from mailstudy.study.parameters import check_seeds

    cells = kept_cells(servers, clients, hours, rate, check_seeds(list(seeds)))
    tables = fleet_sweep(cells, cache_dir=cache_dir, executor=executor, progress=progress)
    table = kept_table(tables["devices"])
    if results is not None:
        write_csv_atomically(table, Path(results) / "devices_kept_connections_seeds.csv")
        write_csv_atomically(kept_summary(table), Path(results) / "devices_kept_connections.csv")
    return table


__all__ = ["KEPT_CLIENTS", "KEPT_COLUMNS", "KEPT_KEYS", "KEPT_METRICS", "SUMMARY_BY", "VARIANTS", "compress_default",
           "kept_cells", "kept_comparison", "kept_summary", "kept_table", "kept_wire_per_day", "poll_sweep_cells",
           "variant_of"]
