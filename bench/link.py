"""Benchmark: how exact the link is, and how well the model predicts it (issue 7's accuracy table).

Prints a Markdown table and writes it, with the raw rows, under bench/results/. Run:
`.venv/bin/python bench/link.py` (about 10 minutes; `--quick` for a smaller grid). The goals:

- ping-pong: 100 small exchanges over a 50 ms profile measure 50 ms per round trip, within max(1 ms, 2 %);
- bulk: 20 MB at 20 Mbit/s takes 8.29 s within 5 % (each 1448 B segment costs 1500 B on the wire: 8 s x 1500/1448);
- independence: an upload does not slow a concurrent download (same connection, both directions 20 Mbit/s);
- overhead: the relay at 0 ms and unlimited bandwidth adds at most 0.2 ms per round trip;
- model: |model - measured| / measured <= 10 % for duration_s and time_to_list_s on the acceptance grid
  ({lan, 4g, 3g} x four strategies x {20, 200} buchner2009 messages, plus edge with 20 header-first);
- a model sweep (4 strategies x 7 profiles x 5 sizes, counts from real loopback sessions) under 60 s;
- slow start (on by default; off is the control): its effect, measured and modelled; break-even: model against measured.
The upstreams of the first four are plain TCP echo/source servers in this process (bytes, not mail).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from mailstudy.link import BASELINE, PROFILES, Link, Profile, predict
from mailstudy.link.profiles import HEADER_BYTES, MSS
from mailstudy.study.experiment import Experiment, four_strategies, run_experiment, write_csv_atomically
from mailstudy.study.modelled import breakeven_rows, model_rows

MB = 1_000_000


def _serve(handler) -> int:
    srv = socket.create_server(("127.0.0.1", 0))

    def loop():
        while True:
            c, _ = srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handler, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def _echo(c: socket.socket) -> None:
    with c:
        while data := c.recv(65536):
            c.sendall(data)


def _source_sink(c: socket.socket) -> None:
    """Reads one line 'N': sends N bytes down while discarding whatever comes up."""
    f = c.makefile("rb")
    n = int(f.readline())
    threading.Thread(target=lambda: [None for _ in iter(lambda: c.recv(65536), b"")], daemon=True).start()
    c.sendall(b"x" * n)
    c.shutdown(socket.SHUT_WR)


def _conn(port: int) -> socket.socket:
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def _pingpong(port: int, n: int) -> list[float]:
    with _conn(port) as c:
        c.sendall(b"warm\r\n")
        c.recv(100)
        out = []
        for _ in range(n):
            t = time.perf_counter()
            c.sendall(b"ping\r\n")
            c.recv(100)
            out.append(time.perf_counter() - t)
    return out


def _download(port: int, nbytes: int, upload: int = 0) -> float:
    with _conn(port) as c:
        t = time.perf_counter()
        c.sendall(f"{nbytes}\n".encode())
        if upload:
            threading.Thread(target=c.sendall, args=(b"u" * upload,), daemon=True).start()
        got = 0
        while got < nbytes:
            chunk = c.recv(262144)
            if not chunk:
                break
            got += len(chunk)
        return time.perf_counter() - t


def link_accuracy(quick: bool) -> list[tuple]:
    rows = []
    echo = _serve(_echo)
    source = _serve(_source_sink)
    with Link(Profile("p50", rtt_s=0.05), [("127.0.0.1", echo)]) as link:
        t = _pingpong(link.ports[0], 100)
    med = statistics.median(t)
    rows.append(("ping-pong, 100 x 50 ms", f"{med * 1e3:.2f} ms per round trip (mean {statistics.mean(t) * 1e3:.2f})",
                 "50 ms +- 1 ms", abs(med - 0.05) <= max(0.001, 0.02 * 0.05)))
    size = 5 * MB if quick else 20 * MB
    with Link(Profile("bulk", down_bps=20e6, up_bps=20e6), [("127.0.0.1", source)]) as link:
        took = _download(link.ports[0], size)
        both = _download(link.ports[0], size, upload=size)
    want = -(-size // MSS) * (MSS + HEADER_BYTES) * 8 / 20e6  # TCP/IP headers serialized with each segment
    rows.append((f"bulk, {size // MB} MB at 20 Mbit/s", f"{took:.3f} s", f"{want:.1f} s +- 5 %",
                 abs(took - want) <= 0.05 * want))
    rows.append(("independence: same download with a concurrent upload", f"{both:.3f} s ({both / took - 1:+.1%})",
                 "within 5 % of alone", abs(both - took) <= 0.05 * took))
    direct = statistics.median(_pingpong(echo, 2000))
    with Link(Profile("zero"), [("127.0.0.1", echo)]) as link:
        relayed = statistics.median(_pingpong(link.ports[0], 2000))
    rows.append(("overhead at 0 ms, unlimited", f"{(relayed - direct) * 1e3:.3f} ms per round trip "
                 f"(direct {direct * 1e6:.0f} us, relayed {relayed * 1e6:.0f} us)", "<= 0.2 ms",
                 relayed - direct <= 0.0002))
    return rows


def acceptance_grid(quick: bool, only: list[str] | None = None) -> list[Experiment]:
    sizes = (20,) if quick else (20, 200)
    profiles = ("lan", "4g") if quick else ("lan", "4g", "3g")
    if only:
        return [e for e in acceptance_grid(quick) if e.profile in only]
    cells = []
    for prof in profiles:
        for n in sizes:
            for exp in four_strategies(Experiment(messages=n, profile=prof)):
                if exp.strategy == "header-first":
                    exp = replace(exp, read_fraction=0.1)
                cells.append(exp)
    cells += [replace(e, read_fraction=0.1) for e in four_strategies(Experiment(messages=20, profile="edge"))
              if e.strategy == "header-first" and not quick]
    return cells


def model_vs_link(cells: list[Experiment], repeats: int) -> list[dict]:
    """Each cell: the model's times from sessions through the baseline link (model_rows: medians over the
    repeats), then the same sessions through the profile's link (medians of what the client saw)."""
    out = []
    for exp in cells:
        (model,) = model_rows([replace(exp, repeats=repeats)], [exp.profile], conditions="as-given")
        measured = run_experiment(replace(exp, repeats=repeats))
        for k in ("duration_s", "time_to_list_s", "open_median_s"):
            meas = [row[k] for row in measured if row[k] is not None]
            if model[k] is None or not meas:
                continue
            m = statistics.median(meas)
            out.append({"profile": exp.profile, "label": exp.label, "messages": exp.messages, "metric": k,
                        "measured_s": m, "model_s": model[k], "error": (model[k] - m) / m})
        print(f"  {exp.profile:5} {exp.label:18} n={exp.messages:3}: "
              + ", ".join(f"{r['metric']} {r['measured_s']:.3f}/{r['model_s']:.3f}" for r in out
                          if r["label"] == exp.label and r["profile"] == exp.profile
                          and r["messages"] == exp.messages), file=sys.stderr, flush=True)
    return out


