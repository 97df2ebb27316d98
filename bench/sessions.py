"""Benchmark: header-first and download-all of 1,000 buchner2009 messages on each server, median of 5 runs.

Goal (issue 2): the embedded server within 2x of Dovecot's time on every strategy. Prints a Markdown table and
writes it with the raw rows to bench/results/. Run: `make bench` or `.venv/bin/python bench/sessions.py`.
Times are medians of `duration_s` over fresh-server repeats; bytes are exact.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mailstudy.study.experiment import Experiment, four_strategies, medians, sweep, write_csv_atomically
from mailstudy.servers import available_servers


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    servers = available_servers()
    cells = [e for s in servers for e in four_strategies(Experiment(server=s, messages=args.messages,
                                                                     repeats=args.repeats))]
    df = sweep(cells, cache_dir=None)
    out = Path(args.out)
    write_csv_atomically(df, out / "sessions_raw.csv")
    med = medians(df)
    table = med.pivot_table(index="label", columns="server", values="duration_s")
    if "dovecot" in table.columns:
        table["embedded/dovecot"] = table["embedded"] / table["dovecot"]
    lines = ["| strategy | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    for label, row in table.iterrows():
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    mb = med.pivot_table(index="label", columns="server", values="bytes_down")
    lines += ["", "bytes down (exact):", mb.to_string()]
    text = "\n".join(lines)
    (out / "sessions.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
