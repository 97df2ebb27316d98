"""Benchmark: how long `make study` takes from a fresh clone, notebook by notebook, in wall and CPU seconds.

Goal (issue 17): the whole study, every number over at least 10 seeds, in at most 15 minutes on 2 cores. Each
notebook runs through `mailstudy study --only NN` in a fresh project root (a copy of notebooks/ and captures/,
``MAILSTUDY_ROOT`` set, so no cell is read from an earlier run's cache), one after the other as `make study`
ran them before they ran side by side. ``--together`` instead times one `mailstudy study` as `make study` runs it
(:data:`mailstudy.study.notebooks.JOBS` notebooks at a time), with each notebook's wall and CPU seconds as the
study prints them. Wall seconds depend on whatever else the machine runs; CPU seconds (this process's children:
the notebook kernels, the pools they start, and the servers they stop and wait for) do much less, so both are
reported, with the load average beside them. Writes bench/results/study.json, keeps the run's tables in
bench/results/study-results/ and prints a Markdown table.

Run: `.venv/bin/python bench/study.py [--quick] [--together | --only 01 --only 03]`.

Measured (full study, fresh root, 2 cores shared with three other sessions' tests and benchmarks; CPU seconds
are user + system of the run and its waited-for children, per notebook as the study prints them):

- The session before 2026-12-04, main, notebooks one after another, a full CI beside it: 37 min 57 s wall,
  1,431 CPU s. Wall per notebook: 01 468 s, 02 4, 03 504, 04 578, 05 2, 06 184, 07 447, 08 84.
- 2026-12-04 20:40, three at a time in name order, one TLS certificate per process, 07's batching reusing its
  days (07 still at 5 seeds): 24 min 14 s wall, 1,341 CPU s (user 1,078 + system 262), load average (1 min)
  median 6.7 over the run. Wall / CPU per notebook: 01 758 / 314, 02 8 / 4, 03 934 / 306, 04 956 / 406,
  05 4 / 2, 06 401 / 133, 07 506 / 97, 08 166 / 74. Three side by side used about one core between them (01, 03
  and 04: 1,026 CPU s in 956 s): most of a notebook's wall is waiting (the link's round trips) and, under this
  load, waiting for a core.
- 2026-12-04 21:01, `bench/study.py --together`: four at a time, longest first (04, 03, 01, 07 together), 07 at
  10 seeds, the claims' sessions and the phone days through the caches (06 still started before 01 ended, so it
  ran 01's sessions again): 19 min 42 s wall, 1,400 CPU s (user 1,120 + system 280), load average (1 min)
  median 8.3, at most 10.4. Wall / CPU per notebook: 01 946 / 322, 02 5 / 2, 03 1,029 / 304, 04 1,043 / 410,
  05 4 / 2, 06 293 / 126, 07 885 / 154, 08 134 / 75.
- 2026-12-04 21:21, `bench/study.py --together`, the same with 06 started only once 01 ended (its claims read
  01's sessions back from the cache), on a machine the other sessions had left nearly idle (load 1.1 before the
  run; median 5.0 during it, this run's own four notebooks and their pools): 12 min 27 s wall, 1,365 CPU s
  (user 1,061 + system 304). Wall / CPU per notebook: 01 484 / 316, 02 3 / 2, 03 622 / 303, 04 686 / 392,
  05 2 / 1, 06 259 / 121, 07 647 / 151, 08 82 / 73. The longest chain: 01 then 06, 743 s; 04 alone 686 s.
- 2026-12-04 21:44, `/usr/bin/time -v make study` on a fresh clone of main at 872263c (the venv created from
  nothing included), nothing else running (load 0.9 before): 11 min 21 s wall, 1,235 CPU s (user 1,049.5 +
  system 185.8), peak RSS 415 MiB. Wall / CPU per notebook: 01 396 / 275, 02 3 / 2, 03 534 / 254, 04 641 / 378,
  05 2 / 1, 06 218 / 86, 07 623 / 127, 08 80 / 71. Not yet timed after it: the last three parts raised to 10
  seeds (measured alone, loaded: 07 493 s wall / 198 CPU s against 603 / 129; 04's JMAP fleet +44 s wall,
  +30 CPU s; 03's kept syncs +100 s wall, +50 CPU s), an estimated 1,385 CPU s in all.
- 2026-12-05 00:28, `/usr/bin/time -v make study` on a fresh clone of main at eb08aae (every part at 10 seeds,
  04's kept-connection comparison included; the venv created from nothing, the Cython fast paths compiled in
  it, about 26 s), nothing else running (load 0.8 before): 13 min 48 s wall, 1,462 CPU s (user 1,211.3 +
  system 250.5), peak RSS 419 MiB. Wall / CPU per notebook: 01 430 / 273, 02 4 / 2, 03 696 / 312,
  04 758 / 446, 05 3 / 2, 06 258 / 91, 07 528 / 194, 08 125 / 72. Within issue 17's 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(name: str, root: Path, quick: bool) -> dict:
    cmd = [sys.executable, "-m", "mailstudy.cli", "study", "--only", name] + (["--quick"] if quick else [])
    cpu0, t0, load0 = children_cpu_s(), time.monotonic(), os.getloadavg()[0]
    done = subprocess.run(cmd, cwd=root, env={**os.environ, "MAILSTUDY_ROOT": str(root)}, capture_output=True,
                          text=True)
    return {"notebook": name, "wall_s": round(time.monotonic() - t0, 1),
            "cpu_s": round(children_cpu_s() - cpu0, 1), "load_before": round(load0, 1),
            "load_after": round(os.getloadavg()[0], 1), "ok": done.returncode == 0,
            "error": done.stderr.strip().splitlines()[-1] if done.returncode else ""}


def run_together(root: Path, quick: bool) -> list[dict]:
    """One `mailstudy study` (every notebook, side by side as `make study` runs them): a row per notebook from
    the lines it prints ("NN-name: W s wall, C CPU s"), then a row "all" with the whole run's wall and CPU."""
    import re

    cmd = [sys.executable, "-m", "mailstudy.cli", "study"] + (["--quick"] if quick else [])
    cpu0, t0, load0 = children_cpu_s(), time.monotonic(), os.getloadavg()[0]
    done = subprocess.run(cmd, cwd=root, env={**os.environ, "MAILSTUDY_ROOT": str(root)}, capture_output=True,
                          text=True)
    rows = [{"notebook": m[1][:2], "wall_s": float(m[2]), "cpu_s": float(m[3]), "ok": True}
            for m in re.finditer(r"^(\d\d-\S+): (\d+) s wall, (\d+) CPU s$", done.stdout, re.M)]
    rows.append({"notebook": "all (side by side)", "wall_s": round(time.monotonic() - t0, 1),
                 "cpu_s": round(children_cpu_s() - cpu0, 1), "load_before": round(load0, 1),
                 "load_after": round(os.getloadavg()[0], 1), "ok": done.returncode == 0,
                 "error": done.stderr.strip().splitlines()[-1] if done.returncode else ""})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the quick study (what the tests run)")
    ap.add_argument("--only", action="append", metavar="NN", help="only these notebooks, one after another")
    ap.add_argument("--together", action="store_true", help="one `mailstudy study`, notebooks side by side")
    args = ap.parse_args()
    names = args.only or sorted(p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="mailstudy-bench-study-") as tmp:
        root = Path(tmp)
        for folder in ("notebooks", "captures"):
            shutil.copytree(ROOT / folder, root / folder)
        shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
        rows = run_together(root, args.quick) if args.together else []
        for name in [] if args.together else names:
            rows.append(run_one(name, root, args.quick))
            print(json.dumps(rows[-1]), flush=True)
        kept = ROOT / "bench" / "results" / "study-results"
        shutil.rmtree(kept, ignore_errors=True)
        if (root / "data" / "results").is_dir():
            shutil.copytree(root / "data" / "results", kept)
    total = rows.pop() if args.together else {
        "notebook": "all", "wall_s": round(sum(r["wall_s"] for r in rows), 1),
        "cpu_s": round(sum(r["cpu_s"] for r in rows), 1), "ok": all(r["ok"] for r in rows)}
    print("| notebook | wall s | CPU s | load before | load after | ok |\n|---|---|---|---|---|---|")
    for r in rows + [total]:
        print(f"| {r['notebook']} | {r['wall_s']} | {r['cpu_s']} | {r.get('load_before', '')} | "
              f"{r.get('load_after', '')} | {'yes' if r['ok'] else r.get('error') or 'no'} |")
    out = ROOT / "bench" / "results" / "study.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"quick": args.quick, "cores": len(os.sched_getaffinity(0)), "rows": rows,
                               "total": total}, indent=1))
    return 0 if total["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
