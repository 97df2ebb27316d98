"""``mailstudy calibrate``: run the real mail clients and the profiles that claim to be them, print how they differ.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`); the work is
:mod:`mailstudy.study.calibrate`'s. The table (a CSV, written whole or not at all) goes into ``data/results/``
unless ``--out`` names another file, so a reader of the study sees how faithful each profile is.
"""

from __future__ import annotations

import json
import sys

from mailstudy.cli.values import count, seconds, seed


def _clients(text: str) -> list[str]:
    import argparse

    from mailstudy.live.real_clients import REAL_CLIENTS

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in REAL_CLIENTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown client {', '.join(unknown) or repr(text)}; choose from "
                                         f"{', '.join(REAL_CLIENTS)}")
    return names


def _repeats(text: str) -> int:
    import argparse

    n = count(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return n


def add_parser(sub) -> None:
    from mailstudy.live.real_clients import DEFAULT_TIMEOUT_S, REAL_CLIENTS

    p = sub.add_parser("calibrate", help="run the real clients beside their profiles and score each profile",
                       description="Run each real mail client installed here (Debian packages neomutt + tmux, "
                                   "mpop, getmail6, offlineimap3, isync, fetchmail) and the client profile that "
                                   "claims to be it against the same server and seeded mailbox, on a first sync "
                                   "and a sync with nothing new; capture both (tcpdump, as root) and print a table "
                                   "per client: commands by verb, round trips, bytes each way, and the verdict "
                                   "(agrees: same commands by verb, round trips within 1, bytes within 3 %%). "
                                   "A missing client is skipped with the reason; a hung one is killed.")
    p.add_argument("--clients", type=_clients, metavar="NAME[,NAME...]",
                   help=f"which real clients (default: all: {', '.join(REAL_CLIENTS)})")
    p.add_argument("--server", choices=["dovecot", "embedded"], default="dovecot",
                   help="the server both sides talk to (dovecot: the reference)")
    p.add_argument("--messages", type=count, default=30, metavar="N", help="messages in the seeded mailbox (30)")
    p.add_argument("--seed", type=seed, default=0, help="the mailbox's seed (0)")
    p.add_argument("--timeout", type=seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"kill a real client that has not finished after this long ({DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--repeats", type=_repeats, default=1, metavar="N",
                   help="run each side N times on fresh servers; round trips and bytes are the median (1)")
    p.add_argument("--captures", metavar="DIR",
                   help="keep every capture in DIR as CLIENT-SIDE-REPEAT-PHASE.pcap (default: not kept)")
    p.add_argument("--out", metavar="FILE.csv",
                   help="where the table goes (default: data/results/calibrate-SERVER.csv under the project root)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON, one object per line")
    p.set_defaults(func=run)


def run(args) -> int:
    from mailstudy.capture import CaptureError, choose_backend
    from mailstudy.outputs import check_output, data_dir
    from mailstudy.study.calibrate import calibrate, format_tables, write_rows

    if args.out:
        out = check_output(args.out, what="calibration table")
    else:
        folder = data_dir("results")
        folder.mkdir(parents=True, exist_ok=True)
        out = check_output(folder / f"calibrate-{args.server}.csv", what="calibration table")
    if args.captures:
        from pathlib import Path

        from mailstudy.outputs import OutputError

        captures = Path(args.captures)
        if captures.exists() and not captures.is_dir():
            raise OutputError(f"--captures {captures} is not a folder")
        captures.mkdir(parents=True, exist_ok=True)
    backend, why = choose_backend("auto")
    if backend == "rebuilt":
        raise CaptureError(f"calibrate captures real clients, which needs tcpdump or scapy: {why}")
    if args.server == "dovecot":
        from mailstudy.servers.dovecot import dovecot_available

        missing = dovecot_available()
        if missing is not None:
            from mailstudy.servers import ServerError

            raise ServerError(f"{missing} (or use --server embedded)")

    def progress(name: str) -> None:
        print(f"calibrate: {name} ...", file=sys.stderr, flush=True)

    rows = calibrate(args.clients, args.server, messages=args.messages, seed=args.seed, timeout=args.timeout,
                     repeats=args.repeats, captures=args.captures or None, progress=progress)
    write_rows(rows, out)
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str))
    else:
        print(format_tables(rows))
    print(f"calibrate: table written to {out}", file=sys.stderr)
    return 0
