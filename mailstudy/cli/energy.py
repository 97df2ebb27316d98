"""``mailstudy energy``: what a capture's mail sessions, or a live session, cost a phone's radio, by state.

Why a module of its own: each subcommand is one small module (see :mod:`mailstudy.cli.commands`). This one asks
:mod:`mailstudy.energy` for the ledger and shows it: per client address for a pcap (a radio belongs to one
device; where an address may hold several, it says so), or for one live session run through a link with
``--session`` (the times the client's socket saw, that is the phone's), or for each device of a fleet day with
``--fleet`` (joules per day beside staleness). ``--plot`` draws the radio's states under the session's ladder.
A bad file, an unknown radio or a model file with a missing field is one line and exit 2.
"""

from __future__ import annotations

import json
import sys

from mailstudy.cli.values import count, fraction, interval, port, ranged, seed
from mailstudy.energy.ledger import CATEGORIES

COLUMNS = ("seconds", "joules", "share")


def add_parser(sub) -> None:
    from mailstudy.cli.session import add_link_arguments
    from mailstudy.energy.radios import MODELS

    p = sub.add_parser(
        "energy", help="what a capture or a session costs a phone's radio (LTE, 3G, Wi-Fi), by state",
        description="Walk the packets of a capture's IMAP/POP3 sessions (per client address), or of one live "
                    "session with --session, through a radio's state machine and print the joules spent in "
                    "promotion, transfer, tail and idle. Models: lte and wifi after Huang et al., MobiSys 2012; "
                    "3g after Qian et al. (ARO), MobiSys 2011; or your own with --radio-file.")
    p.add_argument("file", nargs="?", metavar="FILE.pcap", help="the capture (pcap or pcapng)")
    p.add_argument("--radio", default="lte", metavar="NAME", help=f"radio model: {', '.join(MODELS)} (lte)")
    p.add_argument("--radio-file", metavar="PATH", help="a model of your own (JSON, or TOML by its .toml suffix); "
                                                        "--show-model --json prints one to start from")
    p.add_argument("--show-model", action="store_true", help="print the radio model with the source of each figure")
    p.add_argument("--port", dest="ports", type=port, action="append", default=[], metavar="P",
                   help="also treat server port P as mail (repeatable), as in `mailstudy analyze`")
    p.add_argument("--all-tcp", action="store_true",
                   help="charge every TCP connection of the capture, mail or not (e.g. TLS on an unknown port)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the radio's states under the (first) session's ladder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    g = p.add_argument_group("a live session instead of a capture")
    g.add_argument("--session", action="store_true", help="run one session (through --profile's link) and show "
                                                          "its ledger")
    g.add_argument("--protocol", choices=["imap", "pop3"], default="imap")
    g.add_argument("--strategy", choices=["header-first", "download-all"], default="header-first")
    g.add_argument("--messages", type=count, default=20, metavar="N", help="messages in the mailbox (20)")
    g.add_argument("--read-fraction", type=fraction, default=None, metavar="F",
                   help="share of messages the user opens (session, header-first: 0; fleet: 0.5)")
    g.add_argument("--seed", type=seed, default=0, metavar="S")
    g.add_argument("--server", choices=["embedded", "dovecot"], default="embedded")
    add_link_arguments(p)
    f = p.add_argument_group("a fleet day instead (`mailstudy fleet`'s simulated day, every session real)")
    f.add_argument("--fleet", action="store_true", help="run a fleet day and show each device's joules per day")
    f.add_argument("--devices", type=ranged("devices", int), default=1, metavar="N", help="devices on the account (1)")
    f.add_argument("--client", action="append", metavar="NAME", help="client profile of device i (repeatable; "
                                                                     "thunderbird)")
    f.add_argument("--poll", type=interval, metavar="INTERVAL", help="every device's poll interval, e.g. 15m (each client's own)")
    f.add_argument("--idle", action="store_true", help="clients that can IDLE hold a connection instead of polling")
    f.add_argument("--hours", type=ranged("hours"), default=24.0, help="simulated period in hours (24)")
    f.add_argument("--rate", type=ranged("rate"), default=100.0, help="new messages per day (100)")
    p.set_defaults(func=run)


def _model(args):
    from mailstudy.energy.radios import get_model

    if args.radio_file:
        from mailstudy.energy.files import load_model

        return load_model(args.radio_file)
    return get_model(args.radio)


def format_ledger(led) -> str:
    """The ledger as a small table: seconds, joules and share of the energy per state, then the total."""
    total = led.total_j
    lines = [f"  {'state':<10} {'seconds':>10} {'joules':>10} {'share':>7}"]
    for c in CATEGORIES:
        share = led.joules[c] / total if total > 0 else 0.0
        lines.append(f"  {c:<10} {led.seconds[c]:>10.3f} {led.joules[c]:>10.4f} {share:>7.1%}")
    lines.append(f"  {'total':<10} {led.end - led.start:>10.3f} {total:>10.4f} {1:>7.0%}")
    lines.append(f"  {led.promotions} promotion(s), {led.transfers} transfer(s), {led.bytes_up:,} B up, "
                 f"{led.bytes_down:,} B down")
    return "\n".join(lines)


def _show_model(model, as_json: bool) -> int:
    if as_json:
        print(json.dumps(model.as_dict(), indent=2, ensure_ascii=False))
        return 0
    print(model.title)
    d = model.as_dict()
    for key, value in d.items():
        if key in ("sources", "name", "title"):
            continue
        print(f"  {key}: {value}")
        if key in d["sources"]:
            print(f"      source: {d['sources'][key]}")
        if key == "tail":
            for i in range(len(value)):
                if f"tail[{i}]" in d["sources"]:
                    print(f"      tail[{i}] source: {d['sources'][f'tail[{i}]']}")
    return 0


def _pcap(args, model) -> int:
    from mailstudy.energy.ledger import ledger
    from mailstudy.energy.pcap import client_timelines

    timelines, analysis = client_timelines(args.file, ports=args.ports, all_tcp=args.all_tcp)
    out = []
    for tl in timelines:
        led = ledger(model, tl.activities)
        out.append((tl, led))
    if args.plot and out:
        from mailstudy.faces.radio import save_radio_figure

        tl, led = out[0]
        first = None if analysis is None else next(s for s in analysis.sessions if s.index == tl.sessions[0])
        save_radio_figure(led, args.plot, session=first,
                          title=f"{model.name}: client {tl.address}, {led.total_j:.3g} J "
                                f"(tail {led.tail_share:.0%})")
    if args.json:
        print(json.dumps({"file": str(args.file), "radio": model.name, "title": model.title,
                          "clients": [{"address": tl.address, "sessions": len(tl.sessions), "packets": tl.packets,
                                       "servers": tl.servers, "overlapping": tl.overlapping, "note": tl.note(),
                                       **led.as_row()} for tl, led in out]}))
        return 0
    what = "TCP connection(s)" if analysis is None else "mail session(s)"
    print(f"{args.file}: {sum(len(tl.sessions) for tl, _ in out)} {what} from {len(out)} client address(es); "
          f"radio {model.title}")
    if not out:
        print("no IMAP/POP3 session found: nothing to charge (see `mailstudy analyze --port`, or --all-tcp)")
    for tl, led in out:
        print(f"\nclient {tl.address}: {len(tl.sessions)} {what} to {', '.join(tl.servers)}, "
              f"{tl.packets} packets")
        if tl.note():
            print(f"  note: {tl.note()}")
        print(format_ledger(led))
    if args.plot and out:
        print(f"\nplot: {args.plot}", file=sys.stderr)
    return 0


def _session(args, model) -> int:
    from mailstudy.cli.session import link_profile
    from mailstudy.energy.timeline import session_ledger
    from mailstudy.study.experiment import Experiment, run_experiment

    from mailstudy.cli.errors import fail

    try:  # the experiment's and the profile's own checks raise ValueError with a one-line message
        exp = Experiment(server=args.server, protocol=args.protocol, strategy=args.strategy,
                         messages=args.messages, seed=args.seed, read_fraction=args.read_fraction or 0.0,
                         profile=link_profile(args))
    except ValueError as exc:
        return fail(str(exc))
    results: list = []
    (row,) = run_experiment(exp, results=results)
    result = results[0]
    led = session_ledger(result, model)
    if args.plot:
        from mailstudy.faces.radio import save_radio_figure

        save_radio_figure(led, args.plot, session=result,
                          title=f"{model.name}: one {args.protocol} {args.strategy} session on "
                                f"{row.get('profile')}, {led.total_j:.3g} J (tail {led.tail_share:.0%})")
    if args.json:
        print(json.dumps({"radio": model.name, "title": model.title, "profile": row.get("profile"),
                          "protocol": args.protocol, "strategy": args.strategy, "messages": args.messages,
                          "duration_s": row.get("duration_s"), **led.as_row()}, default=str))
        return 0
    print(f"one {args.protocol} {args.strategy} session, {args.messages} messages, link {row.get('profile')}: "
          f"{row.get('duration_s'):.3f} s; radio {model.title}")
    print(format_ledger(led))
    return 0


def _fleet(args, model) -> int:
    from mailstudy.energy.day import fleet_energy_rows
    from mailstudy.study.fleet import FleetCell

    from mailstudy.cli.errors import fail

    try:  # the fleet's own checks raise ValueError with a one-line message
        cell = FleetCell(server=args.server, devices=args.devices, clients=tuple(args.client or ["thunderbird"]),
                         hours=args.hours, rate=args.rate, poll_s=args.poll,
                         read_fraction=args.read_fraction if args.read_fraction is not None else 0.5,
                         seed=args.seed, idle=args.idle)
    except ValueError as exc:
        return fail(str(exc))
    rows = fleet_energy_rows(cell, [model])
    if args.json:
        print(json.dumps({"radio": model.name, "title": model.title, "hours": args.hours, "rate": args.rate,
                          "devices": [{k: r.get(k) for k in r if not k.startswith("mailstudy")} for r in rows]},
                         default=str))
        return 0
    print(f"fleet day: {args.devices} device(s), {args.hours:g} h, {args.rate:g} messages/day, seed {args.seed}; "
          f"radio {model.title}")
    for r in rows:
        how = "IDLE" if r["uses_idle"] else f"poll every {r['poll_s'] / 60:g} min"
        stale = r["staleness_median_s"]
        print(f"\ndevice {r['device']} ({r['client']}, {how}): {r['sessions']} session(s), "
              f"{r['joules_per_day']:,.1f} J per day, tail {r['tail_share']:.0%}, staleness median "
              f"{'n/a' if stale is None else f'{stale:.0f} s'}")
        print("  over the simulated period:")
        print("\n".join("  " + line for line in _row_table(r).splitlines()))
    return 0


def _row_table(r: dict) -> str:
    total = r["total_j"]
    lines = [f"  {'state':<10} {'seconds':>10} {'joules':>10} {'share':>7}"]
    for c in CATEGORIES:
        share = r[f"{c}_j"] / total if total > 0 else 0.0
        lines.append(f"  {c:<10} {r[f'{c}_s']:>10.1f} {r[f'{c}_j']:>10.2f} {share:>7.1%}")
    lines.append(f"  {'total':<10} {r['end_s'] - r['start_s']:>10.1f} {total:>10.2f} {1:>7.0%}")
    return "\n".join(lines)


def run(args) -> int:
    from mailstudy.cli.errors import fail
    from mailstudy.outputs import check_output

    model = _model(args)
    if args.show_model:
        return _show_model(model, args.json)
    if args.session + args.fleet + bool(args.file) != 1:
        return fail("give a capture FILE.pcap, or --session (one live session), or --fleet (a fleet day): one of them")
    if args.fleet:
        if args.plot:
            return fail("--plot draws one session under its ladder: give a FILE.pcap or --session")
        return _fleet(args, model)
    if args.plot:
        check_output(args.plot, inputs=(args.file,) if args.file else (), what="plot")
    return _session(args, model) if args.session else _pcap(args, model)
