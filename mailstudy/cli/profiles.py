"""``mailstudy profiles``: the network profiles a session can run through, with the source of every figure;
``--clients``: the client profiles, every behaviour with its value and source.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`).
"""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("profiles", help="list the network profiles (RTT, bandwidth, sources) or the client profiles",
                       description="The named networks `mailstudy session --profile NAME` runs through, each "
                                   "with the source of its figures; assumptions are marked as such. A custom link: "
                                   "--rtt 80ms --down 10mbit --up 2mbit --jitter 5ms. With --clients: the client "
                                   "profiles `session --client` and `fleet --client` run, every behaviour with "
                                   "its value and its source (a value marked 'ours:' is our own).")
    p.add_argument("--clients", action="store_true", help="list the client profiles instead of the networks")
    p.add_argument("--json", action="store_true", help="print one JSON object per line instead of a table")
    p.set_defaults(func=run)


def _print_table(table: list[tuple]) -> None:
    """Columns padded to their widest cell; the last column (the source) as it is."""
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


def run(args) -> int:
    if args.clients:
        return _clients(args)
    from mailstudy.link import PROFILES, rows
    from mailstudy.link.profiles import format_duration, format_rate

    if args.json:
        for row in rows():
            print(json.dumps(row))
        return 0
    table = [("profile", "RTT", "down", "up", "source")]
    table += [(p.name, format_duration(p.rtt_s), format_rate(p.down_bps), format_rate(p.up_bps), p.source)
              for p in PROFILES.values()]
    _print_table(table)
    return 0


def _clients(args) -> int:
    from mailstudy.live.client_profiles import PROFILES, profile_table

    rows = profile_table()
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str))
        return 0
    for name, profile in PROFILES.items():
        print(f"{name} ({profile.protocol}): {profile.summary}")
        _print_table([("  behaviour", "value", "source")] +
                     [(f"  {r['field']}", str(r["value"]), r["source"]) for r in rows if r["client"] == name])
        print()
    return 0
