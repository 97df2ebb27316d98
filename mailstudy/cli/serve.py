"""``mailstudy serve``: a live local server with a seeded (or real) mailbox for telnet, curl or a mail client.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`).
"""

from __future__ import annotations

import signal
import time


def add_parser(sub) -> None:
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
    p.set_defaults(func=run)


def run(args) -> int:
    from mailstudy.corpus import generate, load
    from mailstudy.servers import make_server

    corpus = load(args.mailbox) if args.mailbox else generate(args.messages, args.sizes, args.seed)
    server = make_server(args.server, imap_port=args.imap_port, pop3_port=args.pop3_port)
    server.mailboxes[server.account.user] = corpus.raws()
    stop = {"now": False}
    # Ctrl-C, TERM and HUP all stop it the same way, even when the shell started us with SIGINT ignored
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.update(now=True))
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


