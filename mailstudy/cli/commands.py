"""The ``mailstudy`` command line: one small module per subcommand, dispatched through ``args.func``.

Why: a researcher or a student should get a number, a server or the whole study with one command, with
``--help`` on each and a one-line error (exit 2) instead of a traceback when something is wrong. To add a
subcommand, write ``mailstudy/cli/NAME.py`` with ``add_parser(sub)`` (which sets ``func=run``) and ``run(args)``,
and list NAME in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mailstudy import __version__
from mailstudy.cli.errors import EXIT_USAGE, fail

#: Subcommands in the order ``--help`` lists them; each is the module ``mailstudy.cli.<name>``.
COMMANDS = ("session", "serve", "study", "analyze", "redact", "replay", "fleet", "profiles", "breakeven",
            "explore", "claims", "energy", "calibrate")


class Parser(argparse.ArgumentParser):
    """argparse with the project's error form: one line on stderr (with where to find help), exit 2."""

    def error(self, message: str):
        one_line = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mailstudy", description="Measure what IMAP and POP3 really cost.")
    parser.add_argument("--version", action="version", version=f"mailstudy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"mailstudy.cli.{name}").add_parser(sub)
    return parser


def _show_warnings() -> None:
    """Warnings logged by any layer (``mailstudy.*`` loggers) reach stderr as ``mailstudy: warning: ...``."""
    log = logging.getLogger("mailstudy")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("mailstudy: warning: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.WARNING)
        log.propagate = False


def main(argv: list[str] | None = None) -> int:
    from mailstudy.caches import keep_caches_in_project

    keep_caches_in_project()  # before scapy, matplotlib or a notebook kernel starts
    _show_warnings()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (one line, exit 2), --help or --version: main returns the status
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    from mailstudy.errors import CheckFailed, MailstudyError
    from mailstudy.processes import Stopped, stop_on_signals

    try:
        with stop_on_signals():  # TERM and HUP unwind exactly as Ctrl-C does: servers stopped, files removed
            return args.func(args)
    except CheckFailed as exc:  # the work ran, its check did not pass: exit 1, as a failed test does
        print(f"mailstudy: {exc.check} failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except MailstudyError as exc:  # every error the package raises on purpose: one line, exit 2
        return fail(str(exc))
    except Stopped as exc:
        print(f"mailstudy: stopped by {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as a killed-by-SIGPIPE command does
        import os
        import signal

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
