"""``mailstudy profiles``: the network profiles a session can run through, with the source of every figure.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`).
"""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("profiles", help="list the network profiles (RTT, bandwidth, sources)",
                       description="The named networks `mailstudy session --profile NAME` runs through, each "
                                   "with the source of its figures; assumptions are marked as such. A custom link: "
                                   "--rtt 80ms --down 10mbit --up 2mbit --jitter 5ms.")
    p.add_argument("--json", action="store_true", help="print one JSON object per line instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    from mailstudy.link import PROFILES, rows
    from mailstudy.link.profiles import format_duration, format_rate

    if args.json:
        for row in rows():
            print(json.dumps(row))
        return 0
    table = [("profile", "RTT", "down", "up", "source")]
    table += [(p.name, format_duration(p.rtt_s), format_rate(p.down_bps), format_rate(p.up_bps), p.source)
              for p in PROFILES.values()]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    return 0
