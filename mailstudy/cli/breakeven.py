"""``mailstudy breakeven``: the read fraction above which header-first costs more than download-all.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`). The counts come from
real sessions through the model's baseline link (header-first reading nothing and everything, download-all),
the times from the model (:func:`mailstudy.link.breakeven` states the closed form). The sessions run on the
study's network conditions (:mod:`mailstudy.study.network`): implicit TLS 1.3 and each profile's loss unless
``--control`` (clear text, no loss: the numbers before these were the default) or ``--tls``/``--loss`` say otherwise.
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
                                   "header-first is cheaper at every read fraction. By default the sessions run "
                                   "over implicit TLS 1.3 with each profile's loss rate (`mailstudy profiles`; "
                                   "mailstudy.study.network.LOSS); --control gives clear text without loss.")
    p.add_argument("--messages", type=count, default=200, metavar="N", help="messages in the mailbox (200)")
    p.add_argument("--sizes", default="buchner2009", metavar="PRESET",
                   help="message size preset: buchner2009, fixed-5k, lognormal (buchner2009)")
    p.add_argument("--seed", type=seed, default=0, metavar="S", help="corpus seed (0)")
    p.add_argument("--max-mailbox-gb", type=gigabytes, default=None, metavar="GB",
                   help="refuse a generated mailbox estimated above GB gigabytes (2.1)")
    p.add_argument("--server", choices=["embedded", "dovecot"], default="embedded")
    p.add_argument("--protocol", choices=["imap", "pop3", "both"], default="both")
    add_link_arguments(p)
    g = p.add_argument_group("network conditions (default: implicit TLS 1.3, each profile's loss)")
    g.add_argument("--control", action="store_true",
                   help="the named control: clear text and no loss (same as --tls none --loss 0)")
    g.add_argument("--tls", choices=["none", "implicit", "starttls"], default=None,
                   help="TLS of every session (implicit; with --control: none)")
    g.add_argument("--tls-version", choices=["1.2", "1.3"], default=None, help="with --tls: the version (1.3)")
    g.add_argument("--loss", default=None, metavar="RATE",
                   help="loss rate on every profile, e.g. 1%% or 0.01 (default: the profile's own study rate; "
                        "with --control: 0)")
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


def conditions_of(args):
    """The network conditions the options name: realistic or control, with --tls, --tls-version and --loss put
    in (named ``custom`` unless they are then one of the named conditions)."""
    from dataclasses import replace

    from mailstudy.link.profiles import parse_loss
    from mailstudy.study.network import CONTROL, REALISTIC

    net = CONTROL if args.control else REALISTIC
    changes = {k: v for k, v in (("tls", args.tls), ("tls_version", args.tls_version)) if v is not None}
    if args.loss is not None:
        changes["loss"] = parse_loss(args.loss)
    net = replace(net, name="custom", **changes) if changes else net
    for named in (CONTROL, REALISTIC):  # --tls none --loss 0 is the control, by its name
        if replace(net, name=named.name) == named:
            return named
    return net


def run(args) -> int:
    from mailstudy.corpus import DEFAULT_MAX_MAILBOX_BYTES, check_mailbox_size
    from mailstudy.study.experiment import Experiment
    from mailstudy.study.modelled import breakeven_rows

    try:
        net = conditions_of(args)
        profile = link_profile(args)
        base = Experiment(server=args.server, messages=args.messages, sizes=args.sizes, seed=args.seed)
        check_mailbox_size(base.messages, base.sizes, base.seed, args.max_mailbox_gb or DEFAULT_MAX_MAILBOX_BYTES)
    except ValueError as exc:
        return fail(str(exc))
    protocols = ("imap", "pop3") if args.protocol == "both" else (args.protocol,)
    for row in breakeven_rows(base, profile, protocols, conditions=net):
        if args.json:
            print(json.dumps(row))
            continue
        tls = "clear text" if row["tls"] == "none" else f"{row['tls']} TLS {row['tls_version']}"
        print(f"{row['protocol'].upper()} on {row['profile']} ({net.name}: {tls}, loss {row['loss']:.2%}), "
              f"{row['messages']} {row['sizes']} messages:\n"
              f"  bytes:   header-first costs more above read fraction {_fraction(row['bytes_r'])}\n"
              f"  waiting: header-first costs more above read fraction {_fraction(row['waiting_r'])}\n"
              f"           (list: header-first {row['list_wait_header_first_s']:.3f} s, download-all "
              f"{row['list_wait_download_all_s']:.3f} s; opening every message: {row['open_waits_all_s']:.3f} s)")
    return 0
