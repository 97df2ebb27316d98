"""Benchmark: the energy ledger's speed on a long timeline (a day of one busy device, a big capture's packets).

Goal (ours, issue 19): a 1,000,000-packet timeline priced in under 5 s on one core, so a big capture's ledger
costs little beside reading the capture (bench/analyze.py). The timeline is seeded: bursts of packets 1 ms
apart, quiet spells drawn from an exponential with a 20 s mean (so the tail, the promotion and idle all occur).
Prints a Markdown table and writes bench/results/energy.md. Not a test: speed lives here, never in tests/.

    .venv/bin/python bench/energy.py [--packets 1000000]
"""

from __future__ import annotations

import argparse
import random
import time

from bench_results import write_results  # bench/ is on sys.path when a script runs
from mailstudy.energy import MODELS, Activity, ledger

GOAL_S = 5.0


def timeline(n: int, seed: int = 0) -> list[Activity]:
    rng = random.Random(seed)
    t, out = 0.0, []
    while len(out) < n:
        for _ in range(rng.randint(5, 60)):
            out.append(Activity(t, rng.choice((0, 60, 1448)), rng.choice((0, 1448))))
            t += 0.001
        t += rng.expovariate(1 / 20.0)
    return out[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    args = ap.parse_args()
    acts = timeline(args.packets)
    lines = ["| radio | segments kept | packets | seconds | packets/s | transfers | goal |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, model in MODELS.items():
        for keep in (False, True):
            t0 = time.perf_counter()
            led = ledger(model, acts, keep_segments=keep)
            dt = time.perf_counter() - t0
            ok = "met" if dt <= GOAL_S * args.packets / 1_000_000 else "MISSED"
            lines.append(f"| {name} | {keep} | {len(acts):,} | {dt:.2f} | {len(acts) / dt:,.0f} | "
                         f"{led.transfers:,} | {ok} |")
    table = "\n".join(lines)
    print(table)
    write_results("energy", table + "\n")


if __name__ == "__main__":
    main()
