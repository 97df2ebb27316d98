"""The ``mailstudy`` command line: run a measured session, serve a mailbox, rebuild the study.

Why: a researcher or a student should get a number, a server or the whole study with one command, with
``--help`` on each and a one-line error (exit 2) instead of a traceback when something is wrong.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from . import __version__

EXIT_USAGE = 2


def _add_session(sub) -> None:
    p = sub.add_parser("session", help="run one measured IMAP or POP3 session against a local server",
                       description="Start a server with a seeded mailbox, run one session with Python's own "
                                   "imaplib/poplib, check every downloaded byte and print what it cost.")
    p.add_argument("--protocol", choices=["imap", "pop3"], default="imap")
    p.add_argument("--strategy", choices=["header-first", "download-all"], default="header-first")
    p.add_argument("--pop3-mode", choices=["keep", "delete"], default="keep",
                   help="POP3 download-all: leave mail on the server (keep) or DELE it (default: keep)")
    p.add_argument("--messages", type=int, default=200, metavar="N", help="messages in the mailbox (200)")
    p.add_argument("--sizes", default="buchner2009", metavar="PRESET",
                   help="message size preset: buchner2009, fixed-5k, lognormal (buchner2009)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="corpus and read-draw seed (0)")
    p.add_argument("--read-fraction", type=float, default=0.0, metavar="F",
                   help="share of messages the user opens after the list, header-first only (0)")
    p.add_argument("--mailbox", metavar="PATH",
                   help="deliver real mail instead of a generated corpus: an mbox file, a Maildir or a folder of "
                        ".eml files (the first N messages; --messages 0 for all)")
    p.add_argument("--server", choices=["embedded", "dovecot"], default="embedded")
    p.add_argument("--per-message", action="store_true", help="IMAP: one FETCH per message instead of one batch")
    p.add_argument("--pipelining", action="store_true",
                   help="POP3: send each run of commands as one flight; IMAP (with --per-message): all tags "
                        "in flight")
    p.add_argument("--capture", metavar="FILE.pcap",
                   help="also record the session as a pcap (with a JSON sidecar FILE.pcap.json)")
    p.add_argument("--capture-backend", choices=["auto", "tcpdump", "scapy", "rebuilt"], default="auto",
                   help="how to capture: tcpdump or scapy need root or CAP_NET_RAW; rebuilt makes the pcap from "
                        "the socket trace (auto: the first that may run here, and says why)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="run a server with a generated mailbox until Ctrl-C",
                       description="Start a server on 127.0.0.1 with a seeded mailbox and print how to reach it, "
                                   "so you can point telnet, curl or a mail client at it.")
    p.add_argument("--server", choices=["embedded", "dovecot"], default="embedded")
    p.add_argument("--messages", type=int, default=20, metavar="N", help="messages in the mailbox (20)")
    p.add_argument("--sizes", default="buchner2009", metavar="PRESET")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--mailbox", metavar="PATH", help="serve real mail (mbox, Maildir or .eml folder) instead")
    p.add_argument("--imap-port", type=int, default=None, metavar="P", help="IMAP port (default: a free one)")
    p.add_argument("--pop3-port", type=int, default=None, metavar="P", help="POP3 port (default: a free one)")


def _add_study(sub) -> None:
    p = sub.add_parser("study", help="rebuild the study: execute every notebook into build/ (with HTML)",
                       description="Execute notebooks/NN-*.ipynb with papermill into build/, writing tables "
                                   "under data/results/ and charts under data/figures/.")
    p.add_argument("--quick", action="store_true", help="small parameters (what the tests use)")
    p.add_argument("--only", action="append", metavar="NAME", help="run only notebooks whose name contains NAME")
    p.add_argument("--build", default="build", metavar="DIR", help="output folder (build)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailstudy", description="Measure what IMAP and POP3 really cost.")
    parser.add_argument("--version", action="version", version=f"mailstudy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_session(sub)
    _add_serve(sub)
    _add_study(sub)
    # pcap work lives in its own small modules, each with add_parser() and run()
    from . import cli_analyze, cli_redact, cli_replay

    for module in (cli_analyze, cli_redact, cli_replay):
        module.add_parser(sub)
    return parser


def _pcap_command(name: str):
    import importlib

    return importlib.import_module(f".cli_{name}", __package__).run


def _fail(message: str) -> int:
    print(f"mailstudy: error: {message}", file=sys.stderr)
    return EXIT_USAGE


SESSION_KEYS = ("protocol", "strategy", "pop3_mode", "server", "server_version", "messages", "sizes", "seed",
                "read_fraction", "batch", "pipelining", "mailbox_bytes", "bytes_up", "bytes_down", "commands",
                "round_trips", "duration_s", "time_to_list_s", "headers_fetched", "bodies_fetched",
                "integrity_ok")
CAPTURE_KEYS = ("capture_path", "capture_backend", "capture_complete", "capture_rebuilt")


def format_table(row: dict, keys=SESSION_KEYS) -> str:
    """A two-column table a person reads at a glance."""
    width = max(len(k) for k in keys)
    lines = []
    for k in keys:
        v = row.get(k)
        if isinstance(v, float):
            v = f"{v:.6f}" if k.endswith("_s") else f"{v:g}"
        elif isinstance(v, int) and not isinstance(v, bool) and k.startswith("bytes"):
            v = f"{v:,}"
        lines.append(f"{k.ljust(width)}  {v}")
    return "\n".join(lines)


def cmd_session(args) -> int:
    from .experiment import Experiment, run_experiment

    try:
        exp = Experiment(server=args.server, protocol=args.protocol, strategy=args.strategy,
                         pop3_mode=args.pop3_mode, messages=args.messages, sizes=args.sizes, seed=args.seed,
                         read_fraction=args.read_fraction, batch=not args.per_message,
                         pipelining=args.pipelining, mailbox=args.mailbox)
    except ValueError as exc:
        return _fail(str(exc))
    if args.capture:
        from .experiment import run_captured_session

        row, report = run_captured_session(exp, args.capture, backend=args.capture_backend)
        state = "complete" if report.complete else "INCOMPLETE: " + "; ".join(report.warnings)
        print(f"capture: {report.path} ({report.backend}: {report.reason}; {report.packets} packets, {state})",
              file=sys.stderr)
    else:
        row = run_experiment(exp)[0]
    if args.json:
        print(json.dumps({k: row.get(k) for k in row}, default=str))
    else:
        print(format_table(row, SESSION_KEYS + (CAPTURE_KEYS if args.capture else ())))
    return 0


def cmd_serve(args) -> int:
    from .corpus import generate, load
    from .servers.base import make_server

    corpus = load(args.mailbox) if args.mailbox else generate(args.messages, args.sizes, args.seed)
    server = make_server(args.server, imap_port=args.imap_port, pop3_port=args.pop3_port)
    server.mailboxes[server.account.user] = corpus.raws()
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    with server:
        a = server.account
        origin = args.mailbox or f"{args.sizes}, seed {args.seed}"
        print(f"{server.name} {server.version} is serving {len(corpus)} messages "
              f"({corpus.total_bytes:,} bytes, {origin})")
        print(f"  host      {server.host}")
        print(f"  IMAP      {server.host}:{server.imap_port}   try: telnet {server.host} {server.imap_port}")
        print(f"  POP3      {server.host}:{server.pop3_port}   try: curl -v pop3://{server.host}:{server.pop3_port}/ "
              f"-u {a.user}:{a.password}")
        print(f"  user      {a.user}")
        print(f"  password  {a.password}")
        print("Ctrl-C stops it.", flush=True)
        try:
            while not stop["now"]:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    print("stopped.")
    return 0


def cmd_study(args) -> int:
    from pathlib import Path

    from .study import run_notebooks

    done = run_notebooks(quick=args.quick, build=Path(args.build), only=args.only)
    if not done:
        return _fail("no notebook matched (looked for notebooks/NN-*.ipynb)")
    for nb in done:
        print(f"executed {nb} (+ {nb.with_suffix('.html').name})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    from .access import IntegrityError, SessionError
    from .corpus import CorpusError
    from .capture import CaptureError
    from .servers.base import ServerError

    try:
        handlers = {"session": cmd_session, "serve": cmd_serve, "study": cmd_study}
        handler = handlers.get(args.command) or _pcap_command(args.command)
        return handler(args)
    except (ServerError, SessionError, CorpusError, CaptureError) as exc:
        return _fail(str(exc))
    except IntegrityError as exc:
        print(f"mailstudy: integrity check failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
