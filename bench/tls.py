"""Benchmark: what connection setup costs (issue 16 item 1), measured through the link and modelled.

For each server, protocol and TLS mode (clear text, implicit TLS 1.3 and 1.2, STARTTLS 1.3 and 1.2) on a
600 ms link (``satellite-geo``): when the greeting arrives after connect, the session's duration through the
link, the model's duration from the same session through the baseline link, their error, and what TLS adds in
client flights and bytes. Medians of ``--repeats`` runs (3). Prints a Markdown table and writes it, with the raw
rows, under bench/results/. Run: ``.venv/bin/python bench/tls.py`` (about 6 minutes; ``--quick``: the embedded
server, 1 run).

Goals: a clear-text greeting at 2 RTT (1.2 s), an implicit-TLS greeting at 3 RTT (1.8 s), each plus only the
servers' work; the model within 5 % of the link.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

from bench_results import write_results  # bench/ is on sys.path when a script runs
from mailstudy.link import BASELINE, predict
from mailstudy.servers import available_servers
from mailstudy.study.experiment import Experiment, run_experiment

MODES = (("none", "1.3"), ("implicit", "1.3"), ("implicit", "1.2"), ("starttls", "1.3"), ("starttls", "1.2"))
PROFILE = "satellite-geo"


def measure(server: str, protocol: str, tls: str, version: str, repeats: int) -> dict:
    greet, link, model = [], [], []
    row = {}
    for _ in range(repeats):
        results: list = []
        exp = Experiment(server=server, protocol=protocol, messages=10, read_fraction=0.3, tls=tls,
                         tls_version=version)
        (row,) = run_experiment(replace(exp, profile=PROFILE), results=results)
        run_experiment(replace(exp, profile=BASELINE), results=results)
        trace = results[0].trace
        first_down = next(c for c in trace.chunks if c.direction == "down")
        greet.append((first_down.t - trace.t_connect_ns) * 1e-9)
        link.append(row["duration_s"])
        model.append(predict(results[1], PROFILE)["duration_s"])
    d, m = statistics.median(link), statistics.median(model)
    return {"server": server, "protocol": protocol, "tls": tls, "tls_version": version if tls != "none" else "",
            "greeting_s": statistics.median(greet), "duration_s": d, "model_s": m, "error": (m - d) / d,
            "round_trips": row["round_trips"], "tls_round_trips": row["tls_round_trips"],
            "tls_bytes_up": row["tls_bytes_up"], "tls_bytes_down": row["tls_bytes_down"]}


def table(rows: list[dict]) -> str:
    out = ["| server | protocol | TLS | greeting (s) | link (s) | model (s) | error | round trips | + TLS flights "
           "| + TLS bytes up / down |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tls = "clear text" if r["tls"] == "none" else f"{r['tls']} {r['tls_version']}"
        out.append(f"| {r['server']} | {r['protocol']} | {tls} | {r['greeting_s']:.3f} | {r['duration_s']:.3f} | "
                   f"{r['model_s']:.3f} | {r['error']:+.1%} | {r['round_trips']} | {r['tls_round_trips']} | "
                   f"{r['tls_bytes_up']:,} / {r['tls_bytes_down']:,} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    servers = ["embedded"] if args.quick else available_servers()
    repeats = 1 if args.quick else args.repeats
    rows = [measure(s, p, tls, v, repeats) for s in servers for p in ("imap", "pop3") for tls, v in MODES]
    text = f"On {PROFILE} (RTT 600 ms), medians of {repeats}:\n\n{table(rows)}\n"
    print(text)
    write_results("tls", text, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
