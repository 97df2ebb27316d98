"""How every subcommand reports a usage or input error: one line on stderr, exit status 2.

Why a module of its own: the exit code and the message form are one rule for all subcommands.
"""

from __future__ import annotations

import sys

EXIT_USAGE = 2


def fail(message: str) -> int:
    """Print ``mailstudy: error: MESSAGE`` on stderr and return the usage exit status."""
    one_line = " ".join(str(message).split())
    print(f"mailstudy: error: {one_line}", file=sys.stderr)
    return EXIT_USAGE
