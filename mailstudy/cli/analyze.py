"""``mailstudy analyze FILE``: show the IMAP/POP3 sessions of a capture, one line each, or as one JSON object.

Why a module of its own: the command line (``mailstudy/cli.py``) wires sub-commands; this one only asks
:func:`mailstudy.offline.analyze.analyze_pcap` and shows what it found, so a student can point it at any pcap and a script
can read ``--json``. A file that cannot be read is a one-line error and exit 2 (never a traceback); a file with
no mail session in it is a valid answer (exit 0, zero sessions).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from mailstudy.cli.errors import fail
from mailstudy.cli.values import port

EXIT_OK = 0
EXIT_UNREADABLE = 2


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``analyze`` sub-command to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "analyze", help="find the IMAP/POP3 sessions in a pcap and show what each cost",
        description="Read a pcap or pcapng file, rebuild every TCP stream and show each IMAP/POP3 session: "
                    "bytes each way, packets, commands, round trips, duration, encryption and warnings. "
                    "Ports 143/993 are IMAP and 110/995 POP3; other ports count when the server greets first "
                    "with '* OK' (IMAP) or '+OK' (POP3).")
    p.add_argument("file", metavar="FILE", help="the capture (pcap or pcapng)")
    p.add_argument("--port", dest="ports", type=port, action="append", default=[], metavar="P",
                   help="also treat server port P as mail; its protocol is told by the greeting (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--exchanges", action="store_true",
                   help="also show every exchange (command, status, timing, bytes); credentials redacted")
    p.set_defaults(func=run)
    return p




def _clean(v):
    """JSON-safe: NaN becomes null, numpy scalars become Python numbers."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def session_record(s, exchanges: bool = False) -> dict:
    """One session as a plain dict (what ``--json`` prints)."""
    rec = {"session": s.index, "stream": s.connection.index, **{k: _clean(v) for k, v in s.metrics.items()},
           "mid_stream": s.connection.mid_stream, "gaps": s.connection.gaps, "warnings": list(s.warnings)}
    if exchanges:
        frame = s.exchanges_frame()
        rec["exchanges"] = [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict("records")]
    return rec


def _fmt_bytes(n: int) -> str:
    return f"{n:,}"


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def sessions_table(analysis) -> str:
    headers = ["#", "client", "server", "proto", "bytes up", "bytes down", "packets", "commands", "round trips",
               "duration s", "encrypted", "warnings"]
    rows = []
    for s in analysis.sessions:
        m = s.metrics
        rows.append([str(s.index), m["client"], m["server"], m["protocol"], _fmt_bytes(m["bytes_up"]),
                     _fmt_bytes(m["bytes_down"]), str(m["packets"]), str(m["commands"]), str(m["round_trips"]),
                     f"{m['duration_s']:.6f}", "yes" if m["encrypted"] else "no", str(len(s.warnings))])
    return _table(headers, rows, right={0, 4, 5, 6, 7, 8, 9, 11})


def exchanges_table(analysis) -> str:
    headers = ["#", "idx", "tag", "command", "arguments", "status", "sent s", "latency s", "bytes up",
               "bytes down"]
    rows = []
    frame = analysis.exchanges_frame()

    def missing(v) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    def secs(v) -> str:
        return "-" if missing(v) else f"{v:.6f}"

    def text(v, none: str = "") -> str:
        return none if missing(v) else str(v)

    for r in frame.to_dict("records"):
        args = text(r["arguments"])
        if len(args) > 40:
            args = args[:37] + "..."
        rows.append([str(r["session"]), str(r["index"]), text(r["tag"]), text(r["command"]), args,
                     text(r["status"], "-"),
                     secs(r["t_sent_s"]), secs(r["latency_s"]), _fmt_bytes(r["bytes_up"]),
                     _fmt_bytes(r["bytes_down"])])
    return _table(headers, rows, right={0, 1, 6, 7, 8, 9})


def _print_text(analysis, exchanges: bool) -> None:
    st = analysis.stats
    n = len(analysis.sessions)
    print(f"{analysis.path}: {st.packets_total:,} packets ({st.tcp_packets:,} TCP), "
          f"{analysis.connections:,} TCP connections, {n} mail session{'s' if n != 1 else ''}")
    if n:
        print()
        print(sessions_table(analysis))
    if exchanges and n:
        print()
        print(exchanges_table(analysis))
    notes = [(f"session {s.index}", w) for s in analysis.sessions for w in s.warnings]
    notes += [("file", w) for w in analysis.warnings]
    if notes:
        print()
        print("warnings:")
        for where, w in notes:
            print(f"  {where}: {w}")


def run(args) -> int:
    """Run ``analyze`` with parsed ``args`` (file, ports, json, exchanges); returns the exit code."""
    from mailstudy.net.pcap import PcapError
    from mailstudy.offline.analyze import analyze_pcap

    path = args.file
    ports = getattr(args, "ports", None) or []
    want_exchanges = getattr(args, "exchanges", False)
    try:
        if os.path.isdir(path):
            return fail(f"{path} is a folder, not a capture file")
        # one-shot process: pausing the garbage collector saves ~20% and is restored after the call
        analysis = analyze_pcap(path, ports=ports, pause_gc=True)
    except PcapError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot read {path}: {exc.strerror or exc}")
    except MemoryError:
        return fail(f"{path}: not enough memory to analyze this capture")
    except Exception as exc:  # noqa: BLE001 - a user never sees a traceback; the message names the bug
        return fail(f"cannot analyze {path}: internal error {type(exc).__name__}: {exc}")
    try:
        if getattr(args, "json", False):
            out = {"file": path,
                   "packets": analysis.stats.packets_total,
                   "tcp_packets": analysis.stats.tcp_packets,
                   "connections": analysis.connections,
                   "sessions": [session_record(s, want_exchanges) for s in analysis.sessions],
                   "warnings": list(analysis.warnings)}
            print(json.dumps(out, default=str))
        else:
            _print_text(analysis, want_exchanges)
    except BrokenPipeError:  # `mailstudy analyze f | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
    return EXIT_OK
