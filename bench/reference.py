"""Benchmark: the link (relay) and the model against references that share none of their code (issue 16).

Prints Markdown tables and writes them, with the raw rows, under bench/results/ (reference.md, reference_raw.csv,
reference_loss.csv). Run: `.venv/bin/python bench/reference.py` (about 10 minutes; `--quick` for lan and 4g
only). Needs ns-3 (`pip install 'mailstudy[reference]'`, or a separate venv `.ns3venv` in the checkout) and g++.

1. Loss-free grid, {lan, 4g, 3g, satellite-geo, edge} x {IMAP header-first (read fraction 0.1), IMAP
   download-all, POP3 download-all (keep)}, 20 buchner2009 messages: each strategy's session is measured once
   through the baseline link (its flights: what the model and ns-3 replay), then run through each profile's
   relay (the median of --repeats sessions). Printed: the relay's, the model's and ns-3's duration and time to
   list, and the relative errors against ns-3 (goal: within 5 %). Every ns-3 setting is named.
   A "setup gap" column gives how much later ns-3's greeting arrives than the model's (connection setup: ns-3
   pays SYN, SYN-ACK, ACK, then the greeting), and the errors beyond it.
2. 1 % loss, bulk: one answer of 1 MB, timed from its first byte to its last at the client. The link's rule
   over 20 seeds (median), the model's expected time (the mean of its draws), the relay over 20 seeded
   connections (lan, 4g, 3g; satellite and edge would take an hour), and Padhye et al.'s formula (SIGCOMM
   1998, b = 1: our link acknowledges every segment; T_0 = the link's RTO; W_max = the receive window).
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

from mailstudy.link import BASELINE, Link, RoundTrip, Session, get_profile, predict
from mailstudy.link import ns3ref
from mailstudy.link.schedule import Direction
from mailstudy.study.experiment import Experiment, run_experiment, write_csv_atomically

GRID_PROFILES = ("lan", "4g", "3g", "satellite-geo", "edge")
STRATEGIES = {
    "IMAP header-first": Experiment(protocol="imap", strategy="header-first", read_fraction=0.1),
    "IMAP download-all": Experiment(protocol="imap", strategy="download-all"),
    "POP3 download-all (keep)": Experiment(protocol="pop3", strategy="download-all", pop3_mode="keep"),
}
LOSS = 0.01
BULK = 1_000_000
SEEDS = 20


def loss_free(profiles, messages: int, repeats: int, binary) -> list[dict]:
    rows = []
    for label, exp in STRATEGIES.items():
        exp = replace(exp, messages=messages)
        results: list = []
        (base,) = run_experiment(replace(exp, profile=BASELINE), results=results)
        flights = ns3ref.session_of(results[0])
        for name in profiles:
            model = predict(results[0], name)
            ref = ns3ref.run(results[0], name, binary)
            # connection setup: when the greeting arrives, in the model and in ns-3 (2 RTT: SYN, SYN-ACK, ACK,
            # greeting); the part of any error that setup explains is shown apart
            gap = (ref["first_command_s"] - flights.round_trips[0].pause_s) - \
                predict(replace(flights, round_trips=()), name)["duration_s"]
            measured = run_experiment(replace(exp, profile=name, repeats=repeats))
            relay = {k: statistics.median(r[k] for r in measured) for k in ("duration_s", "time_to_list_s")}
            for k in ("duration_s", "time_to_list_s"):
                rows.append({"profile": name, "strategy": label, "metric": k, "round_trips": base["round_trips"],
                             "bytes_down": base["bytes_down"], "relay_s": relay[k], "model_s": model[k],
                             "ns3_s": ref[k], "relay_error": relay[k] / ref[k] - 1,
                             "model_error": model[k] / ref[k] - 1, "ns3_first_command_s": ref["first_command_s"],
                             "setup_gap_s": gap, "relay_error_after_setup": (relay[k] + gap) / ref[k] - 1,
                             "model_error_after_setup": (model[k] + gap) / ref[k] - 1})
            r = rows[-2]
            print(f"  {name:13} {label:25} duration relay {r['relay_s']:.3f} model {r['model_s']:.3f} "
                  f"ns-3 {r['ns3_s']:.3f}", file=sys.stderr, flush=True)
    return rows


def _source(c: socket.socket) -> None:
    """Reads one line 'N', sends N bytes, closes (the bulk answer)."""
    with c:
        n = int(c.makefile("rb").readline())
        c.sendall(b"x" * n)


def _serve() -> int:
    srv = socket.create_server(("127.0.0.1", 0))

    def loop():
        while True:
            c, _ = srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_source, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def _relay_bulk(port: int, nbytes: int) -> float:
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(f"{nbytes}\n".encode())
        got, first = 0, None
        while got < nbytes:
            chunk = c.recv(262144)
            if not chunk:
                break
            first = first or time.perf_counter()
            got += len(chunk)
        return time.perf_counter() - first


def _rule_bulk(profile, seed) -> float:
    pieces = Direction(profile, True, 0.0, seed).schedule(1.0, BULK)
    return pieces[-1][0] - pieces[0][0]


def lossy(profiles, relay_profiles) -> list[dict]:
    port = _serve()
    rows = []
    for name in profiles:
        p = replace(get_profile(name), loss=LOSS, name=f"{name}+1%loss")
        rule = [_rule_bulk(p, s) for s in range(SEEDS)]
        many = [_rule_bulk(p, s) for s in range(10 * SEEDS)]  # how far 20 seeds are from the rule's own mean
        clean = _rule_bulk(replace(p, loss=0.0), 0)
        m = predict(Session(0.0, (RoundTrip(10, BULK),)), p, draws=SEEDS)  # expected time of the whole flight
        m0 = predict(Session(0.0, (RoundTrip(10, BULK),)), replace(p, loss=0.0))
        padhye = ns3ref.padhye_bps(p.rtt_s, LOSS, window_bytes=p.rwnd_bytes)
        rate = min(padhye, p.down_bps or padhye)
        row = {"profile": name, "bytes": BULK, "loss": LOSS, "loss_free_s": clean,
               "rule_median_s": statistics.median(rule), "rule_mean_200_s": statistics.mean(many),
               "model_expected_s": clean + m["duration_s"] - m0["duration_s"],
               "padhye_s": BULK * 8 / rate, "padhye_mbit": padhye / 1e6, "relay_median_s": None}
        if name in relay_profiles:
            with Link(p, [("127.0.0.1", port)], seed=7) as link:
                row["relay_median_s"] = statistics.median(_relay_bulk(link.ports[0], BULK) for _ in range(SEEDS))
        rows.append(row)
        print(f"  {name:13} 1% loss: rule {row['rule_median_s']:.2f} s, model {row['model_expected_s']:.2f} s, "
              f"Padhye {row['padhye_s']:.2f} s, relay {row['relay_median_s']}", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="lan and 4g only")
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1, help="relay sessions per cell (median)")
    ap.add_argument("--cc", default=ns3ref.SETTINGS["cc"], help="ns-3's controller (ns3::TcpCubic, ns3::TcpNewReno)")
    ap.add_argument("--del-ack", type=int, default=ns3ref.SETTINGS["del_ack_count"],
                    help="ns-3's DelAckCount (segments per ACK)")
    ap.add_argument("--skip-loss", action="store_true")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    import pandas as pd

    prefix, why = ns3ref.locate()
    if prefix is None:
        print(f"bench/reference.py: {why}", file=sys.stderr)
        return 2
    binary = ns3ref.build(prefix)
    ns3ref.SETTINGS["cc"] = args.cc
    ns3ref.SETTINGS["del_ack_count"] = args.del_ack
    profiles = GRID_PROFILES[:2] if args.quick else GRID_PROFILES
    out = Path(args.out)
    lines = ["ns-3 3.44: " + ns3ref.describe({**ns3ref.SETTINGS, "rcvbuf": "the profile's receive window (3 MiB)"}),
             "", "loss-free grid (seconds from connect; errors against ns-3):", "",
             "| profile | strategy | metric | relay | model | ns-3 | relay error | model error | setup gap | "
             "relay error beyond setup | model error beyond setup |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    df = pd.DataFrame(loss_free(profiles, args.messages, args.repeats, binary))
    write_csv_atomically(df, out / "reference_raw.csv")
    lines += [f"| {r.profile} | {r.strategy} | {r.metric} | {r.relay_s:.3f} | {r.model_s:.3f} | {r.ns3_s:.3f} | "
              f"{r.relay_error:+.1%} | {r.model_error:+.1%} | {r.setup_gap_s * 1e3:.0f} ms | "
              f"{r.relay_error_after_setup:+.1%} | {r.model_error_after_setup:+.1%} |" for r in df.itertuples()]
    lines += ["", f"worst |error| against ns-3: relay {df.relay_error.abs().max():.1%}, model "
              f"{df.model_error.abs().max():.1%} (goal 5 %); beyond connection setup (the greeting's arrival, "
              f"'setup gap': ns-3's minus the model's): relay {df.relay_error_after_setup.abs().max():.1%}, model "
              f"{df.model_error_after_setup.abs().max():.1%}; medians: relay {df.relay_error.abs().median():.1%}, "
              f"model {df.model_error.abs().median():.1%}"]
    if not args.skip_loss:
        ldf = pd.DataFrame(lossy(profiles, [p for p in profiles if p in ("lan", "4g", "3g")]))
        write_csv_atomically(ldf, out / "reference_loss.csv")
        lines += ["", f"1 % loss, one {BULK // 1000} kB answer, first to last byte (seconds; {SEEDS} seeds):", "",
                  "| profile | loss-free | link rule median | link rule mean, 200 seeds | model expected | relay median "
                  "| Padhye (b=1) | model / Padhye |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.profile} | {r.loss_free_s:.2f} | {r.rule_median_s:.2f} | {r.rule_mean_200_s:.2f} | "
                  f"{r.model_expected_s:.2f} | "
                  f"{'n/a' if r.relay_median_s is None or r.relay_median_s != r.relay_median_s else f'{r.relay_median_s:.2f}'} | "
                  f"{r.padhye_s:.2f} | {r.model_expected_s / r.padhye_s:.2f} |" for r in ldf.itertuples()]
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reference.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
