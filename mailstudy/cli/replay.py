"""``mailstudy replay FILE.pcap``: replay each captured mail session on a fresh local server and compare.

Why a module of its own: the command line stays a thin face over :mod:`mailstudy.offline.replay` (which holds all the
logic); the lead wires it into ``mailstudy.cli`` with :func:`add_parser` and :func:`run`. Errors a user can fix
(unreadable file, no mail session, no such session, a server that cannot start) are one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys

from mailstudy.cli.errors import fail
from mailstudy.cli.values import ranged, seconds

EXIT_FAILED = 1  # the file was understood, but a session could not be replayed (it says why)
ROWS = ("bytes_up", "bytes_down", "commands", "round_trips", "duration_s", "exchanges_failed")


def add_parser(subparsers) -> None:
    """Add the ``replay`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "replay", help="replay a capture's IMAP/POP3 sessions on a fresh local server and compare",
        description="Rebuild the mailbox each session in the capture carries, start a fresh server with it, "
                    "send the client's bytes again in the same flights (credentials and UIDs mapped to the new "
                    "server) and show the replay's bytes, commands, round trips and duration beside the "
                    "original's. Encrypted sessions cannot be replayed.")
    p.add_argument("file", metavar="FILE.pcap", help="a pcap or pcapng capture")
    p.add_argument("--server", choices=["embedded", "dovecot"], default="embedded",
                   help="the server to replay on (embedded)")
    p.add_argument("--session", type=ranged("session", int), default=None, metavar="N",
                   help="replay only mail session N (0-based, as `mailstudy analyze` numbers them)")
    p.add_argument("--timeout", type=seconds, default=10.0, metavar="S",
                   help="seconds to wait for the server's reply to each flight (10)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=run)


def _fmt(key: str, v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6f}"
    if isinstance(v, int) and key.startswith("bytes"):
        return f"{v:,}"
    return str(v)


def format_session(s: dict) -> str:
    """One session as a small table: metric, original, replayed."""
    head = f"session {s['index']} ({s['protocol']}) replayed on {s['server']}"
    lines = [head]
    if s.get("replayed") is None:
        lines.append("  not replayed")
    else:
        lines.append(f"  {s['messages']} messages in the rebuilt mailbox ({s['placeholders']} placeholders); "
                     f"{s['messages_matched']} of {s['messages_checked']} fetched whole came back byte-exact")
        w = max(len(k) for k in ROWS)
        lines.append(f"  {'metric'.ljust(w)}  {'original':>14}  {'replayed':>14}")
        for k in ROWS:
            lines.append(f"  {k.ljust(w)}  {_fmt(k, s['original'].get(k)):>14}  "
                         f"{_fmt(k, s['replayed'].get(k)):>14}")
    for warning in s.get("warnings", []):
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)




def run(args) -> int:
    """Run ``mailstudy replay`` for parsed ``args``; returns the exit status."""
    from mailstudy.net.pcap import PcapError
    from mailstudy.offline.replay import ReplayError, replay_pcap
    from mailstudy.servers.base import ServerError

    try:
        report = replay_pcap(args.file, server=args.server, session=args.session, timeout=args.timeout)
    except (PcapError, ReplayError, ServerError) as exc:
        return fail(" ".join(str(exc).split()))
    except OSError as exc:
        return fail(f"{args.file}: {exc.strerror or exc}")
    data = report.to_dict()
    if args.json:
        print(json.dumps(data))
    else:
        print(f"{data['file']}: {len(data['sessions'])} mail session(s)")
        for s in data["sessions"]:
            print(format_session(s))
    failed = [s["index"] for s in data["sessions"] if s.get("failed")]
    if failed:
        print(f"mailstudy: the replay of session(s) {', '.join(map(str, failed))} failed", file=sys.stderr)
        return EXIT_FAILED
    return 0
