"""``mailstudy redact IN OUT``: write a copy of a capture with every IMAP/POP3 credential overwritten.

Why a module of its own: the command line's face of :mod:`mailstudy.offline.redact` (which holds all the logic), kept
apart so that ``cli.py`` only wires it in with ``add_parser(subparsers)`` and ``run(args)``. Errors are one line
(``mailstudy: error: ...``, exit 2), never a traceback.
"""

from __future__ import annotations

import argparse
import json

from mailstudy.cli.errors import fail


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "redact", help="copy a capture with IMAP/POP3 credentials overwritten (same length, same packets)",
        description="Overwrite IMAP LOGIN/AUTHENTICATE and POP3 USER/PASS/APOP/AUTH credentials (and their SASL "
                    "lines) in a pcap or pcapng file with same-length filler, retransmissions included; every "
                    "other byte, timestamp and record header stays as it was, TCP checksums of the changed "
                    "segments are recomputed. A JSON sidecar IN.json is copied to OUT.json with the redaction "
                    "noted.")
    p.add_argument("input", metavar="IN", help="capture to read (pcap or pcapng); never modified")
    p.add_argument("output", metavar="OUT", help="redacted capture to write (must differ from IN)")
    p.add_argument("--force", action="store_true", help="overwrite OUT (and OUT.json) when they exist")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)
    return p




def run(args: argparse.Namespace) -> int:
    from mailstudy.offline.redact import RedactError, redact_pcap
    from mailstudy.outputs import OutputError, check_output, sidecar_path

    try:
        # before reading anything: never over a device, a FIFO, the input or its sidecar, nor silently over
        # an earlier result
        check_output(args.output, inputs=(args.input,), force=args.force,
                     sidecar=sidecar_path(args.input).exists())
        report = redact_pcap(args.input, args.output)
    except (RedactError, OutputError) as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"cannot write {args.output}: {e.strerror or e}")
    sessions = [s for s in report.sessions if s.credentials]
    if getattr(args, "json", False):
        doc = {
            "input": report.input, "output": report.output, "sidecar": report.sidecar,
            "mail_sessions": report.mail_sessions, "sessions_with_credentials": len(sessions),
            "kinds": report.kinds, "fields": report.fields, "bytes": report.bytes,
            "bytes_overwritten": report.bytes_overwritten, "packets": report.packets,
            "checksums_fixed": report.checksums_fixed, "checksums_incremental": report.checksums_incremental,
            "sessions": [{"index": s.index, "protocol": s.protocol, "client": list(s.client),
                          "server": list(s.server), "encrypted": s.encrypted,
                          "credentials": [c.kind for c in s.credentials]} for s in report.sessions],
            "warnings": report.warnings,
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(f"redacted {report.input} -> {report.output}")
    print(f"  {report.mail_sessions} IMAP/POP3 sessions scanned, {len(sessions)} with credentials")
    for kind in report.fields:
        print(f"  {kind}: {report.kinds[kind]}")
    if not report.kinds:
        print("  no credentials found: the output is a byte-identical copy")
    else:
        print(f"  {report.bytes} credential bytes; {report.bytes_overwritten} payload bytes overwritten in "
              f"{report.packets} packets (retransmissions included); their TCP checksums recomputed")
    for s in sessions:
        kinds = ", ".join(c.kind for c in s.credentials)
        print(f"  session {s.index} {s.protocol} {s.client[0]}:{s.client[1]} -> {s.server[0]}:{s.server[1]}: "
              f"{kinds}")
    for s in report.sessions:
        if s.encrypted:
            print(f"  session {s.index} {s.protocol}: encrypted (TLS/COMPRESS); nothing readable after the switch")
    if report.sidecar:
        print(f"  sidecar: {report.sidecar}")
    for w in report.warnings:
        print(f"  warning: {w}")
    return 0
