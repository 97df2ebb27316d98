"""``mailstudy fleet``: N devices on one account over a simulated day; a per-device table and a fleet summary.

Why a module of its own: each subcommand is one small module with ``add_parser(sub)`` and ``run(args)``. The
fleet itself lives in :mod:`mailstudy.live.fleet` and :mod:`mailstudy.study.fleet`; this only asks and shows.
Finished cells are cached (``--cache-dir``), so a fleet stopped by a dead server resumes where it was.
"""

from __future__ import annotations

import json
import math

from mailstudy.cli.errors import fail
from mailstudy.cli.session import format_table
from mailstudy.cli.values import fraction, gigabytes, interval, parse_loss, ranged, seed

DEVICE_COLUMNS = ["device", "client", "way", "logins", "bytes_up", "bytes_down", "commands", "round_trips", "network_s",
                  "bodies_downloaded", "availability_listed", "availability_offline", "read_agreement",
                  "staleness_median_s", "staleness_max_s", "lost"]
FLEET_KEYS = ("server", "server_version", "devices", "clients", "behaviour", "hours", "rate", "start_messages",
              "seed", "sessions", "logins", "bytes_up", "bytes_down", "commands", "round_trips", "network_s", "delivered",
              "reads", "body_downloads", "duplicate_downloads", "read_agreement", "availability_min",
              "messages_only_on_one_device", "messages_lost", "staleness_median_s", "staleness_p95_s", "staleness_max_s",
              "condstore_offered", "condstore_used", "pop3_second_session")


def add_parser(sub) -> None:
    from mailstudy.live.client_profiles import CLIENTS
    from mailstudy.live.fleet_jmap import JMAP_CLIENTS
    from mailstudy.live.fleet_spec import BEHAVIOURS

    p = sub.add_parser("fleet", help="N devices on one account over a simulated day",
                       description="Start a server, let mail arrive (seeded Poisson, really delivered), let N "
                                   "devices with real client profiles sync it on their own poll intervals in "
                                   "simulated time, and print what each device and the fleet cost and saw.")
    p.add_argument("--devices", type=ranged("devices", int), default=2, metavar="N", help="devices on the account (2)")
    p.add_argument("--client", action="append", metavar="NAME",
                   help=f"client profile, repeatable; device i runs the i-th mod the count ({', '.join(CLIENTS)}; "
                        f"with --server cyrus also JMAP: {', '.join(JMAP_CLIENTS)}; default thunderbird)")
    p.add_argument("--hours", type=ranged("hours"), default=24.0, help="simulated period in hours (24)")
    p.add_argument("--rate", type=ranged("rate"), default=100.0, help="new messages per day (100)")
    p.add_argument("--poll", type=interval, metavar="INTERVAL",
                   help="every device's poll interval, e.g. 10m (default: each client's own)")
    p.add_argument("--start", type=ranged("start", int), default=0, metavar="N",
                   help="messages in the mailbox at the start (0)")
    p.add_argument("--sizes", default="buchner2009", metavar="PRESET", help="message size preset (buchner2009)")
    p.add_argument("--max-mailbox-gb", type=gigabytes, default=None, metavar="GB",
                   help="refuse a fleet whose mailbox (the start plus the expected arrivals) is estimated above GB "
                        "gigabytes (2.1)")
    p.add_argument("--read-fraction", type=fraction, default=0.5, metavar="F",
                   help="share of new messages the user reads, each on one seeded device (0.5)")
    p.add_argument("--seed", type=seed, default=0, metavar="S", help="corpus, arrivals and reader seed (0)")
    p.add_argument("--lose", metavar="DEVICE@HOURS", help="lose one device (and its local store) at that time")
    p.add_argument("--condstore", action="store_true",
                   help="IMAP flag sync with CONDSTORE CHANGEDSINCE where the server offers it")
    p.add_argument("--idle", action="store_true",
                   help="with --behaviour poll: devices whose client can IDLE (thunderbird) hold one connection "
                        "instead of polling, renewed every 29 minutes")
    p.add_argument("--behaviour", choices=BEHAVIOURS, default="poll",
                   help="poll: every device connects, logs in and syncs on each poll (the default); profile: each "
                        "device keeps its connection as its client does (IDLE, NOOP polling, a sync over a kept "
                        "connection, or reconnect-and-poll; docs/clients.md), and --poll changes only the clients "
                        "whose user can set it")
    p.add_argument("--profile", default="loopback", help="network profile for the seconds (loopback)")
    p.add_argument("--server", choices=["embedded", "dovecot", "cyrus"], default="embedded",
                   help="the server (embedded); cyrus serves IMAP, POP3 and JMAP over one store")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="send the cell to this Dask cluster")
    p.add_argument("--cache-dir", help="where finished cells are kept (data/cache/fleet under the project root)")
    p.add_argument("--no-cache", action="store_true", help="run again even when the cell is cached")
    p.add_argument("--json", action="store_true", help="print one JSON object (devices, fleet)")
    p.set_defaults(func=run)


