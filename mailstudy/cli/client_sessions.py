"""``mailstudy session --client NAME [--exchanges]``: what one real client profile sends, session by session.

Why a module of its own: ``session`` shows it, but the runs come from the fleet's client profiles
(:func:`mailstudy.study.fleet.client_sessions`); keeping it apart keeps ``session`` and ``fleet`` free of each other.
The values are checked by the one parameter object (:class:`mailstudy.live.params.SessionParams`); every
command's arguments are shown as the protocol parsers redact them (the same credential spans ``redact`` uses), in
the table and in JSON alike.
"""

from __future__ import annotations

import json

from mailstudy.cli.errors import fail


def client_params(args):
    """The :class:`~mailstudy.live.params.SessionParams` of ``session --client``: defaults where none is given."""
    from mailstudy.live.params import DEFAULT_SIZES, SessionParams
    from mailstudy.study.fleet import CLIENT_READ_FRACTION

    return SessionParams(server=args.server, workload=args.client, messages=args.messages,
                         sizes=args.sizes or DEFAULT_SIZES, seed=args.seed, compress=args.compress,
                         read_fraction=CLIENT_READ_FRACTION if args.read_fraction is None else args.read_fraction)


def show_client_sessions(args) -> int:
    """``mailstudy session --client NAME [--exchanges]``: what that client sends, session by session."""
    from mailstudy.cli.exchanges import exchange_records, format_exchanges
    from mailstudy.study.fleet import client_sessions

    from mailstudy.corpus import DEFAULT_MAX_MAILBOX_BYTES, check_mailbox_size

    try:
        params = client_params(args)
        check_mailbox_size(params.messages, params.sizes, params.seed,
                           args.max_mailbox_gb or DEFAULT_MAX_MAILBOX_BYTES,  # as plain ``session`` does
                           headers=params.headers)
        phases = client_sessions(params)
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
        packed = (f" ({m['compressed_bytes_down']:,} B on the wire, COMPRESS)" if out.result.compressed else "")
        print(f"{args.client}, {phase}: {m['commands']} commands, {m['round_trips']} round trips, "
              f"{m['bytes_up']:,} B up, {m['bytes_down']:,} B down{packed}, {len(out.new_listed)} new, "
              f"{out.bodies} bodies, {len(out.read)} read")
        if args.exchanges:
            print(format_exchanges(exchange_records(out.result.exchanges)))
        print()
    return 0
