"""``mailstudy session``: run one measured IMAP or POP3 session against a local server and print what it cost.

Why a module of its own: each subcommand is one small module with ``add_parser(sub)`` and ``run(args)``;
:mod:`mailstudy.cli.commands` lists them and dispatches through ``args.func``. Flags that do not apply to the
chosen protocol, strategy or mailbox are warned about and shown as not applicable (JSON null, ``n/a``), never
echoed as if they had been used; options that would do nothing at all (any strategy, link or capture option with
``--client``, ``--capture-backend`` or ``--force`` without ``--capture``) are an error that names them.
"""

from __future__ import annotations

import json
import sys

from mailstudy.cli.errors import fail
from mailstudy.cli.values import bandwidth, count, fraction, gigabytes, jitter, preview, rtt, seed
from mailstudy.servers import SERVER_KINDS
from mailstudy.wire import METRIC_KEYS


def add_parser(sub) -> None:
    p = sub.add_parser("session", help="run one measured IMAP or POP3 session against a local server",
                       description="Start a server with a seeded mailbox, run one session with Python's own "
                                   "imaplib/poplib, check every downloaded byte and print what it cost.")
    p.add_argument("--protocol", choices=["imap", "pop3", "jmap"], default="imap",
                   help="imap, pop3, or jmap (served by --server cyrus)")
    p.add_argument("--strategy", choices=["header-first", "download-all"], default="header-first")
    p.add_argument("--pop3-mode", choices=["keep", "delete"], default=None,
                   help="POP3 download-all: leave mail on the server (keep) or DELE it (default: keep)")
    p.add_argument("--messages", type=count, default=200, metavar="N", help="messages in the mailbox (200)")
    p.add_argument("--sizes", default=None, metavar="PRESET",
                   help="message size preset: buchner2009, fixed-5k, lognormal (buchner2009)")
    p.add_argument("--seed", type=seed, default=0, metavar="S", help="corpus and read-draw seed (0)")
    p.add_argument("--read-fraction", type=fraction, default=None, metavar="F",
                   help="share of messages the user opens after the list, header-first only (0)")
    p.add_argument("--mailbox", metavar="PATH",
                   help="deliver real mail instead of a generated corpus: an mbox file, a Maildir or a folder of "
                        ".eml files (the first N messages; --messages 0 for all)")
    p.add_argument("--max-mailbox-gb", type=gigabytes, default=None, metavar="GB",
                   help="refuse a generated mailbox estimated above GB gigabytes (2.1)")
    p.add_argument("--server", choices=SERVER_KINDS, default="embedded")
    p.add_argument("--per-message", action="store_true", help="IMAP: one FETCH per message instead of one batch")
    p.add_argument("--pipelining", action="store_true",
                   help="POP3: send each run of commands as one flight; IMAP (with --per-message): all tags "
                        "in flight")
    p.add_argument("--preview", type=preview, default=0, metavar="N",
                   help="header-first: open each message as a preview of its first N bytes (IMAP "
                        "BODY.PEEK[TEXT]<0.N>, POP3 TOP n k with k = ceil(N/78) lines) instead of whole")
    p.add_argument("--tls", choices=["none", "implicit", "starttls"], default="none",
                   help="TLS: none (clear text, the control), implicit (IMAPS/POP3S: TLS from the first byte) or "
                        "starttls (STARTTLS/STLS on the usual port); the server gets a fresh self-signed "
                        "certificate, which the client verifies (none)")
    p.add_argument("--tls-version", choices=["1.2", "1.3"], default="1.3",
                   help="with --tls: the one TLS version the client accepts (1.3)")
    p.add_argument("--compress", action="store_true",
                   help="IMAP: the server offers COMPRESS=DEFLATE (RFC 4978) and the client asks for it after "
                        "login; the row counts the protocol's bytes and the deflated ones (compressed_bytes_*); "
                        "a server that does not offer it gives an uncompressed session and a warning; with "
                        "--client the server offers it and the profile asks if its client does (thunderbird, "
                        "neomutt)")
    add_link_arguments(p)
    p.add_argument("--capture", metavar="FILE.pcap",
                   help="also record the session as a pcap (with a JSON sidecar FILE.pcap.json)")
    p.add_argument("--capture-backend", choices=["auto", "tcpdump", "scapy", "rebuilt"], default="auto",
                   help="how to capture: tcpdump or scapy need root or CAP_NET_RAW; rebuilt makes the pcap from "
                        "the socket trace (auto: the first that may run here, and says why)")
    p.add_argument("--force", action="store_true", help="with --capture: overwrite FILE.pcap and its sidecar")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--client", metavar="NAME", help="instead: what a real client sends (thunderbird, k9, neomutt, "
                                                    "mbsync, thunderbird-pop3, ...): its first and next sync")
    p.add_argument("--exchanges", action="store_true",
                   help="also list every command and its bytes (credentials shown as ***)")
    p.set_defaults(func=run, defaults={dest: p.get_default(dest) for dest in NOT_FOR_CLIENTS})


