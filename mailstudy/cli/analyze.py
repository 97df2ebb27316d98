"""``mailstudy analyze FILE|DIR|GLOB ...``: show the IMAP/POP3 sessions of captures, one line each, or as JSON,
and write them to Parquet with ``--out x.parquet``.

Why a module of its own: the command line (``mailstudy/cli.py``) wires sub-commands; this one only asks
:mod:`mailstudy.offline.batch` (which streams each file through :class:`mailstudy.offline.analyze.SessionStream`)
and shows what it found, so a student can point it at any pcap and a script can read ``--json``. Several files
(a folder, a glob: compressed or not) are analyzed in parallel, one process per file (``--jobs``), or on a Dask
cluster (``--scheduler``). A file that cannot be read is a one-line error (never a traceback): the other files
are still analyzed and written, and the exit status is 2. A file with no mail session in it is a valid answer
(exit 0, zero sessions).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from mailstudy.cli.errors import fail
from mailstudy.errors import MailstudyError
from mailstudy.cli.values import port

EXIT_OK = 0
EXIT_UNREADABLE = 2


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``analyze`` sub-command to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "analyze", help="find the IMAP/POP3 sessions in a pcap and show what each cost",
        description="Read pcap or pcapng files (also .gz, .zst or .xz compressed; a folder or a glob of them "
                    "in parallel), rebuild every TCP stream and show each IMAP/POP3 session: "
                    "bytes each way, packets, commands, round trips, duration, encryption and warnings. "
                    "Ports 143/993 are IMAP and 110/995 POP3; other ports count when the server greets first "
                    "with '* OK' (IMAP) or '+OK' (POP3).")
    p.add_argument("inputs", nargs="+", metavar="FILE|DIR|GLOB",
                   help="captures (pcap or pcapng, also .gz/.zst/.xz compressed), folders of them, or glob "
                        "patterns")
    p.add_argument("--port", dest="ports", type=port, action="append", default=[], metavar="P",
                   help="also treat server port P as mail; its protocol is told by the greeting (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--exchanges", action="store_true",
                   help="also show every exchange (command, status, timing, bytes); credentials redacted")
    p.add_argument("--out", metavar="FILE.parquet",
                   help="also write one row per session to FILE.parquet and one row per exchange to "
                        "FILE.exchanges.parquet (both with the capture's file name and tcp.stream)")
    p.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="files analyzed at once, one process each (default: one per CPU, at most one per file)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="analyze the files on a Dask cluster (tcp://HOST:PORT) instead of local processes")
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
           "mid_stream": s.connection.mid_stream, "partial": bool(getattr(s, "partial", False)),
           "gaps": s.connection.gaps, "warnings": list(s.warnings)}
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
    import pandas as pd

    headers = ["#", "idx", "tag", "command", "arguments", "status", "sent s", "latency s", "bytes up",
               "bytes down"]
    rows = []
    frames = [s.exchanges_frame() for s in analysis.sessions if s.exchanges]
    if not frames:
        return _table(headers, [], right={0, 1, 6, 7, 8, 9})
    frame = pd.concat(frames, ignore_index=True)

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
    n = len(analysis.sessions)
    print(f"{analysis.path}: {analysis.packets:,} packets ({analysis.tcp_packets:,} TCP), "
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


def _file_record(r, want_exchanges: bool) -> dict:
    return {"file": r.path, "packets": r.packets, "tcp_packets": r.tcp_packets, "connections": r.connections,
            "sessions": [session_record(s, want_exchanges) for s in r.sessions], "warnings": list(r.warnings)}


def _executor(args, n_files: int):
    """Where the files run: a Dask cluster (--scheduler), local processes (several files), or here (None).
    Returns ``(executor, close)``."""
    if getattr(args, "scheduler", None):
        try:
            from dask.distributed import Client
        except ImportError:
            raise MailstudyError("--scheduler needs Dask: pip install 'mailstudy[dask]'") from None
        try:
            client = Client(args.scheduler, timeout=10)
        except OSError as exc:
            raise MailstudyError(f"cannot reach the Dask scheduler at {args.scheduler}: {exc}") from None
        return client.get_executor(), client.close
    jobs = getattr(args, "jobs", 0) or (os.cpu_count() or 1)
    jobs = min(jobs, n_files)
    if jobs <= 1:
        return None, lambda: None
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=jobs)
    return pool, pool.shutdown


def run(args) -> int:
    """Run ``analyze`` with parsed ``args`` (inputs, ports, json, exchanges, out, jobs, scheduler); returns the
    exit code."""
    import gc

    from mailstudy.offline.batch import analyze_files, expand, merge_parts

    inputs = getattr(args, "inputs", None) or [args.file]
    ports = getattr(args, "ports", None) or []
    want_exchanges = getattr(args, "exchanges", False)
    out = getattr(args, "out", None)
    try:
        paths = expand(inputs)
        if out and os.path.isdir(out):
            return fail(f"--out {out} is a folder; give a file name ending in .parquet")
        if out and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
            return fail(f"--out {out}: its folder does not exist")
        parts = ([os.path.join(os.path.dirname(os.path.abspath(out)), f".{os.path.basename(out)}.{os.getpid()}.{i}.part")
                  for i in range(len(paths))] if out else None)
        executor, close = _executor(args, len(paths)) if len(paths) > 1 else (None, lambda: None)
        gc.disable()  # one-shot process: no reference cycles are made, and collections cost ~10%; restored below
        try:
            results = list(analyze_files(paths, ports, executor, parts, keep_exchanges=want_exchanges))
        finally:
            gc.enable()
            close()
        if out:
            merge_parts([r.part for r in results if r.part], out)
    except MailstudyError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot analyze: {exc.strerror or exc}")
    except MemoryError:
        return fail("not enough memory to analyze these captures")
    errors = [r.error for r in results if r.error]
    good = [r for r in results if not r.error]
    try:
        if getattr(args, "json", False):
            if len(paths) == 1 and good:
                print(json.dumps(_file_record(good[0], want_exchanges), default=str))
            elif len(paths) > 1:
                print(json.dumps({"files": [_file_record(r, want_exchanges) for r in good],
                                  "errors": errors}, default=str))
        else:
            for k, r in enumerate(good):
                if k:
                    print()
                _print_text(r, want_exchanges)
            if out and good:
                print(f"\nwrote {sum(len(r.sessions) for r in good):,} sessions to {out}")
    except BrokenPipeError:  # `mailstudy analyze f | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
    for e in errors:
        fail(e)
    return EXIT_UNREADABLE if errors else EXIT_OK
