"""``mailstudy breakeven``: the read fraction above which header-first costs more than download-all.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`). The counts come from
real sessions through the model's baseline link (header-first reading nothing and everything, download-all),
the times from the model (:func:`mailstudy.link.breakeven` states the closed form).
"""

from __future__ import annotations

import json

from mailstudy.cli.errors import fail
from mailstudy.cli.session import add_link_arguments, link_profile
from mailstudy.cli.values import count, gigabytes, seed


def add_parser(sub) -> None:
    p = sub.add_parser("breakeven", help="the read fraction where header-first starts to cost more than "
                                         "download-all, in bytes and in waiting",
                       description="Run header-first (reading nothing, then everything) and download-all on "
                                   "loopback, then give in closed form the read fraction above which header-first "
                                   "plus on-demand reading moves more bytes, or makes the user wait longer in "
                                   "total, than download-all on the chosen network. A fraction above 1 means "
                                   "header-first is cheaper at every read fraction.")
    p.add_argument("--messages", type=count, default=200, metavar="N", help="messages in the mailbox (200)")
    p.add_argument("--sizes", default="buchner2009", metavar="PRESET",
                   help="message size preset: buchner2009, fixed-5k, lognormal (buchner2009)")
    p.add_argument("--seed", type=seed, default=0, metavar="S", help="corpus seed (0)")
    p.add_argument("--max-mailbox-gb", type=gigabytes, default=None, metavar="GB",
                   help="refuse a generated mailbox estimated above GB gigabytes (2.1)")
    p.add_argument("--server", choices=["embedded", "dovecot"], default="embedded")
    p.add_argument("--protocol", choices=["imap", "pop3", "both"], default="both")
    add_link_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per protocol")
    p.set_defaults(func=run)


def _fraction(r: float | None) -> str:
    if r is None:
        return "never (header-first cost does not grow with r)"
    if r >= 1:
        return f"{r:.3f} (above 1: header-first is cheaper at every read fraction)"
    if r <= 0:
        return f"{r:.3f} (below 0: download-all is cheaper at every read fraction)"
    return f"{r:.3f}"


def run(args) -> int:
    from mailstudy.corpus import DEFAULT_MAX_MAILBOX_BYTES, check_mailbox_size
    from mailstudy.study.experiment import Experiment
    from mailstudy.study.modelled import breakeven_rows

    try:
        profile = link_profile(args)
        base = Experiment(server=args.server, messages=args.messages, sizes=args.sizes, seed=args.seed)
        check_mailbox_size(base.messages, base.sizes, base.seed, args.max_mailbox_gb or DEFAULT_MAX_MAILBOX_BYTES)
    except ValueError as exc:
        return fail(str(exc))
    protocols = ("imap", "pop3") if args.protocol == "both" else (args.protocol,)
    for row in breakeven_rows(base, profile, protocols):
        if args.json:
            print(json.dumps(row))
            continue
        print(f"{row['protocol'].upper()} on {row['profile']}, {row['messages']} {row['sizes']} messages:\n"
              f"  bytes:   header-first costs more above read fraction {_fraction(row['bytes_r'])}\n"
              f"  waiting: header-first costs more above read fraction {_fraction(row['waiting_r'])}\n"
              f"           (list: header-first {row['list_wait_header_first_s']:.3f} s, download-all "
              f"{row['list_wait_download_all_s']:.3f} s; opening every message: {row['open_waits_all_s']:.3f} s)")
    return 0
