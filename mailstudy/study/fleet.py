"""Fleets as study cells: one frozen set of parameters in, tidy device, fleet and session rows out; sweeps of
them cached per cell and run through any ``concurrent.futures.Executor`` (a Dask cluster's included).

Why: the article's device claims and the cost of many devices must come out of one command and rebuild from
their seeds. A :class:`FleetCell` is a :class:`~mailstudy.live.fleet.FleetSpec` plus the server it runs on;
:func:`run_fleet_cell` starts a fresh server holding the starting mailbox, runs the fleet and returns its rows
(each tagged ``row`` = ``device``, ``fleet`` or ``session``); :func:`fleet_sweep` runs many through the study's one
:func:`~mailstudy.study.experiment.sweep` (its cache and resume) and splits the rows into three DataFrames.

The public API for notebooks::

    from mailstudy.study.fleet import FleetCell, run_fleet_rows, fleet_sweep, standard_fleet_cells
    rows = run_fleet_rows(FleetCell(server="embedded", devices=4, clients=("thunderbird", "k9")))
    pd.DataFrame(rows["devices"]), pd.DataFrame(rows["fleet"]), pd.DataFrame(rows["sessions"])
    tables = fleet_sweep(standard_fleet_cells(), executor=None)   # {"devices": df, "fleet": df, "sessions": df}

Count columns (bytes, commands, round trips, downloads, availability, agreement, losses, staleness in
simulated seconds) are deterministic for a seed and server; columns ending in ``_s`` that measure the machine
(``network_s``, ``pop3_second_s``) are not: :func:`counts_only` drops them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from mailstudy import __version__
from mailstudy.live.client_profiles import CLIENTS
from mailstudy.live.fleet import FleetSpec, plan, run_fleet
from mailstudy.live.fleet_jmap import refusal
from mailstudy.live.jmap import JMAP_SERVERS
from mailstudy.live.params import SessionParams
from mailstudy.live.values import ParameterValueError
from mailstudy.outputs import data_dir
from mailstudy.servers import make_server
from mailstudy.study.experiment import server_version, sweep

#: Columns that hold the machine's time, not a count: left out when rows are compared across runs.
TIME_COLUMNS = ("network_s", "pop3_second_s")
#: The parameters every row carries (the fleet's and the server's).
PARAM_COLUMNS = ("devices", "clients", "hours", "rate", "start_messages", "sizes", "read_fraction", "seed",
                 "condstore", "idle", "behaviour", "compress", "profile", "lose_device", "lose_at_h", "server",
                 "server_version")
#: The standard sweep: every client profile, these device counts, both servers.
STANDARD_DEVICES = (1, 2, 4, 8)
STANDARD_CLIENTS = ("thunderbird", "k9", "neomutt", "mbsync", "thunderbird-pop3", "k9-pop3", "pop3-delete")


@dataclass(frozen=True)
class FleetCell(FleetSpec):
    """A fleet on a named server: the unit a sweep caches."""

    server: str = "embedded"

    def __post_init__(self) -> None:
        super().__post_init__()
        why = refusal(self.clients, self.server, self.server in JMAP_SERVERS)
        if why:
            raise ParameterValueError(why)

    def spec(self) -> FleetSpec:
        return FleetSpec(**{f.name: getattr(self, f.name) for f in fields(FleetSpec)})

    @property
    def label(self) -> str:
        return f"{'+'.join(self.clients)} x{self.devices}"

    def key(self) -> str:
        """The cell's cache name: its parameters, the library's and the server's versions."""
        blob = json.dumps({**asdict(self), "version": __version__, "kind": "fleet",
                           "server_version": server_version(self.server)}, sort_keys=True, default=list)
        return "fleet-" + hashlib.sha256(blob.encode()).hexdigest()[:20]


#: Each cell of the standard sweep: one simulated day, 100 new messages, a poll every 15 minutes (the goal's).
STANDARD_BASE = FleetCell(hours=24, rate=100, poll_s=900)


def run_fleet_rows(cell: FleetCell, progress: Callable[[int, int], None] | None = None) -> dict[str, list[dict]]:
    """Run one fleet on a fresh server: ``{"devices": [...], "fleet": [one row], "sessions": [...]}``."""
    the_plan = plan(cell)
    server = make_server(cell.server, compress=cell.compress)
    server.mailboxes[server.account.user] = the_plan.start_raws
    with server:
        result = run_fleet(server, cell.spec(), the_plan, progress=progress)
    extra = {"mailstudy_version": __version__, "label": cell.label}
    params = {k: result.fleet[k] for k in PARAM_COLUMNS}
    return {"devices": [{**r, **extra} for r in result.devices], "fleet": [{**result.fleet, **extra}],
            "sessions": [{**params, **r, **extra} for r in result.sessions]}


