"""Fault injection: TERM, HUP and KILL during a session, a captured session and ``serve``, on both servers.

Each case starts ``mailstudy`` as a user would, waits until its server (and tcpdump) runs, sends the signal, and
then asserts that no process of the run and no temporary file or folder of it remains: not the server, not
Dovecot's helpers, not tcpdump, not a guardian; not ``/tmp/mailstudy-*-PID-*``, ``/dev/shm/mailstudy-*-PID-*``
or a hidden ``.k.pcap.*.part``. TERM and HUP must unwind as Ctrl-C does (no traceback; the exit status says
which signal); KILL gives mailstudy no chance at all, so the kernel and the guardians must do it.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mailstudy.outputs import sweep_parts
from mailstudy.processes import TEMP_ROOTS, group_members, running, sweep_dead

CLI = [sys.executable, "-m", "mailstudy.cli"]
SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL]
MODES = ["session", "capture", "serve"]
WAIT_S = 60  # generous bounds for a loaded 2-core machine; never asserted as a speed


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(name))
    return kids


def descendants(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _cmd(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def leftovers(run_pid: int, out_dir: Path) -> list[str]:
    """Temporary folders named after the run, and anything in the capture folder."""
    found = []
    for root in (tempfile.gettempdir(), *TEMP_ROOTS):
        found += glob.glob(os.path.join(root, f"mailstudy-*-{run_pid}-*"))
    found += [str(p) for p in out_dir.iterdir()]
    return found


def _until(check, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def _need(mode: str, server: str) -> None:
    if server == "dovecot":
        import needs

        needs.dovecot()  # skips with the reason, or fails under CI
    if mode == "capture":
        import needs

        needs.tcpdump_capture()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; parent-death signals are Linux's")
@pytest.mark.parametrize("server", ["embedded", "dovecot"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_stopped_or_killed_run_leaves_nothing(sig, mode, server, tmp_path):
    _need(mode, server)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if mode == "serve":
        args = ["serve", "--server", server, "--messages", "5", "--sizes", "fixed-5k"]
    else:
        args = ["session", "--server", server, "--protocol", "pop3", "--strategy", "download-all",
                "--messages", "1000", "--sizes", "fixed-5k"]
        if mode == "capture":
            args += ["--capture", str(out_dir / "k.pcap"), "--capture-backend", "tcpdump"]
    proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        if mode == "serve":
            for line in proc.stdout:
                if "Ctrl-C stops it" in line:
                    break
        else:  # the server runs (and tcpdump, for a capture): the session is under way
            want = "tcpdump" if mode == "capture" else ("dovecot" if server == "dovecot" else "embedded_main")
            _until(lambda: any(want in _cmd(p) for p in descendants(proc.pid)) or proc.poll() is not None)
        ours = {p: _cmd(p) for p in descendants(proc.pid)}
        groups = {g for g in map(_pgid, ours) if g is not None}
        if proc.poll() is None:
            proc.send_signal(sig)
        status = proc.wait(WAIT_S)
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in stderr, stderr
    if sig != signal.SIGKILL:
        assert status in (0, 128 + sig), (status, stderr)  # serve ends normally; a session says the signal
    gone = _until(lambda: not [p for p in ours if running(p) and _cmd(p) == ours[p]]
                  and not [g for g in groups if group_members(g)], timeout=30)
    assert gone, {p: ours[p] for p in ours if running(p)}
    # a session that finished before the signal landed has rightly published its capture and sidecar
    results = {"k.pcap", "k.pcap.json"} if status == 0 and mode == "capture" else set()
    left = lambda: [f for f in leftovers(proc.pid, out_dir) if Path(f).name not in results]  # noqa: E731
    if not _until(lambda: not left(), timeout=30) and sig == signal.SIGKILL:
        # killed between making a file and naming it to its guardian (microseconds): the next start sweeps it
        sweep_dead()
        sweep_parts(out_dir / "k.pcap")
    assert not left()
