"""Child processes that never outlive mailstudy: servers, capturers and the link relay all start through here.

Why a module of its own: "no child process outlives its parent" is one rule for every child we start. On Linux a
child asks the kernel for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) between fork and exec, so
even a ``kill -9`` of mailstudy takes its children with it. The signal fires when the *thread* that forked the
child ends, so start long-lived children from the main thread (or a thread that lives as long as they do).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PR_SET_TIMERSLACK = 29

_libc = None


def _prctl():
    global _libc
    if _libc is None:
        # ctypes rather than a dependency: prctl is one libc call and Python's stdlib has no wrapper for it
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc.prctl


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In a freshly forked child (a ``preexec_fn``): ask for ``sig`` when the parent dies. No-op off Linux.

    Also closes the race where the parent died before the call: the child then exits at once."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    _prctl()(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent is already gone: we were re-parented before the call took effect
        os._exit(1)


def precise_timers(slack_ns: int = 1) -> None:
    """Ask the kernel to wake this thread's sleeps within ``slack_ns`` of their time (the default slack is
    50 us, which makes every ``time.sleep`` late). New threads inherit it; call before starting them. No-op off
    Linux. The link relay uses it so that its delays are exact without spinning (a spinning thread starves the
    others of the GIL)."""
    if sys.platform.startswith("linux"):
        _prctl()(PR_SET_TIMERSLACK, int(slack_ns), 0, 0, 0)


def popen_tied(argv: list[str], **kwargs) -> subprocess.Popen:
    """:class:`subprocess.Popen` of a child that is killed when this process dies (see :func:`die_with_parent`).

    Extra keyword arguments go to Popen; a caller's own ``preexec_fn`` runs after the parent-death request."""
    own = kwargs.pop("preexec_fn", None)

    def preexec() -> None:
        die_with_parent()
        if own is not None:
            own()

    return subprocess.Popen(argv, preexec_fn=preexec, **kwargs)
