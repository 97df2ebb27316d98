"""The explorer's logic without a browser: captures in, tables and pictures out, every failure one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailstudy.faces import explorer as ex
from mailstudy.study.parameters import ParameterError, check_parameters
from peers import PEER

PNG = b"\x89PNG\r\n\x1a\n"


def test_examples_open_and_draw():
    examples = ex.example_captures()
    assert {"imap-header-first", "pop3-keep", "pop3-pipelined"} <= set(examples)
    analysis = ex.open_capture(examples["pop3-keep"])
    (label, index), = ex.session_options(analysis)
    assert index == 0 and label.startswith("#0 POP3") and "12 commands" in label
    session = analysis.sessions[0]
    table = ex.exchanges_html(session)
    assert table.count("<tr") == 1 + 12 and "RETR" in table and "***" in table  # credentials stay hidden
    assert ex.ladder_png(session).startswith(PNG) and ex.bytes_png(session).startswith(PNG)


@pytest.mark.parametrize("content, expected", [(b"", "empty file"), (b"hello, not a capture", "not a pcap")])
def test_bad_uploads_are_one_line_errors(content, expected):
    with pytest.raises(Exception) as err:
        ex.open_upload("mine.pcap", content)
    text = ex.one_line(err.value)
    assert expected in text and "mine.pcap" in text and "\n" not in text and "/tmp" not in text


def test_a_capture_without_mail_is_said_so():
    with pytest.raises(ex.ExplorerError, match="no IMAP or POP3 session"):
        ex.open_capture(PEER / "redis-50-pings.pcap")
    with pytest.raises(ex.ExplorerError, match="no such file"):
        ex.open_capture("/nonexistent/x.pcap")


def test_widget_shows_errors_as_one_line_and_keeps_the_last_session():
    e = ex.Explorer()
    e.capture.value = "imap-header-first"
    shown = (e.exchanges.value, bytes(e.ladder.value))
    assert "IMAP" in shown[0] and shown[1].startswith(PNG) and e.error.value == ""
    e.path.value = "/nonexistent/x.pcap"  # what Enter (or leaving the box) sends
    assert "no such file" in e.error.value and "Traceback" not in e.error.value
    e.open_button.click()  # a retry after an error opens again, and fails again
    assert "no such file" in e.error.value
    assert (e.exchanges.value, bytes(e.ladder.value)) == shown
    e.path.value = str(PEER / "pop3.pcap")
    assert e.error.value == "" and len(e.session.options) == 7
    e.session.value = 3
    assert "session #3" in e.exchanges.value
    e.open_button.click()  # the click that follows typing: the capture is on screen already, nothing is reset
    assert "session #3" in e.exchanges.value and e.error.value == ""
    e.path.value = f"  {PEER / 'pop3.pcap'} "  # the same file typed differently is the same capture
    e.open_button.click()
    assert "session #3" in e.exchanges.value
    e.path.value = ""
    assert e.error.value == ""  # emptying the box is no error...
    e.open_button.click()
    assert "type the path" in e.error.value  # ...clicking Open with it empty is


def test_live_session_is_captured_and_shown(tmp_path):
    analysis, row = ex.live_capture("pop3", "download-all", messages=3, folder=tmp_path)
    m = analysis.sessions[0].metrics
    assert (m["bytes_up"], m["bytes_down"], m["commands"]) == (row["bytes_up"], row["bytes_down"], row["commands"])
    with pytest.raises(ex.ExplorerError, match="messages"):
        ex.live_capture(messages=0)


def test_live_captures_go_to_a_folder_mailstudy_owns():
    # without a folder, the pcap must not pile up in /tmp: its folder names this process, so a later start sweeps it
    e = ex.Explorer()
    e.live_protocol.value, e.live_strategy.value, e.live_messages.value = "imap", "header-first", 2
    try:
        e.run_live()
        pcap = Path(e.analysis.path)
        assert pcap.exists() and pcap.parent.name.startswith(f"mailstudy-live-{os.getpid()}-")
        assert str(pcap) in e.status.value
        e.run_live()  # a second run uses the same folder
        assert Path(e.analysis.path).parent == pcap.parent and len(list(pcap.parent.glob("*.pcap"))) == 1
    finally:
        if e._live_folder is not None:
            shutil.rmtree(e._live_folder, ignore_errors=True)


@pytest.mark.parametrize("params, expected", [
    (dict(QUICK=True, MESSAGES=0), "MESSAGES must be a whole number"),
    (dict(PROFILES=["moon-link"]), "unknown 'moon-link'"),
    (dict(SIZES="huge"), "unknown 'huge'"),
    (dict(CAPTURE_DIR="/nonexistent"), "existing folder"),
    (dict(QUICK="yes"), "QUICK must be True or False"),
])
def test_nonsense_parameters_are_refused(params, expected):
    with pytest.raises(ParameterError, match=expected):
        check_parameters(**params)


def test_explore_without_its_notebook_is_a_one_line_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mailstudy.cli", "explore", "--notebook", str(tmp_path / "x.ipynb")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no such notebook" in out.stderr
