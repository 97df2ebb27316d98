"""The ``mailstudy`` command line: one small module per subcommand, dispatched through ``args.func``.

Why: a researcher or a student should get a number, a server or the whole study with one command, with
``--help`` on each and a one-line error (exit 2) instead of a traceback when something is wrong. To add a
subcommand, write ``mailstudy/cli/NAME.py`` with ``add_parser(sub)`` (which sets ``func=run``) and ``run(args)``,
and list NAME in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mailstudy import __version__
from mailstudy.cli.errors import EXIT_USAGE, fail

#: Subcommands in the order ``--help`` lists them; each is the module ``mailstudy.cli.<name>``.
COMMANDS = ("session", "serve", "study", "analyze", "redact", "replay", "fleet", "profiles", "breakeven")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailstudy", description="Measure what IMAP and POP3 really cost.")
    parser.add_argument("--version", action="version", version=f"mailstudy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"mailstudy.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    from mailstudy.capture import CaptureError
    from mailstudy.corpus import CorpusError
    from mailstudy.live.access import IntegrityError, SessionError
    from mailstudy.servers.base import ServerError

    try:
        return args.func(args)
    except (ServerError, SessionError, CorpusError, CaptureError) as exc:
        return fail(str(exc))
    except IntegrityError as exc:
        print(f"mailstudy: integrity check failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