def run_fleet_cell(cell: FleetCell, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """One cell's rows as one flat list (what the sweep caches), each tagged with ``row``."""
    out = run_fleet_rows(cell, progress)
    return [{"row": kind[:-1] if kind != "fleet" else kind, **r} for kind in ("devices", "fleet", "sessions")
            for r in out[kind]]


def split_rows(rows) -> dict:
    """Tagged rows (a list of dicts or the sweep's DataFrame) into three DataFrames: ``devices``, ``fleet``,
    ``sessions``. A column no row of a kind has (the other kinds' columns) is dropped from that kind's table."""
    import pandas as pd

    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    keep = {f.name for f in fields(FleetCell)}
    out = {}
    for name, tag in (("devices", "device"), ("fleet", "fleet"), ("sessions", "session")):
        sub = df[df["row"] == tag].drop(columns="row") if len(df) else pd.DataFrame()
        empty = [c for c in sub.columns if c not in keep and sub[c].isna().all()]
        out[name] = sub.drop(columns=empty).reset_index(drop=True).convert_dtypes()  # ints stay ints
    return out


def fleet_sweep(cells: Iterable[FleetCell], cache_dir: str | Path | None = data_dir("cache") / "fleet",
                executor: Executor | None = None, progress: bool = True) -> dict:
    """Run every cell once (cached cells are read back, so a stopped sweep resumes); three DataFrames out."""
    df = sweep(cells, cache_dir=cache_dir, executor=executor, progress=progress, run=run_fleet_cell)
    return split_rows(df)


#: ``session --client``: the share of the first sync's messages the user opens when none is given (ours).
CLIENT_READ_FRACTION = 0.2


def client_sessions(client: str | SessionParams, server: str = "embedded", messages: int = 10,
                    sizes: str = "buchner2009", seed: int = 0, read_fraction: float = CLIENT_READ_FRACTION,
                    new_messages: int = 2) -> list[tuple[str, object]]:
    """What one client profile sends: its first sync of a seeded mailbox of ``messages`` (the user reading a
    seeded ``read_fraction`` of them), then its next sync after ``new_messages`` arrive.

    ``client`` is a profile's name (the other arguments say the rest) or a whole
    :class:`~mailstudy.live.params.SessionParams` whose workload names the profile. Returns
    ``[(phase, SyncOutcome), ...]``; each outcome's ``result.exchanges`` are the commands."""
    from mailstudy.corpus import generate
    from mailstudy.live.access import choose_opened
    from mailstudy.live.client_profiles import Catalog, Destination
    from mailstudy.live.devices import Device

    params = client if isinstance(client, SessionParams) else SessionParams(
        server=server, workload=client, messages=messages, sizes=sizes, seed=seed, read_fraction=read_fraction)
    if not params.is_client:
        raise ParameterValueError(f"{params.workload!r} is a strategy, not a client profile")
    profile, n = params.client(), params.messages
    corpus = generate(n + new_messages, params.sizes, params.seed, headers=params.headers)
    raws = [m.raw for m in corpus.messages]
    srv = make_server(params.server, compress=params.compress)  # offered; the profile decides whether to ask
    srv.mailboxes[srv.account.user] = raws[:n]
    device = Device(name=profile.name)
    to_read = {corpus.messages[i].sha256 for i in choose_opened(n, params.read_fraction, params.seed)}
    out = []
    with srv:
        account = Destination(srv.host, srv.imap_port, srv.pop3_port, srv.account.user, srv.account.password,
                              Catalog(raws))
        out.append(("first sync", profile.run(account, device, to_read)))
        srv.deliver_many(srv.account.user, raws[n:])
        out.append((f"next sync, {new_messages} new", profile.run(account, device, set())))
    return out


def counts_only(rows: list[dict]) -> list[dict]:
    """Rows without the columns that measure the machine's time, for comparing runs: ``bytes_down`` becomes
    ``bytes_down_less_timing`` (less the length of Dovecot's own "(0.001 + 0.000 secs)" timing text, the one
    part of a server's replies that changes between identical runs), and ``wire_bytes_down`` the same where
    nothing was compressed (deflated, the text's digits change the stream's length: the column is left out)."""
    out = []
    for r in rows:
        c = {k: v for k, v in r.items()
             if k not in TIME_COLUMNS + ("bytes_down", "wire_bytes_down", "server_timing_bytes")}
        for col in ("bytes_down", "wire_bytes_down"):
            if col in r and not (col == "wire_bytes_down" and r.get("compressed")):
                c[f"{col}_less_timing"] = r[col] - (r.get("server_timing_bytes") or 0)
        out.append(c)
    return out


def standard_fleet_cells(servers: Iterable[str] = ("embedded", "dovecot"), devices=STANDARD_DEVICES,
                         clients=STANDARD_CLIENTS, base: FleetCell | None = None) -> list[FleetCell]:
    """The standard sweep: each client profile alone, at each device count, on each server."""
    base = base or STANDARD_BASE
    return [replace(base, server=s, clients=(c,), devices=n) for s in servers for c in clients for n in devices]


__all__ = ["CLIENTS", "FleetCell", "counts_only", "fleet_sweep", "run_fleet_cell", "run_fleet_rows",
           "split_rows", "standard_fleet_cells"]
