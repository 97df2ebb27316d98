"""``mailstudy session --client NAME [--exchanges]``: what one real client profile sends, session by session.

Why a module of its own: ``session`` shows it, but the runs come from the fleet's client profiles
(:func:`mailstudy.study.fleet.client_sessions`); keeping it apart keeps ``session`` and ``fleet`` free of each other.
"""

from __future__ import annotations

import json

from mailstudy.cli.errors import fail


def show_client_sessions(args) -> int:
    """``mailstudy session --client NAME [--exchanges]``: what that client sends, session by session."""
    from mailstudy.cli.exchanges import exchange_records, format_exchanges
    from mailstudy.study.fleet import client_sessions

    try:
        given = {k: v for k, v in (("sizes", args.sizes), ("read_fraction", args.read_fraction)) if v is not None}
        phases = client_sessions(args.client, args.server, args.messages, seed=args.seed, **given)
    except ValueError as exc:
        return fail(str(exc))
    if args.json:
        # exchanges only when asked, their credentials as *** (as in the text output and `analyze --json`)
        print(json.dumps([{"phase": phase, "client": args.client, **out.result.metrics,
                           **({"exchanges": exchange_records(out.result.exchanges)} if args.exchanges else {})}
                          for phase, out in phases], default=str))
        return 0
    for phase, out in phases:
        m = out.result.metrics
        print(f"{args.client}, {phase}: {m['commands']} commands, {m['round_trips']} round trips, "
              f"{m['bytes_up']:,} B up, {m['bytes_down']:,} B down, {len(out.new_listed)} new, "
              f"{out.bodies} bodies, {len(out.read)} read")
        if args.exchanges:
            print(format_exchanges(exchange_records(out.result.exchanges)))
        print()
    return 0
