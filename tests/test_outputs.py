"""Outputs never damage what is already there: devices, FIFOs, folders, inputs and their sidecars, earlier results.

Each case runs the command line as a user would and checks both the one-line error (exit 2, no traceback) and
that what was there is untouched.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cli_run import one_line_error, run

from mailstudy.outputs import OutputError, check_output, sidecar_path, tmp_beside

REPO = Path(__file__).resolve().parent.parent
CAPTURE = REPO / "captures" / "pop3-keep.pcap"


@pytest.fixture
def capture(tmp_path) -> Path:
    """A copy of an example capture with its sidecar."""
    dst = tmp_path / "cap.pcap"
    shutil.copy(CAPTURE, dst)
    shutil.copy(sidecar_path(CAPTURE), sidecar_path(dst))
    return dst


def test_a_fifo_or_a_device_is_never_replaced(tmp_path, capture):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_line_error(run("session", "--messages", "2", "--capture", fifo), "not a regular file")
    one_line_error(run("redact", capture, fifo), "not a regular file")
    one_line_error(run("session", "--messages", "2", "--capture", "/dev/null"), "not a regular file")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not sidecar_path(fifo).exists()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and not os.path.exists("/dev/null.json")


def test_redact_never_writes_over_its_input_or_the_inputs_sidecar(tmp_path, capture):
    before = capture.read_bytes(), sidecar_path(capture).read_bytes()
    one_line_error(run("redact", capture, sidecar_path(capture)), "would overwrite the input")
    as_json = tmp_path / "cap.json"  # IN named cap.json: OUT=cap would put OUT's sidecar over IN
    shutil.copy(capture, as_json)
    one_line_error(run("redact", as_json, tmp_path / "cap"), "would overwrite the input")
    assert (capture.read_bytes(), sidecar_path(capture).read_bytes()) == before
    assert as_json.read_bytes() == before[0] and not (tmp_path / "cap").exists()


def test_redact_overwrites_an_earlier_result_only_with_force(tmp_path, capture):
    out = tmp_path / "existing.pcap"
    out.write_bytes(b"an earlier result")
    one_line_error(run("redact", capture, out), "--force")
    assert out.read_bytes() == b"an earlier result" and not sidecar_path(out).exists()
    forced = run("redact", capture, out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert out.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a")
    assert sidecar_path(out).exists()


def test_capture_into_a_folder_is_refused_before_the_session(tmp_path):
    out = run("session", "--messages", "2", "--capture", tmp_path)
    one_line_error(out, "is a folder")
    assert out.stdout == ""  # nothing ran: no result table


def test_study_build_that_is_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "build"
    f.write_text("not a folder")
    one_line_error(run("study", "--quick", "--build", f), "not a folder")
    assert f.read_text() == "not a folder"


AS_NOBODY = """
import sys
from mailstudy.outputs import OutputError, check_output
try:
    check_output(sys.argv[1])
except OutputError as exc:
    print(exc)
"""


def test_a_read_only_folder_is_refused_up_front():
    base = Path(tempfile.mkdtemp(prefix="mailstudy-test-ro."))  # in /tmp itself: reachable for nobody
    try:
        ro = base / "ro"
        ro.mkdir()
        os.chmod(ro, 0o555)
        os.chmod(base, 0o755)
        if os.geteuid() == 0:  # root writes anywhere: ask as nobody, as a user would meet it
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root and setpriv (util-linux) is missing to switch to nobody")
            cmd = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable]
        else:
            cmd = [sys.executable]
        out = subprocess.run(cmd + ["-c", AS_NOBODY, str(ro / "k.pcap")], capture_output=True, text=True,
                             timeout=60, cwd="/", env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert out.returncode == 0, out.stderr
        assert "cannot write" in out.stdout and "Permission denied" in out.stdout
        assert os.listdir(ro) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_check_output_rules(tmp_path):
    inp = tmp_path / "in.pcap"
    inp.write_bytes(b"x")
    with pytest.raises(OutputError, match="would overwrite the input"):
        check_output(inp, inputs=(inp,))
    with pytest.raises(OutputError, match="already exists"):
        check_output(inp, force=False)
    with pytest.raises(OutputError, match="does not exist"):
        check_output(tmp_path / "no" / "x.pcap")
    assert check_output(tmp_path / "new.pcap", inputs=(inp,), force=False) == tmp_path / "new.pcap"
    assert os.listdir(tmp_path) == ["in.pcap"]  # the probe left nothing


def test_part_files_of_a_dead_owner_are_swept(tmp_path):
    target = tmp_path / "k.pcap"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".k.pcap.{dead}.abcdefgh.part"
    stale.write_bytes(b"half a capture")
    mine = tmp_beside(target)  # a live owner's file stays
    assert not stale.exists() and mine.exists()
    mine.unlink()
