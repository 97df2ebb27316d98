"""Benchmark: IMAP, POP3 and JMAP on one Cyrus mailbox, header-first and download-all, on loopback or a profile.

Issue 20: the three protocols side by side on one store. Each (protocol, strategy) runs ``--repeats`` times on a
fresh Cyrus holding the same seeded buchner2009 mailbox (fresh each time: JMAP's first Email/query on a new
store costs more than later ones, and a user's first sync is what this compares). Bytes, commands and round trips
are exact (IMAP's bytes down vary by the few bytes of its SESSIONID); times are medians of ``duration_s`` and
``time_to_list_s``. Prints a Markdown table and writes it with the raw rows to bench/results/.
Run: ``.venv/bin/python bench/three_protocols.py --messages 30 [--profile 4g]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import pandas as pd

from mailstudy.study.experiment import Experiment, run_experiment, write_csv_atomically
from mailstudy.study.jmap_cell import JmapCell, run_jmap_cell

STRATEGIES = ("header-first", "download-all")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", default="loopback", help="a network profile (loopback, 4g, ...)")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    rows = []
    for strategy in STRATEGIES:
        for protocol in ("imap", "pop3"):
            rows += run_experiment(Experiment(server="cyrus", protocol=protocol, strategy=strategy,
                                              messages=args.messages, seed=args.seed, repeats=args.repeats,
                                              profile=args.profile))
        rows += run_jmap_cell(JmapCell(strategy=strategy, messages=args.messages, seed=args.seed,
                                       repeats=args.repeats, profile=args.profile))
    df = pd.DataFrame(rows)
    out = Path(args.out)
    name = "three_protocols" + ("" if args.profile == "loopback" else f"_{args.profile}")
    write_csv_atomically(df, out / f"{name}_raw.csv")
    lines = [f"{args.messages} buchner2009 messages (seed {args.seed}), Cyrus {df['server_version'].iloc[0]}, "
             f"{args.profile}, medians of {args.repeats} fresh-server runs",
             "", "| protocol | strategy | bytes up | bytes down | commands | round trips | time to list s | "
                 "duration s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for (strategy, protocol), g in df.groupby(["strategy", "protocol"], sort=False):
        lines.append(f"| {protocol} | {strategy} | {int(g.bytes_up.median())} | {int(g.bytes_down.median())} | "
                     f"{int(g.commands.median())} | {int(g.round_trips.median())} | "
                     f"{statistics.median(g.time_to_list_s):.4f} | {statistics.median(g.duration_s):.4f} |")
    text = "\n".join(lines)
    (out / f"{name}.md").write_text(text + "\n")
    print(text)
    return 0 if df["integrity_ok"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
