"""A child started with popen_tied dies when its parent is killed with SIGKILL (no chance to clean up)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux-only")

PARENT = """
import sys, time
from mailstudy.processes import popen_tied
child = popen_tied([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_tied_child_dies_with_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        assert _alive(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(child_pid), "the child outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.wait()


def test_an_untied_child_would_have_survived():
    """The control: the same parent with plain Popen leaves its child running (so the test above can fail)."""
    code = PARENT.replace("from mailstudy.processes import popen_tied", "from subprocess import Popen as popen_tied")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        time.sleep(0.3)
        assert _alive(child_pid)
    finally:
        try:
            os.kill(child_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


GUARDED = """
import os, sys, time
from mailstudy.processes import popen_tied
d = sys.argv[1]
os.mkdir(d)
child = popen_tied(["sh", "-c", "sleep 60 & sleep 60"], group=True, cleanup=[d])
print(child.pid, flush=True)
if sys.argv[2] == "release":
    try:
        os.killpg(child.pid, 9)
    except ProcessLookupError:
        pass
    child.wait()
    os.rmdir(d)
    os.mkdir(d)  # made again after the release: the guardian must leave it alone
    child.release()
    print("released", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("mode", ["killed", "release"])
def test_a_guardian_kills_the_group_and_removes_its_paths_only_when_the_parent_dies(tmp_path, mode):
    from mailstudy.processes import group_members

    d = tmp_path / "scratch"
    parent = subprocess.Popen([sys.executable, "-c", GUARDED, str(d), mode], stdout=subprocess.PIPE, text=True)
    try:
        pgid = int(parent.stdout.readline())
        if mode == "release":
            assert parent.stdout.readline().strip() == "released"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while (group_members(pgid) or d.exists()) and time.monotonic() < deadline and mode == "killed":
            time.sleep(0.02)
        if mode == "killed":
            assert not group_members(pgid), "a member of the child's process group outlived the parent"
            assert not d.exists(), "the guarded folder was left behind"
        else:
            time.sleep(0.3)
            assert d.is_dir(), "a released guardian removed a path after all"
    finally:
        parent.kill()
        parent.wait()
