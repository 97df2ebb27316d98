"""``mailstudy serve``: a live local server with a seeded (or real) mailbox for telnet, curl or a mail client.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`).
"""

from __future__ import annotations

import sys
import time

from mailstudy.cli.values import count, gigabytes, port, seed
from mailstudy.servers import SERVER_KINDS


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="run a server with a generated mailbox until Ctrl-C",
                       description="Start a server on 127.0.0.1 with a seeded mailbox and print how to reach it, "
                                   "so you can point telnet, curl or a mail client at it.")
    p.add_argument("--server", choices=SERVER_KINDS, default="embedded")
    p.add_argument("--messages", type=count, default=None, metavar="N", help="messages in the mailbox (20)")
    p.add_argument("--sizes", default=None, metavar="PRESET", help="message size preset (buchner2009)")
    p.add_argument("--seed", type=seed, default=None, metavar="S", help="corpus seed (0)")
    p.add_argument("--mailbox", metavar="PATH", help="serve real mail (mbox, Maildir or .eml folder) instead")
    p.add_argument("--max-mailbox-gb", type=gigabytes, default=None, metavar="GB",
                   help="refuse a generated mailbox estimated above GB gigabytes (2.1)")
    p.add_argument("--imap-port", type=port, default=None, metavar="P", help="IMAP port (default: a free one)")
    p.add_argument("--pop3-port", type=port, default=None, metavar="P", help="POP3 port (default: a free one)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mailstudy.cli.progress import bar
    from mailstudy.corpus import DEFAULT_MAX_MAILBOX_BYTES, check_mailbox_size, generate, load
    from mailstudy.servers import make_server

    if args.mailbox:
        for flag, value in (("--messages", args.messages), ("--sizes", args.sizes), ("--seed", args.seed)):
            if value is not None:
                print(f"mailstudy: warning: {flag} applies only to a generated mailbox (not --mailbox); ignored",
                      file=sys.stderr)
        corpus = load(args.mailbox)
    else:
        n, sizes, seed = 20 if args.messages is None else args.messages, args.sizes or "buchner2009", args.seed or 0
        check_mailbox_size(n, sizes, seed, args.max_mailbox_gb or DEFAULT_MAX_MAILBOX_BYTES)
        corpus = generate(n, sizes, seed, progress=bar)
        args.sizes, args.seed = sizes, seed
    server = make_server(args.server, imap_port=args.imap_port, pop3_port=args.pop3_port)
    server.mailboxes[server.account.user] = corpus.raws()
    server.progress = bar
    # Ctrl-C, TERM and HUP all stop it the same way, even when the shell started us with SIGINT ignored: the
    # command line runs every subcommand under mailstudy.processes.stop_on_signals
    with server:
        try:
            _announce(server, corpus, args.mailbox or f"{args.sizes}, seed {args.seed}")
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:  # Ctrl-C, TERM or HUP, once it serves: the usual way to stop, so exit status 0
            pass
    print("stopped.")
    return 0


def _announce(server, corpus, origin: str) -> None:
    a = server.account
    print(f"{server.name} {server.version} is serving {len(corpus)} messages "
          f"({corpus.total_bytes:,} bytes, {origin})")
    print(f"  host      {server.host}")
    print(f"  IMAP      {server.host}:{server.imap_port}   try: telnet {server.host} {server.imap_port}")
    print(f"  POP3      {server.host}:{server.pop3_port}   try: curl -v pop3://{server.host}:{server.pop3_port}/ "
          f"-u {a.user}:{a.password}")
    if getattr(server, "http_port", None):  # Cyrus: JMAP too
        print(f"  JMAP      http://{server.host}:{server.http_port}/.well-known/jmap   try: curl -L "
              f"-u {a.user}:{a.password} http://{server.host}:{server.http_port}/.well-known/jmap")
    print(f"  user      {a.user}")
    print(f"  password  {a.password}")
    print("Ctrl-C stops it.", flush=True)
