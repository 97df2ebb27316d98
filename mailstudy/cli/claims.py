"""``mailstudy claims``: run the seed article's claims as experiments and print the ledger of verdicts.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`); the experiments and
verdict rules live in :mod:`mailstudy.study.claims`, shared with notebook 06.
"""

from __future__ import annotations

import json
import sys

from mailstudy.cli.values import seed


def add_parser(sub) -> None:
    p = sub.add_parser("claims", help="the seed article's claims as experiments, each with a number and a verdict",
                       description="Run one experiment per claim of the seed article against real servers and "
                                   "print each claim, its experiment, the measured figure and the verdict "
                                   "(supported, contradicted, holds-only-when, not-a-protocol-property, "
                                   "not-measurable-here).")
    p.add_argument("--json", action="store_true", help="print the ledger as one JSON array")
    p.add_argument("--quick", action="store_true", help="10 messages, embedded server only (seconds)")
    p.add_argument("--server", action="append", choices=("embedded", "dovecot"), metavar="KIND",
                   help="run on this server (repeatable; default: embedded, plus dovecot when installed)")
    p.add_argument("--seed", type=seed, default=0, help="corpus seed (0)")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataclasses import asdict

    from mailstudy.study.claims import format_ledger, run_claims

    progress = None if args.json else (lambda what: print(f"… {what}", file=sys.stderr, flush=True))
    verdicts = run_claims(quick=args.quick, servers=args.server, seed=args.seed, progress=progress)
    if args.json:
        print(json.dumps([asdict(v) for v in verdicts], default=str, ensure_ascii=False))
    else:
        print(format_ledger(verdicts))
    return 0
