"""``mailstudy study`` stopped by a real signal leaves nothing: no kernel, no kernel key, no half notebook.

A notebook runs in a Jupyter kernel (a child process) whose connection file holds the kernel's key. Stopped by
SIGTERM or SIGINT, ``study`` must stop its kernel quietly (no ``zmq`` traceback from the kernel), exit 128 +
the signal, and leave no half-executed notebook in ``build/`` and no connection file; after a ``kill -9`` its
guardian kills the kernel and removes the connection files, and the next run removes the half notebook.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from cli_run import CLI

from mailstudy.study.notebooks import sweep_half_executed

NOTEBOOK = "01-traffic-volume.ipynb"
WAIT_S = 300  # how long to wait for the kernel to start under a loaded machine (not a timed assert)


def _kernel_folders(pid: int) -> list[str]:
    """The study's kernel folders: in the temporary folder, or in SHORT_TEMP when that path is too long for the
    kernels' Unix sockets (mailstudy.processes.short_tempdir)."""
    from mailstudy.processes import SHORT_TEMP

    return [f for root in dict.fromkeys((tempfile.gettempdir(), SHORT_TEMP))
            for f in glob.glob(os.path.join(root, f"mailstudy-kernels-{pid}-*"))]


def _processes_naming(text: str) -> list[int]:
    """Processes whose command line holds ``text`` (a kernel names its connection file there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _start_and_wait_for_the_kernel(build: Path):
    """Start ``study --quick --only 01`` and return once its kernel runs a cell (its connection file exists
    and the notebook is being written); returns the process and the kernels' folder."""
    proc = subprocess.Popen([*CLI, "study", "--quick", "--only", "01", "--build", str(build)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        folders = _kernel_folders(proc.pid)
        if folders and glob.glob(os.path.join(folders[0], "kernel-*.json")) and list(build.glob(".*.part")):
            return proc, folders[0]
        if proc.poll() is not None:
            pytest.fail(f"study ended before its kernel ran: {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("the kernel did not start")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_study_leaves_no_kernel_key_and_no_half_notebook(tmp_path, sig):
    build = tmp_path / "build"
    proc, folder = _start_and_wait_for_the_kernel(build)
    time.sleep(2)  # well inside a cell
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-2000:]
    assert "Traceback" not in err and "ZMQError" not in err, err[-3000:]
    assert f"stopped by {signal.Signals(sig).name}" in err
    assert not Path(folder).exists() and not _kernel_folders(proc.pid)
    assert not _processes_naming(folder)  # the kernel is gone
    assert not (build / NOTEBOOK).exists() and not list(build.glob(".*.part"))


def test_a_killed_study_leaves_no_kernel_key_and_the_next_run_no_half_notebook(tmp_path):
    build = tmp_path / "build"
    proc, folder = _start_and_wait_for_the_kernel(build)
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while (Path(folder).exists() or _processes_naming(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the guardian kills the kernel and removes its folder
    assert not Path(folder).exists(), "the kernel's connection file outlived a kill -9"
    assert not _processes_naming(folder), "the kernel outlived a kill -9"
    assert not (build / NOTEBOOK).exists()  # never a half notebook under its own name
    assert list(build.glob(".*.part"))  # ... only a hidden part file, which the next run removes
    sweep_half_executed(build)
    assert not list(build.glob(".*.part"))
