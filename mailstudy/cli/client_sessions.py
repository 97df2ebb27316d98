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

_OWN = "a client profile sends what its client sends"
_LOOPBACK = "client sessions run on loopback (`fleet --profile` models a network for client profiles)"
#: Options of ``session`` that mean nothing for a client profile: (attribute, flag, its default, why).
NOT_FOR_CLIENTS = (("capture", "--capture", None, "no pcap is made of client sessions"),
                   ("pop3_mode", "--pop3-mode", None, _OWN), ("per_message", "--per-message", False, _OWN),
                   ("pipelining", "--pipelining", False, _OWN), ("preview", "--preview", 0, _OWN),
                   ("mailbox", "--mailbox", None, "client sessions use a generated mailbox"),
                   ("profile", "--profile", "loopback", _LOOPBACK), ("rtt", "--rtt", None, _LOOPBACK),
                   ("down", "--down", None, _LOOPBACK), ("up", "--up", None, _LOOPBACK),
                   ("jitter", "--jitter", None, _LOOPBACK), ("slow_start", "--slow-start", False, _LOOPBACK))


def client_params(args):
    """The :class:`~mailstudy.live.params.SessionParams` of ``session --client``: defaults where none is given."""
    from mailstudy.live.params import DEFAULT_SIZES, SessionParams
    from mailstudy.study.fleet import CLIENT_READ_FRACTION

    return SessionParams(server=args.server, workload=args.client, messages=args.messages,
                         sizes=args.sizes or DEFAULT_SIZES, seed=args.seed,
                         read_fraction=CLIENT_READ_FRACTION if args.read_fraction is None else args.read_fraction)


def show_client_sessions(args) -> int:
    """``mailstudy session --client NAME [--exchanges]``: what that client sends, session by session."""
    from mailstudy.protocol.metrics import exchanges_frame, redacted
    from mailstudy.study.fleet import client_sessions

    for attr, flag, default, why in NOT_FOR_CLIENTS:
        if getattr(args, attr, default) != default:
            return fail(f"{flag} does not apply to --client: {why}")
    from mailstudy.corpus import DEFAULT_MAX_MAILBOX_BYTES, check_mailbox_size

    try:
        params = client_params(args)
        check_mailbox_size(params.messages, params.sizes, params.seed,
                           args.max_mailbox_gb or DEFAULT_MAX_MAILBOX_BYTES)  # as plain ``session`` does
        phases = client_sessions(params)
    except ValueError as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps([{"phase": phase, "client": args.client, **out.result.metrics,
                           **({"exchanges": [{"command": e.command, "arguments": redacted(e),
                                              "bytes_up": e.bytes_up, "bytes_down": e.bytes_down}
                                             for e in out.result.exchanges]} if args.exchanges else {})}
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
