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


_stop = {"fired": False, "critical": 0, "pending": None}


@contextlib.contextmanager
def stop_on_signals(signals: tuple = STOP_SIGNALS):
    """Within the block, each of ``signals`` raises :class:`Stopped` in the main thread (once: a second signal
    while the first one's cleanup runs is ignored, so the cleanup finishes). SIGINT is handled even when it was
    ignored at start (a background job of a non-interactive shell); the old handlers come back at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if _stop["fired"] or _stop["pending"]:
            return
        if _stop["critical"]:
            _stop["pending"] = signum  # raised when the uninterrupted() section ends
            return
        _stop["fired"] = True
        raise Stopped(signum)

    old = {sig: signal.signal(sig, handler) for sig in signals}
    _stop.update(fired=False, pending=None)
    try:
        yield
    finally:
        for sig, was in old.items():
            signal.signal(sig, was)


@contextlib.contextmanager
def uninterrupted():
    """Hold a stop signal back for a few lines that must not be cut in two (make a temporary file, then name it
    to its guardian); it is raised as :class:`Stopped` when the section ends."""
    _stop["critical"] += 1
    try:
        yield
    finally:
        _stop["critical"] -= 1
    signum = _stop["pending"]
    if signum and not _stop["critical"]:
        _stop.update(fired=True, pending=None)
        raise Stopped(signum)


# ---- temporary folders named after their owner ------------------------------------------------------------
#: where folders go whose path must be short (Unix sockets: 107 bytes) when the temporary folder's path is long
SHORT_TEMP = "/tmp"
#: searched besides tempfile.gettempdir(): where servers keep RAM-backed folders, and the short folder above
TEMP_ROOTS = ("/dev/shm", SHORT_TEMP)
#: the longest temporary folder path :func:`short_tempdir` uses as it is: our folder's name (~33 bytes), Voilà's
#: folder in it (~15) and a kernel socket's name (~51: kernel-UUID-ipc-N) must fit in the 107 of a socket's path
SHORT_TEMP_MAX = 8
_OWNED = re.compile(r"^mailstudy-[a-z0-9]+-(\d+)-")


def owned_tempdir(kind: str, dir: str | None = None) -> Path:
    """A new private folder ``mailstudy-KIND-PID-XXXX`` (in ``dir`` or the system's temporary folder)."""
    return Path(tempfile.mkdtemp(prefix=f"mailstudy-{kind}-{os.getpid()}-", dir=dir))


def short_tempdir(kind: str) -> Path:
    """:func:`owned_tempdir` in the temporary folder, or in :data:`SHORT_TEMP` when the temporary folder's own
    path is long (a test's ``TMPDIR``): kernels keep Unix sockets in it, whose paths must fit in 107 bytes."""
    root = tempfile.gettempdir()
    return owned_tempdir(kind, dir=root if len(root) <= SHORT_TEMP_MAX else SHORT_TEMP)


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
# all still there 10 s later. Temporary files of a killed child stay too. So a child may get a guardian: a small
# /bin/sh script in its own session (a terminal's Ctrl-C or hang-up does not reach it) that reads a pipe whose
# only writer is mailstudy. EOF without the word "done" means mailstudy died: the guardian kills the child (and
# its process group, when asked) and removes the named paths. A normal stop says "done" first. The shell rather
# than Python: it starts in a millisecond and runs for any user (a venv's interpreter may not be reachable for a
# user that mailstudy switched to).

_REAP_S = 3.0  # how long a stop waits for a guardian to go
# Lines on the pipe: "path P" (remove P), "kill PID" or "kill -PGID" (kill it), "done" (all is clean: exit).
# On EOF it kills twice, 0.1 s apart (a process group member forked meanwhile), then removes; it does not wait
# for the killed to be reaped: their new parent may be a PID 1 that never reaps zombies.
_GUARDIAN = """
trap '' INT HUP TERM
set --
targets=
while IFS= read -r line; do
  case $line in
    done) exit 0 ;;
    kill\\ *) targets="$targets ${line#kill }" ;;
    path\\ *) set -- "$@" "${line#path }" ;;
  esac
done
for t in $targets; do kill -9 "$t" 2>/dev/null; done
sleep 0.1
for t in $targets; do kill -9 "$t" 2>/dev/null; done
rm -rf -- "$@"
"""


class Guardian:
    """A guardian process (see above). Start it *before* creating what it guards, then :meth:`watch` each path
    and :meth:`kill` each child as soon as it exists, so that a ``kill -9`` at any moment leaves at most what
    :func:`sweep_dead` removes at the next start; :meth:`release` after a normal stop."""

    def __init__(self) -> None:
        read_end, self._fd = os.pipe()  # both close-on-exec: no other child inherits the write end
        try:
            self.proc = subprocess.Popen(["/bin/sh", "-c", _GUARDIAN], stdin=read_end, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            os.close(self._fd)
            raise
        finally:
            os.close(read_end)

    def _say(self, line: str) -> None:
        if self._fd is not None and "\n" not in line:  # a name with a newline is left to the sweep
            os.write(self._fd, line.encode(errors="surrogateescape") + b"\n")

    def watch(self, path: str | os.PathLike) -> None:
        """Remove ``path`` (a file or a folder) should mailstudy die."""
        self._say(f"path {os.path.abspath(path)}")

    def kill(self, pid: int, group: bool = False) -> None:
        """SIGKILL process ``pid`` (its whole process group with ``group``) should mailstudy die."""
        self._say(f"kill {'-' if group else ''}{int(pid)}")

    def release(self) -> None:
        """All is stopped and removed: the guardian exits without doing anything."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.write(fd, b"done\n")
        except OSError:
            pass
        os.close(fd)
        try:
            self.proc.wait(_REAP_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class TiedPopen(subprocess.Popen):
    """A :class:`subprocess.Popen` started by :func:`popen_tied`; :meth:`release` stands its guardian down."""

    guardian: Guardian | None = None

    def release(self) -> None:
        """Call once the child is stopped and its files removed."""
        if self.guardian is not None:
            self.guardian.release()


def popen_tied(argv: list[str], *, group: bool = False, cleanup: tuple | list = (),
               guardian: Guardian | None = None, **kwargs) -> TiedPopen:
    """:class:`subprocess.Popen` of a child that is killed when this process dies (see :func:`die_with_parent`).

    Extra keyword arguments go to Popen; a caller's own ``preexec_fn`` runs after the parent-death request.
    ``group=True`` starts the child in a new session and, should mailstudy die without stopping it, has its
    whole process group killed (Dovecot's helpers); ``cleanup`` names files or folders removed in that case.
    Either needs a guardian: pass one started before those files were made (see :class:`Guardian`), or one is
    started here. Call :meth:`TiedPopen.release` after a normal stop. Call it inside :func:`uninterrupted` with
    the assignment of its result, so that a stop signal cannot come between the start and holding the handle."""
    own = kwargs.pop("preexec_fn", None)

    def preexec() -> None:
        die_with_parent()
        if own is not None:
            own()

    if group:
        kwargs["start_new_session"] = True
    if guardian is None and (group or cleanup):
        guardian = Guardian()
    with uninterrupted():  # a child that exists is known to its guardian
        try:
            for path in cleanup:
                guardian.watch(path)
            proc = TiedPopen(argv, preexec_fn=preexec, **kwargs)
        except BaseException:
            if guardian is not None:
                guardian.release()
            raise
        proc.guardian = guardian
        if guardian is not None:
            guardian.kill(proc.pid, group)
    return proc


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
        return not os.path.isdir("/proc")


def group_members(pgid: int, zombies: bool = False) -> dict[int, str]:
    """Processes in process group ``pgid`` (zombies only if asked): pid -> command line (empty for zombies).
    Linux: read from /proc."""
    found: dict[int, str] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            if int(fields[2]) != pgid or (fields[0] == b"Z" and not zombies):
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                found[int(name)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
    return found
