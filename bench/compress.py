"""Benchmark: what COMPRESS=DEFLATE (RFC 4978) saves (issue 18 item 3), on the default corpus.

For each server, strategy (download-all; header-first, the list alone and with a fifth of the messages opened) and mailbox size (30
and 200 messages, buchner2009 sizes, realistic headers, seed 0): the bytes each way of an uncompressed session
and of a compressed one on loopback, and their ratio (compressed wire / uncompressed wire). Byte counts are
deterministic up to the few bytes of Dovecot's timing text and a UIDVALIDITY, so one run of each is the figure.
Prints a Markdown table and writes it, with the raw rows, under bench/results/. Run:
``.venv/bin/python bench/compress.py`` (about a minute; ``--quick``: the embedded server, 30 messages).

No goal: the ratio is a measurement to report, not a speed to reach.
"""

from __future__ import annotations

import argparse

from bench_results import write_results  # bench/ is on sys.path when a script runs
from mailstudy.servers import available_servers
from mailstudy.study.experiment import Experiment, run_experiment

CELLS = (("download-all", 0.0), ("header-first", 0.0), ("header-first", 0.2))


def measure(server: str, strategy: str, read_fraction: float, messages: int) -> dict:
    exp = dict(server=server, strategy=strategy, read_fraction=read_fraction, messages=messages)
    (plain,) = run_experiment(Experiment(**exp))
    (packed,) = run_experiment(Experiment(**exp, compress=True))
    assert plain["integrity_ok"] and packed["integrity_ok"] and packed["compressed"]
    return {**exp, "bytes_down": plain["wire_bytes_down"], "compressed_down": packed["wire_bytes_down"],
            "bytes_up": plain["wire_bytes_up"], "compressed_up": packed["wire_bytes_up"],
            "ratio_down": packed["wire_bytes_down"] / plain["wire_bytes_down"],
            "ratio_up": packed["wire_bytes_up"] / plain["wire_bytes_up"],
            "commands": plain["commands"], "commands_compressed": packed["commands"]}


def table(rows: list[dict]) -> str:
    out = ["| server | strategy | opened | messages | down: plain → COMPRESS | ratio down | up: plain → COMPRESS "
           "| ratio up |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['server']} | {r['strategy']} | {r['read_fraction']:.0%} | {r['messages']} | "
                   f"{r['bytes_down']:,} → "
                   f"{r['compressed_down']:,} | {r['ratio_down']:.3f} | {r['bytes_up']:,} → {r['compressed_up']:,} "
                   f"| {r['ratio_up']:.3f} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    servers = ["embedded"] if args.quick else available_servers()
    sizes = (30,) if args.quick else (30, 200)
    rows = [measure(s, strategy, f, n) for s in servers for strategy, f in CELLS for n in sizes]
    text = ("Loopback, buchner2009 sizes, realistic headers, seed 0; header-first opens none or 20 % of the messages. "
            "Wire bytes (TCP payload) without and with COMPRESS=DEFLATE:\n\n" + table(rows) + "\n")
    print(text)
    write_results("compress", text, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
