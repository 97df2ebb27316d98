"""``mailstudy session --client NAME [--exchanges]``: what one real client profile sends, session by session.

Why a module of its own: ``session`` shows it, but the runs come from the fleet's client profiles
(:func:`mailstudy.study.fleet.client_sessions`); keeping it apart keeps ``session`` and ``fleet`` free of each other.
"""

from __future__ import annotations

import json

from mailstudy.cli.errors import fail


def show_client_sessions(args) -> int:
    """``mailstudy session --client NAME [--exchanges]``: what that client sends, session by session."""
    from mailstudy.protocol.metrics import exchanges_frame
    from mailstudy.study.fleet import client_sessions

    try:
        phases = client_sessions(args.client, args.server, args.messages, args.sizes, args.seed,
                                 args.read_fraction)
    except ValueError as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps([{"phase": phase, "client": args.client, **out.result.metrics,
                           "exchanges": [{"command": e.command, "arguments": e.arguments, "bytes_up": e.bytes_up,
                                          "bytes_down": e.bytes_down} for e in out.result.exchanges]}
                          for phase, out in phases], default=str))
        return 0
    for phase, out in phases:
        m = out.result.metrics
        print(f"{args.client}, {phase}: {m['commands']} commands, {m['round_trips']} round trips, "
              f"{m['bytes_up']:,} B up, {m['bytes_down']:,} B down, {len(out.new_listed)} new, "
              f"{out.bodies} bodies, {len(out.read)} read")
        if args.exchanges:
            frame = exchanges_frame(out.result.exchanges)
            print(frame[["index", "command", "arguments", "bytes_up", "bytes_down"]].to_string(index=False))
        print()
    return 0
