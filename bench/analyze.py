"""Benchmark: the whole pcap pipeline (read, reassemble, parse, metrics) against tshark on one big capture.

Goal (issue 3): ``analyze_pcap`` at >= 300,000 packets/s on a >= 1,000,000-packet IMAP/POP3 capture with peak
memory < 1 GB, judged on the default call; a second row shows ``pause_gc=True`` (cyclic GC off, as a command
line that owns its process may run it). Each tool runs in a child process of its own, timed by wall clock, its
peak RSS read from ``os.wait4`` (so one cannot inflate the other's). Prints a Markdown table and writes
bench/results/analyze.md.

    .venv/bin/python bench/analyze.py [--packets 1000000] [--pcap /tmp/mailstudy-big.pcap] [--reuse]

The capture is made by bench/make_big_pcap.py (synthetic but shaped like real sessions). Not a test: speed
numbers live here, never as timed asserts in tests/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

GOAL_PPS = 300_000
GOAL_RSS_MIB = 1024

_CHILD = """
import sys, time
from mailstudy.offline.analyze import analyze_pcap
t0 = time.perf_counter()
a = analyze_pcap(sys.argv[1], pause_gc=sys.argv[2] == "pause_gc")
dt = time.perf_counter() - t0
n = a.stats.packets_total
ex = sum(len(s.exchanges) for s in a.sessions)
print(n, dt, len(a.sessions), ex, sum(s.metrics["bytes_down"] for s in a.sessions))
"""


def _run_child(cmd: list[str], stdout=subprocess.PIPE) -> tuple[float, float, bytes]:
    """Run ``cmd``; return (wall seconds, peak RSS MiB, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL)
    out = b""
    if stdout is subprocess.PIPE:
        out = proc.stdout.read()
        proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with exit {proc.returncode}")
    return wall, usage.ru_maxrss / 1024, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--pcap", default="/tmp/mailstudy-big.pcap")
    ap.add_argument("--reuse", action="store_true", help="use an existing --pcap instead of writing it again")
    ap.add_argument("--out", default=str(HERE / "results" / "analyze.md"))
    ap.add_argument("--no-tshark", action="store_true")
    a = ap.parse_args(argv)

    import make_big_pcap

    if not (a.reuse and Path(a.pcap).exists()):
        t0 = time.perf_counter()
        n = make_big_pcap.make(a.pcap, a.packets)
        print(f"wrote {n:,} packets to {a.pcap} in {time.perf_counter() - t0:.1f} s", flush=True)

    wall, rss, out = _run_child([sys.executable, "-c", _CHILD, a.pcap, "default"])
    n, inner, sessions, exchanges, down = out.split()
    n, inner = int(n), float(inner)
    rows = [("mailstudy analyze_pcap (read, reassemble, parse, metrics)", n, inner, wall, rss)]
    print(f"analyze_pcap: {n:,} packets, {int(sessions):,} sessions, {int(exchanges):,} exchanges, "
          f"{int(down) / 1e6:,.0f} MB down; {inner:.2f} s in the call, {wall:.2f} s with start-up, "
          f"peak RSS {rss:,.0f} MiB", flush=True)
    gwall, grss, gout = _run_child([sys.executable, "-c", _CHILD, a.pcap, "pause_gc"])
    ginner = float(gout.split()[1])
    rows.append(("the same with pause_gc=True (cyclic GC off, for a CLI)", n, ginner, gwall, grss))
    print(f"analyze_pcap(pause_gc=True): {ginner:.2f} s in the call, peak RSS {grss:,.0f} MiB", flush=True)

    tshark = shutil.which("tshark")
    if tshark and not a.no_tshark:
        twall, trss, _ = _run_child([tshark, "-r", a.pcap, "-T", "fields", "-e", "frame.number", "-e", "tcp.len"],
                                    stdout=subprocess.DEVNULL)
        rows.append(("tshark -T fields -e frame.number -e tcp.len", n, twall, twall, trss))
        print(f"tshark: {twall:.2f} s, peak RSS {trss:,.0f} MiB", flush=True)

    ours_pps = n / inner
    lines = [f"Capture: {n:,} packets ({Path(a.pcap).stat().st_size / 1e6:,.0f} MB), "
             f"bench/make_big_pcap.py; machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}.",
             "",
             "| tool | packets | seconds | packets/s | peak RSS MiB |",
             "|---|---:|---:|---:|---:|"]
    for name, count, secs, _wall, mib in rows:
        lines.append(f"| {name} | {count:,} | {secs:.2f} | {count / secs:,.0f} | {mib:,.0f} |")
    lines.append("")
    if len(rows) > 2:
        lines.append(f"analyze_pcap / tshark speed ratio: {ours_pps / (n / rows[2][2]):.2f}x")
    lines.append(f"goal >= {GOAL_PPS:,} packets/s: {'met' if ours_pps >= GOAL_PPS else 'NOT met'} "
                 f"({ours_pps:,.0f}); goal peak RSS < {GOAL_RSS_MIB} MiB: "
                 f"{'met' if rss < GOAL_RSS_MIB else 'NOT met'} ({rss:,.0f} MiB)")
    text = "\n".join(lines)
    out_path = Path(a.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text + "\n")
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
