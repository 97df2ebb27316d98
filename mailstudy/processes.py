"""Child processes and temporary files that never outlive mailstudy, however it is stopped.

Why a module of its own: "nothing of a run outlives it" is one rule for every child we start (servers,
capturers, the link relay) and every temporary folder they use, so it has one home:

- :func:`popen_tied`: on Linux a child asks the kernel for a parent-death signal (``prctl(PR_SET_PDEATHSIG,
  SIGKILL)``) between fork and exec, so even a ``kill -9`` of mailstudy takes it along. The signal fires when the
  *thread* that forked the child ends, so start long-lived children from the main thread (or a thread that lives
  as long as they do). Where that is not enough (a process group, files to remove) a guardian process does the
  rest (see below).
- :func:`stop_on_signals`: SIGTERM (what ``timeout`` and process managers send) and SIGHUP (a closed terminal)
  stop mailstudy exactly as Ctrl-C does, even when SIGINT was ignored at start: every ``with`` and ``finally``
  runs, children are stopped and temporary files removed.
- :func:`owned_tempdir` / :func:`sweep_dead`: temporary folders carry their owner's pid in their name; the next
  start removes those whose owner is gone (what a ``kill -9`` of the whole process tree can still leave).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

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


# ---- signals ------------------------------------------------------------------------------------------------
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """Raised in the main thread by a stop signal; a KeyboardInterrupt, so it unwinds exactly as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (130 for Ctrl-C)."""
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals(signals: tuple = STOP_SIGNALS):
    """Within the block, each of ``signals`` raises :class:`Stopped` in the main thread (once: a second signal
    while the first one's cleanup runs is ignored, so the cleanup finishes). SIGINT is handled even when it was
    ignored at start (a background job of a non-interactive shell); the old handlers come back at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, frame) -> None:
        if fired:
            return
        fired.append(signum)
        raise Stopped(signum)

    old = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, was in old.items():
            signal.signal(sig, was)


# ---- temporary folders named after their owner ------------------------------------------------------------
TEMP_ROOTS = ("/dev/shm",)  # searched besides tempfile.gettempdir(): where servers keep RAM-backed folders
_OWNED = re.compile(r"^mailstudy-[a-z0-9]+-(\d+)-")


def owned_tempdir(kind: str, dir: str | None = None) -> Path:
    """A new private folder ``mailstudy-KIND-PID-XXXX`` (in ``dir`` or the system's temporary folder)."""
    return Path(tempfile.mkdtemp(prefix=f"mailstudy-{kind}-{os.getpid()}-", dir=dir))


def sweep_dead(roots: tuple | None = None) -> list[Path]:
    """Remove the folders :func:`owned_tempdir` made for processes that no longer run; returns what went."""
    gone = []
    for root in roots or (tempfile.gettempdir(), *TEMP_ROOTS):
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        for entry in entries:
            m = _OWNED.match(entry.name)
            if m and entry.is_dir(follow_symlinks=False) and not running(int(m.group(1))):
                shutil.rmtree(entry.path, ignore_errors=True)
                gone.append(Path(entry.path))
    return gone


def owner_gone(pid_text: str) -> bool:
    """Whether the pid in a temporary name belongs to no running process (so what it names may go)."""
    return pid_text.isdigit() and not running(int(pid_text))


# ---- a guardian for what the parent-death signal cannot reach ---------------------------------------------
# PR_SET_PDEATHSIG reaches one process. Dovecot's master leaves its log and stats processes (and any session
# process with a client still connected) running when it is SIGKILLed: measured with Dovecot 2.3.19, they were
# all still there 10 s later. Temporary files of a killed child stay too. So a child may get a guardian: a tiny
# stdlib-only Python process in its own session (a terminal's Ctrl-C or hang-up does not reach it) that reads a
# pipe whose only writer is mailstudy. EOF without the word "done" means mailstudy died: the guardian kills the
# child (and its process group, when asked) and removes the named paths. A normal stop says "done" first.

_GUARD_DONE = b"done\n"
_REAP_S = 3.0  # how long a guardian (or a stop) waits for killed processes to go


class TiedPopen(subprocess.Popen):
    """A :class:`subprocess.Popen` started by :func:`popen_tied`; :meth:`release` stands its guardian down."""

    guardian: subprocess.Popen | None = None
    _guard_fd: int | None = None

    def release(self) -> None:
        """Call once the child is stopped and its files removed: the guardian exits without doing anything."""
        fd, self._guard_fd = self._guard_fd, None
        if fd is not None:
            try:
                os.write(fd, _GUARD_DONE)
            except OSError:
                pass
            os.close(fd)
        if self.guardian is not None:
            try:
                self.guardian.wait(_REAP_S)
            except subprocess.TimeoutExpired:
                self.guardian.kill()
                self.guardian.wait()
            self.guardian = None


def popen_tied(argv: list[str], *, group: bool = False, cleanup: tuple | list = (), **kwargs) -> TiedPopen:
    """:class:`subprocess.Popen` of a child that is killed when this process dies (see :func:`die_with_parent`).

    Extra keyword arguments go to Popen; a caller's own ``preexec_fn`` runs after the parent-death request.
    ``group=True`` starts the child in a new session and, should mailstudy die without stopping it, kills that
    whole process group (Dovecot's helpers); ``cleanup`` names files or folders removed in that case. Either
    starts a guardian (see above); call :meth:`TiedPopen.release` after a normal stop."""
    own = kwargs.pop("preexec_fn", None)

    def preexec() -> None:
        die_with_parent()
        if own is not None:
            own()

    if group:
        kwargs["start_new_session"] = True
    proc = TiedPopen(argv, preexec_fn=preexec, **kwargs)
    if group or cleanup:
        try:
            _guard(proc, group, [str(p) for p in cleanup])
        except BaseException:
            _kill_now(proc.pid, group)
            proc.wait()
            raise
    return proc


def _guard(proc: TiedPopen, group: bool, paths: list[str]) -> None:
    read_end, write_end = os.pipe()  # both close-on-exec: no other child inherits the write end
    try:
        argv = [sys.executable, "-I", "-S", os.path.abspath(__file__), "--guard", str(proc.pid),
                "group" if group else "single", *paths]
        proc.guardian = subprocess.Popen(argv, stdin=read_end, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    proc._guard_fd = write_end


def _kill_now(pid: int, group: bool) -> None:
    try:
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a zombie has exited; only its exit status is left)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b") ", 1)[1][:1] != b"Z"
    except (FileNotFoundError, IndexError):
        return os.path.exists(f"/proc/{pid}") or not os.path.isdir("/proc")


def group_running(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that have not exited (Linux: read from /proc)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            found.append(int(name))
    return found


def _guardian_main(argv: list[str]) -> int:
    """The guardian itself (``python processes.py --guard PID group|single PATH...``); stdlib only."""
    import time

    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # it ends when its pipe says so, not with the terminal
    pid, group, paths = int(argv[0]), argv[1] == "group", argv[2:]
    said = b""
    while True:
        chunk = os.read(0, 64)
        if not chunk:
            break
        said += chunk
    if said.startswith(_GUARD_DONE):
        return 0
    deadline = time.monotonic() + _REAP_S
    while time.monotonic() < deadline:
        _kill_now(pid, group)
        if not (group_running(pid) if group else running(pid)):
            break
        time.sleep(0.02)
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--guard"]:
    sys.exit(_guardian_main(sys.argv[2:]))
