"""Running the command line as a user does, and what a refusal must look like: one line on stderr, exit 2."""

from __future__ import annotations

import subprocess
import sys

CLI = [sys.executable, "-m", "mailstudy.cli"]


def run(*args, timeout=120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)


def one_line_error(out: subprocess.CompletedProcess, needle: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert needle in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