def sweep_time(sizes=(10, 20, 50, 100, 200)) -> tuple[float, int]:
    t = time.perf_counter()
    cells = [e for n in sizes for e in four_strategies(Experiment(messages=n, read_fraction=0.0))]
    got = model_rows(cells, list(PROFILES), conditions="as-given")
    return time.perf_counter() - t, len(got)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller bulk and grid")
    ap.add_argument("--repeats", type=int, default=1, help="sessions per grid cell (medians)")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--grid-only", nargs="*", metavar="PROFILE",
                    help="only the model-vs-link grid, for these profiles (all when none named)")
    args = ap.parse_args(argv)
    import pandas as pd

    lines = ["| check | measured | goal | met |", "|---|---|---|---|"]
    if args.grid_only is not None:
        df = pd.DataFrame(model_vs_link(acceptance_grid(args.quick, args.grid_only), args.repeats))
        print(df.to_string())
        return 0
    for name, got, goal, ok in link_accuracy(args.quick):
        lines.append(f"| {name} | {got} | {goal} | {'yes' if ok else 'NO'} |")
        print(lines[-1], file=sys.stderr, flush=True)
    took, n = sweep_time()
    lines.append(f"| model sweep: 4 strategies x 7 profiles x 5 sizes ({n} rows) | {took:.1f} s | < 60 s | "
                 f"{'yes' if took < 60 else 'NO'} |")
    grid = model_vs_link(acceptance_grid(args.quick), args.repeats)
    df = pd.DataFrame(grid)
    out = Path(args.out)
    write_csv_atomically(df, out / "link_model_raw.csv")
    core = df[df.metric.isin(["duration_s", "time_to_list_s"])]
    worst = core.error.abs().max()
    lines.append(f"| model on the acceptance grid ({len(core)} figures) | worst error {worst:.1%}, median "
                 f"{core.error.abs().median():.1%} | <= 10 % everywhere | {'yes' if worst <= 0.10 else 'NO'} |")
    lines += ["", "model vs measured through the link (seconds; error = (model - measured) / measured):", "",
              "| profile | strategy | messages | metric | measured | model | error |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.profile} | {r.label} | {r.messages} | {r.metric} | {r.measured_s:.3f} | {r.model_s:.3f} | "
              f"{r.error:+.1%} |" for r in df.itertuples()]
    # slow start: measured and modelled, on and off
    lines += ["", "slow start (4g, IMAP download-all, 200 messages; on by default):", "",
              "| slow start | measured duration_s | model duration_s |", "|---|---|---|"]
    base = Experiment(messages=20 if args.quick else 200, strategy="download-all")
    results: list = []
    run_experiment(replace(base, profile=BASELINE), results=results)
    for on in (False, True):
        prof = replace(PROFILES["4g"], slow_start=on, name="4g" if on else "4g-no-slow-start")
        (row,) = run_experiment(replace(base, profile=prof))
        lines.append(f"| {'on' if on else 'off'} | {row['duration_s']:.3f} | "
                     f"{predict(results[0], prof)['duration_s']:.3f} |")
    # break-even: model (closed form) against the measured sessions through the link
    lines += ["", "break-even read fraction on 4g, 20 messages (model closed form vs measured through the link):",
              "", "| protocol | bytes r* | waiting r* model | waiting r* measured |", "|---|---|---|---|"]
    cell = Experiment(messages=20)
    for row in breakeven_rows(cell, "4g", conditions="as-given"):  # the cells below run as given
        p = replace(cell, protocol=row["protocol"], profile="4g")
        (hf0,) = run_experiment(replace(p, strategy="header-first", read_fraction=0.0))
        (hf1,) = run_experiment(replace(p, strategy="header-first", read_fraction=1.0))
        (da,) = run_experiment(replace(p, strategy="download-all"))
        # every open's wait at r = 1: the time after the list, less the same session's tail at r = 0 (LOGOUT)
        opens_total = (hf1["duration_s"] - hf1["time_to_list_s"]) - (hf0["duration_s"] - hf0["time_to_list_s"])
        measured = (da["time_to_list_s"] - hf0["time_to_list_s"]) / opens_total if opens_total > 0 else None
        lines.append(f"| {row['protocol']} | {row['bytes_r']:.3f} | {row['waiting_r']:.3f} | "
                     f"{'n/a' if measured is None else f'{measured:.3f}'} |")
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "link.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