def _cell(args):
    from mailstudy.study.fleet import FleetCell

    lose = parse_loss(args.lose) if args.lose else (None, None)
    return FleetCell(server=args.server, devices=args.devices, clients=tuple(args.client or ["thunderbird"]),
                     hours=args.hours, rate=args.rate, poll_s=args.poll,
                     start_messages=args.start, sizes=args.sizes, read_fraction=args.read_fraction,
                     seed=args.seed, lose_device=lose[0], lose_at_h=lose[1], condstore=args.condstore, idle=args.idle,
                     behaviour=args.behaviour, profile=args.profile)


def _dask_client(address: str):
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError("--scheduler needs Dask: pip install 'mailstudy[dask]'") from None
    try:
        return Client(address, timeout=5)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def run(args) -> int:
    from tqdm.auto import tqdm

    from mailstudy.corpus import DEFAULT_MAX_MAILBOX_BYTES, check_mailbox_size
    from mailstudy.outputs import check_folder, data_dir
    from mailstudy.study.experiment import sweep
    from mailstudy.study.fleet import fleet_sweep, run_fleet_cell, split_rows

    try:
        cell = _cell(args)
        arrivals = math.ceil(cell.rate * cell.hours / 24)  # the Poisson mean; the seeded draw is near it
        check_mailbox_size(cell.start_messages + arrivals, cell.sizes, cell.seed,
                           args.max_mailbox_gb or DEFAULT_MAX_MAILBOX_BYTES)
        cache = None if args.no_cache else check_folder(args.cache_dir or data_dir("cache") / "fleet", "--cache-dir")
        client = _dask_client(args.scheduler) if args.scheduler else None
    except ValueError as exc:
        return fail(str(exc))
    if client is not None:
        with client:
            tables = fleet_sweep([cell], cache_dir=cache, executor=client.get_executor(), progress=True)
    else:
        bar = tqdm(desc="simulated events", unit="event", leave=False)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            df = sweep([cell], cache_dir=cache, progress=False, run=lambda c: run_fleet_cell(c, progress))
        finally:
            bar.close()
        tables = split_rows(df)
    devices, fleet = tables["devices"], tables["fleet"].iloc[0].to_dict()
    if args.json:
        print(json.dumps({"devices": devices.to_dict("records"), "fleet": fleet}, default=_plain))
        return 0
    print(devices[[c for c in DEVICE_COLUMNS if c in devices.columns]].to_string(index=False))
    print()
    print(format_table({k: _plain(v) for k, v in fleet.items()}, tuple(k for k in FLEET_KEYS if k in fleet)))
    return 0


def _plain(v):
    """pandas' nullable scalars as plain Python values (for JSON and the table)."""
    import pandas as pd

    if v is pd.NA or v is None:
        return None
    return v.item() if hasattr(v, "item") else v