def add_link_arguments(p) -> None:
    """The network options shared by every subcommand that runs or models sessions on a link."""
    from mailstudy.link import PROFILES

    g = p.add_argument_group("network (see `mailstudy profiles`)")
    g.add_argument("--profile", default="loopback", metavar="NAME",
                   help=f"run through an emulated link: {', '.join(PROFILES)} (loopback: no link)")
    g.add_argument("--rtt", type=rtt, metavar="T",
                   help="custom round-trip time, e.g. 80ms, 0.08s (overrides the profile's)")
    g.add_argument("--down", type=bandwidth, metavar="RATE", help="custom download bandwidth, e.g. 10mbit, 200kbit")
    g.add_argument("--up", type=bandwidth, metavar="RATE", help="custom upload bandwidth, e.g. 2mbit")
    g.add_argument("--jitter", type=jitter, metavar="T",
                   help="custom jitter (sd of the one-way delay, never reorders), e.g. 5ms")
    g.add_argument("--slow-start", action="store_true",
                   help="emulate TCP slow start (10 x 1448 B, doubling each RTT until the link is full)")


def link_profile(args):
    """The profile the network options name: a name, or a custom :class:`~mailstudy.link.Profile` (raises ProfileError, a ValueError)."""
    from mailstudy.link import PROFILES, custom

    p = custom(args.profile, rtt=args.rtt, down=args.down, up=args.up, jitter=args.jitter,
               slow_start=args.slow_start or None)
    return p.name if PROFILES.get(p.name) == p else p  # a named profile stays a name in rows and cache keys


SESSION_KEYS = ("protocol", "strategy", "pop3_mode", "server", "server_version", "messages", "sizes", "seed",
                "read_fraction", "batch", "pipelining", "preview", "tls", "tls_version", "compress", "compressed",
                "compress_refused", "profile", "rtt_s",
                "down_bps", "up_bps",
                "jitter_s", "mailbox_bytes", *METRIC_KEYS, "opens", "open_median_s", "open_p95_s", "headers_fetched",
                "bodies_fetched", "integrity_ok")
CAPTURE_KEYS = ("capture_path", "capture_backend", "capture_complete", "capture_rebuilt")

#: row key -> (flag, when it applies, what it applies to). A field that does not apply is null in the output.
APPLIES = {
    "pop3_mode": ("--pop3-mode", lambda a: a.protocol == "pop3" and a.strategy == "download-all",
                  "POP3 download-all"),
    "read_fraction": ("--read-fraction", lambda a: a.strategy == "header-first", "header-first"),
    "sizes": ("--sizes", lambda a: not a.mailbox, "a generated mailbox (not --mailbox)"),
    "batch": ("--per-message", lambda a: a.protocol == "imap", "IMAP"),
    "pipelining": ("--pipelining", lambda a: a.protocol == "pop3" or a.per_message,
                   "POP3, or IMAP with --per-message"),
}
GIVEN = {"pop3_mode": lambda a: a.pop3_mode is not None, "read_fraction": lambda a: a.read_fraction is not None,
         "sizes": lambda a: a.sizes is not None, "batch": lambda a: a.per_message,
         "pipelining": lambda a: a.pipelining}


#: Options a ``--client`` run does not use (it runs the client profile's own workload on loopback), by dest.
NOT_FOR_CLIENTS = ("protocol", "strategy", "pop3_mode", "mailbox", "per_message", "pipelining",
                   "preview", "profile", "rtt", "down", "up", "jitter", "slow_start", "capture", "capture_backend",
                   "force")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def pointless_options(args) -> str | None:
    """Why the options given do nothing together (one line naming them), or None: an option that does nothing
    in the chosen mode is an error, not silence."""
    if args.client:
        given = [_flag(d) for d in NOT_FOR_CLIENTS if getattr(args, d) != args.defaults[d]]
        if given:
            return (f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} nothing with --client (a client "
                    f"profile runs its own workload on loopback); leave {'it' if len(given) == 1 else 'them'} out")
        return None
    if not args.capture:
        for dest in ("capture_backend", "force"):
            if getattr(args, dest) != args.defaults[dest]:
                return f"{_flag(dest)} applies only with --capture FILE.pcap; add --capture or leave it out"
    return None


def not_applicable(args) -> list[str]:
    """Row keys whose flag does not apply to these arguments; warns (stderr) for each such flag given."""
    out = []
    for key, (flag, applies, where) in APPLIES.items():
        if not applies(args):
            out.append(key)
            if GIVEN[key](args):
                print(f"mailstudy: warning: {flag} applies only to {where}; ignored", file=sys.stderr)
    return out


