"""Benchmark: how a fleet's wall time and bytes grow with devices and mailbox size, and the fleet speed goals.

Goals (issue 8): one simulated day with 8 devices, 100 new messages a day, polls every 15 minutes and a starting
mailbox of 1,000 messages, every session real on the embedded server, in under 60 s on 2 cores; the standard
fleet sweep (7 client profiles x devices {1, 2, 4, 8} x 2 servers) in under 5 minutes. Prints Markdown tables
and writes them under bench/results/. Run: `.venv/bin/python bench/fleet.py [--quick] [--workers 2]`.
Times are wall seconds of one run (this machine, whatever else runs on it); bytes are exact.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from mailstudy.servers import available_servers
from mailstudy.study.fleet import (
    FleetCell,
    fleet_sweep,
    run_fleet_rows,
    standard_fleet_cells,
)

GOAL_CELL = FleetCell(server="embedded", devices=8, hours=24, rate=100, poll_s=900, start_messages=1000)


def timed(cell: FleetCell) -> dict:
    t0 = time.perf_counter()
    fleet = run_fleet_rows(cell)["fleet"][0]
    return {**fleet, "wall_s": time.perf_counter() - t0}


def table(rows: list[dict], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(str(v) if isinstance(v, bool) else f"{v:,.1f}" if isinstance(v, float)
                         else f"{v:,}" if isinstance(v, int) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


GROWTH_COLS = ["clients", "devices", "start_messages", "sessions", "bytes_up", "bytes_down", "commands",
               "duplicate_downloads", "wall_s"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller growth grids (devices to 16, mailboxes to 1,000)")
    ap.add_argument("--workers", type=int, default=2, help="threads for the standard sweep (count-only cells)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["goal", "sweep", "growth"])
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    if "goal" not in args.skip:
        rows = [timed(replace(GOAL_CELL, clients=c)) for c in (("thunderbird",), ("k9",), ("thunderbird-pop3",),
                                                               ("k9", "thunderbird"))]
        parts += ["## Goal: 8 devices, 1 day, 100 new/day, 15-min polls, 1,000-message start, embedded (< 60 s)",
                  table(rows, ["clients", "delivered", *GROWTH_COLS[3:]])]
    if "sweep" not in args.skip:
        cells = standard_fleet_cells(servers=available_servers())
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            tables = fleet_sweep(cells, cache_dir=None, executor=pool if args.workers > 1 else None,
                                 progress=False)
        wall = time.perf_counter() - t0
        f = tables["fleet"]
        parts += [(f"## Standard sweep: {len(cells)} cells ({', '.join(available_servers())}), {args.workers} "
                  f"worker(s): {wall:.1f} s wall (< 300 s), {int(f['sessions'].sum()):,} sessions"),
                  f.pivot_table(index="clients", columns=["server", "devices"], values="bytes_down",
                                aggfunc="sum").to_markdown() if _has_tabulate() else
                  f[["server", "clients", "devices", "sessions", "bytes_down"]].to_string(index=False)]
    if "growth" not in args.skip:
        devs = (1, 2, 4, 8, 16) if args.quick else (1, 2, 4, 8, 16, 32, 64)
        sizes = (100, 1000) if args.quick else (100, 1000, 10000)
        base = replace(GOAL_CELL, start_messages=100)
        for client in ("k9", "thunderbird-pop3"):
            rows = [timed(replace(base, clients=(client,), devices=n)) for n in devs]
            parts += [(f"## Growth with devices: {client}, 1 day, 100 new/day, 15-min polls, 100-message start, "
                      "embedded"), table(rows, GROWTH_COLS)]
        # the flag sync every client does by default (UID FETCH 1:n FLAGS) against CONDSTORE CHANGEDSINCE
        server = "dovecot" if "dovecot" in available_servers() else "embedded"
        rows = [timed(replace(base, server=server, clients=("neomutt",), start_messages=m, condstore=c))
                for m in sizes for c in (False, True)]
        parts += [f"## Growth with the starting mailbox: neomutt, 8 devices, naive flag sync vs CONDSTORE, {server}",
                  table(rows, ["condstore", "condstore_used", *GROWTH_COLS[2:]])]
    text = "\n\n".join(parts)
    (out / "fleet.md").write_text(text + "\n")
    print(text)
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
