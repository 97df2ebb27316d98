"""Benchmark: the break-even read fractions before and after the study's network defaults changed (issue 16).

The study's break-even numbers (notebook 03, ``mailstudy breakeven``) now run over implicit TLS 1.3 with each
profile's loss rate (:mod:`mailstudy.study.network`); the clear-text, loss-free numbers stay as the named
control. This prints, for each named profile and for IMAP and POP3, the bytes and waiting break-even under the
control, with TLS alone, with loss alone, and under both (the new default), so that what each changes is shown.
TCP's behaviour (slow start, restart after idle, receive window, header bytes) is on in all four: it is the
link's own default since issue 16.

Prints a Markdown table and writes it, with the raw rows, under bench/results/ (breakeven_defaults.md,
breakeven_defaults.csv). Run: `.venv/bin/python bench/breakeven_defaults.py` (a few minutes: four sets of 200
message sessions per protocol; `--messages 20` for a quick look).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from mailstudy.link import PROFILES
from mailstudy.study.experiment import Experiment, write_csv_atomically
from mailstudy.study.latency import profiles_by_rtt
from mailstudy.study.modelled import breakeven_rows
from mailstudy.study.network import CONTROL, LOSS, REALISTIC

VARIANTS = {
    "control": CONTROL,  # clear text, no loss: the study's numbers before
    "tls": replace(CONTROL, name="tls only", tls=REALISTIC.tls, tls_version=REALISTIC.tls_version),
    "loss": replace(CONTROL, name="loss only", loss=REALISTIC.loss),
    "default": REALISTIC,  # implicit TLS 1.3 and each profile's loss
}


def _r(x) -> str:
    return "never" if x is None else f"{x:.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200, help="messages in the mailbox (200, as the CLI)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--server", default="embedded")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    import pandas as pd

    base = Experiment(server=args.server, messages=args.messages, sizes="buchner2009", seed=args.seed)
    profiles = [p for p in profiles_by_rtt(PROFILES) if p != "loopback"]
    rows = []
    for key, net in VARIANTS.items():
        print(f"  {net.describe()} ...", file=sys.stderr, flush=True)
        for row in breakeven_rows(base, profiles, conditions=net):
            rows.append({"variant": key, **row})
    df = pd.DataFrame(rows)
    out = Path(args.out)
    write_csv_atomically(df, out / "breakeven_defaults.csv")
    lines = [f"Break-even read fraction (model; {args.messages} buchner2009 messages, seed {args.seed}, "
             f"{args.server}): above it header-first costs more than download-all. Control: clear text, no loss; "
             f"default: implicit TLS 1.3 and the profile's loss (mailstudy.study.network.LOSS, our assumptions). "
             f"TCP's slow start, restart after idle and receive window are on in every column.", "",
             "| profile | loss | protocol | bytes: control | bytes: default | waiting: control | waiting: TLS only "
             "| waiting: loss only | waiting: default |", "|---|---|---|---|---|---|---|---|---|"]
    at = {(r["variant"], r["profile"], r["protocol"]): r for r in rows}
    for p in profiles:
        for protocol in ("imap", "pop3"):
            c, t, lo, d = (at[(v, p, protocol)] for v in VARIANTS)
            lines.append(f"| {p} | {LOSS[p][0]:.1%} | {protocol.upper()} | {_r(c['bytes_r'])} | {_r(d['bytes_r'])} "
                         f"| {_r(c['waiting_r'])} | {_r(t['waiting_r'])} | {_r(lo['waiting_r'])} "
                         f"| {_r(d['waiting_r'])} |")
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "breakeven_defaults.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