def format_table(row: dict, keys=SESSION_KEYS, na: tuple = ()) -> str:
    """A two-column table a person reads at a glance."""
    width = max(len(k) for k in keys)
    lines = []
    for k in keys:
        v = row.get(k)
        if k in na:
            v = "n/a"
        elif isinstance(v, float):
            v = f"{v:.6f}" if k.endswith("_s") else f"{v:g}"
        elif isinstance(v, int) and not isinstance(v, bool) and k.startswith("bytes"):
            v = f"{v:,}"
        lines.append(f"{k.ljust(width)}  {v}")
    return "\n".join(lines)


def run(args) -> int:
    from mailstudy.cli.progress import bar
    from mailstudy.corpus import DEFAULT_MAX_MAILBOX_BYTES, check_mailbox_size
    from mailstudy.outputs import check_output
    from mailstudy.cli.exchanges import exchange_records, format_exchanges
    from mailstudy.study.experiment import Experiment, run_experiment

    pointless = pointless_options(args)
    if pointless:
        return fail(pointless)
    if args.client:
        from mailstudy.cli.client_sessions import show_client_sessions

        return show_client_sessions(args)

    na = not_applicable(args)
    if args.protocol == "jmap":
        return run_jmap(args, na)
    try:
        exp = Experiment(server=args.server, protocol=args.protocol, strategy=args.strategy,
                         pop3_mode=args.pop3_mode or "keep", messages=args.messages,
                         sizes=args.sizes or "buchner2009", seed=args.seed,
                         read_fraction=args.read_fraction or 0.0, batch=not args.per_message,
                         pipelining=args.pipelining, mailbox=args.mailbox, profile=link_profile(args),
                         preview=args.preview, tls=args.tls, tls_version=args.tls_version,
                         compress=args.compress)
    except ValueError as exc:
        return fail(str(exc))
    if not args.mailbox:
        check_mailbox_size(exp.messages, exp.sizes, exp.seed, args.max_mailbox_gb or DEFAULT_MAX_MAILBOX_BYTES,
                           headers=exp.headers)
    if args.capture:
        # before any work: a folder, a device, an earlier capture or its sidecar without --force, ...
        check_output(args.capture, sidecar=True, what="capture", force=args.force)
    reports: list = []
    results: list = []
    row = run_experiment(exp, capture=args.capture, capture_backend=args.capture_backend,
                         reports=reports, results=results, progress=bar)[0]
    for report in reports:
        state = "complete" if report.complete else "INCOMPLETE: " + "; ".join(report.warnings)
        print(f"capture: {report.path} ({report.backend}: {report.reason}; {report.packets} packets, {state})",
              file=sys.stderr)
    row.update({k: None for k in na})
    if row.get("compress_refused"):
        print(f"mailstudy: warning: COMPRESS not used, the session ran uncompressed: {row['compress_refused']}",
              file=sys.stderr)
    exchanges = exchange_records(results[0].exchanges) if args.exchanges else None
    if args.json:
        out = {k: row.get(k) for k in row}
        if exchanges is not None:
            out["exchanges"] = exchanges
        print(json.dumps(out, default=str))
    else:
        print(format_table(row, SESSION_KEYS + (CAPTURE_KEYS if args.capture else ()), na))
        if exchanges is not None:
            print()
            print(format_exchanges(exchanges))
    return 0


def run_jmap(args, na: list[str]) -> int:
    """``--protocol jmap``: one JMAP cell on Cyrus (:mod:`mailstudy.study.jmap_cell`), printed like the others;
    with ``--capture``, its pcap (the HTTP port to give ``mailstudy analyze --port`` is in the row)."""
    from mailstudy.cli.progress import bar
    from mailstudy.corpus import DEFAULT_MAX_MAILBOX_BYTES, check_mailbox_size
    from mailstudy.outputs import check_output
    from mailstudy.study.jmap_cell import JmapCell, run_jmap_cell

    try:
        cell = JmapCell(server=args.server, strategy=args.strategy, messages=args.messages,
                        sizes=args.sizes or "buchner2009", seed=args.seed, read_fraction=args.read_fraction or 0.0,
                        mailbox=args.mailbox, profile=link_profile(args), preview=args.preview or 0)
    except ValueError as exc:
        return fail(str(exc))
    if not args.mailbox:
        check_mailbox_size(cell.messages, cell.sizes, cell.seed, args.max_mailbox_gb or DEFAULT_MAX_MAILBOX_BYTES)
    if args.capture:
        check_output(args.capture, sidecar=True, what="capture", force=args.force)
    reports: list = []
    row = run_jmap_cell(cell, progress=bar, capture=args.capture, capture_backend=args.capture_backend,
                        reports=reports)[0]
    for report in reports:
        state = "complete" if report.complete else "INCOMPLETE: " + "; ".join(report.warnings)
        print(f"capture: {report.path} ({report.backend}: {report.reason}; {report.packets} packets, {state}; "
              f"analyze it with --port {row['capture_port']})", file=sys.stderr)
    row.update({k: None for k in na})
    if args.json:
        print(json.dumps(row, default=str))
    else:
        print(format_table(row, SESSION_KEYS + (CAPTURE_KEYS if args.capture else ()), na))
    return 0
