"""The explorer's logic without a browser: captures in, tables and pictures out, every failure one line."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailstudy.faces import explorer as ex
from mailstudy.faces import explorer_views as views
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


def test_widget_shows_errors_as_one_line_and_clears_the_screen():
    e = ex.Explorer()
    assert e.ladder.layout.display == "none" and e.bytes.layout.display == "none"  # no broken images at first
    e.capture.value = "imap-header-first"
    shown = (e.exchanges.value, bytes(e.ladder.value))
    assert "IMAP" in shown[0] and shown[1].startswith(PNG) and e.error.value == ""
    assert e.ladder.layout.display is None and e.busy.value == "" and not e.live_button.disabled
    e.path.value = "/nonexistent/x.pcap"  # what Enter (or leaving the box) sends
    assert "no such file" in e.error.value and "Traceback" not in e.error.value
    # nothing under the error belongs to another capture, and the example list names none
    assert e.exchanges.value == "" and e.ladder.layout.display == "none" and e.session.options == ()
    assert e.capture.value == "" and "Pick a capture" in e.status.value
    e.open_button.click()  # a retry after an error opens again, and fails again
    assert "no such file" in e.error.value and e.exchanges.value == ""
    e.capture.value = "imap-header-first"  # picking the same example again opens it again
    assert e.exchanges.value == shown[0] and e.error.value == ""
    assert e.path.value == ""  # the path box names no other file than the one on screen
    e.path.value = str(PEER / "pop3.pcap")
    assert e.error.value == "" and len(e.session.options) == 7
    assert e.session.value == 6 and "session #6" in e.exchanges.value  # the busiest session, not the empty #0
    assert "[empty]" in e.session.options[0][0] and "[empty]" not in e.session.options[6][0]
    assert e.capture.value == ""  # the example list does not name a capture opened by path
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


def _upload(content: bytes, name: str = "mine.pcap") -> tuple:
    return ({"name": name, "type": "", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},)


def test_uploads_count_only_accepted_files_and_the_same_file_opens_again():
    e = ex.Explorer()
    good = (ex.example_captures()["pop3-keep"]).read_bytes()
    e.upload.value = _upload(b"not a capture at all" * 3, "notes.pcap")
    assert "notes.pcap: not a pcap or pcapng file" in e.error.value and e.upload.value == ()
    e.upload.value = _upload(good)
    assert e.error.value == "" and len(e.upload.value) == 1 and "RETR" in e.exchanges.value
    e.capture.value = "imap-header-first"  # another capture: the upload no longer counts
    assert e.upload.value == () and "IMAP" in e.exchanges.value
    e.upload.value = _upload(good)  # the same file again is opened again
    assert "POP3" in e.exchanges.value and e.capture.value == ""


@pytest.mark.parametrize("make, expected", [
    (lambda tmp: "/dev/null", "/dev/null: not a capture file"),
    (lambda tmp: ex.example_captures()["pop3-keep"].read_bytes()[:40], "truncated"),
    (lambda tmp: b"# some text, not a capture\n", "not a pcap or pcapng file"),
])
def test_errors_speak_to_students(tmp_path, make, expected):
    made = make(tmp_path)
    path = made if isinstance(made, str) else tmp_path / "x.pcap"
    if not isinstance(made, str):
        path.write_bytes(made)
    with pytest.raises(ex.ExplorerError) as err:
        ex.open_capture(path)
    text = ex.one_line(err.value)
    assert expected in text and "magic" not in text and "\n" not in text


def test_long_paths_are_shortened():
    long = "/" + "/".join(["a-rather-long-folder-name"] * 6) + "/capture.pcap"
    short = ex.short_path(long)
    assert len(short) <= 60 and short.endswith("capture.pcap") and short.startswith("…")
    assert ex.short_path(Path.home() / "x.pcap") == "~/x.pcap"


def test_warnings_and_marks_are_shown_beside_the_session(tmp_path):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(ex.example_captures()["pop3-keep"].read_bytes()[:20000])
    e = ex.Explorer()
    e.path.value = str(cut)
    assert "[cut]" in e.session.options[0][0] and "truncated last record" in e.warnings.value
    assert "cut: the capture ends" in e.exchanges.value and "no reply in the capture" in e.exchanges.value
    e.path.value = str(PEER / "bad-list-retr-crafted.pcap")  # a crafted bad reply: the reason is on screen
    assert "unrecognized reply line" in e.warnings.value
    for text in (e.exchanges.value, e.warnings.value):
        assert "NaN" not in text and "nan<" not in text


def test_starttls_is_marked_encrypted_from_here():
    analysis = ex.open_capture(PEER / "imap-starttls.pcap")
    s = analysis.sessions[0]
    table = ex.exchanges_html(s, analysis=analysis)
    assert "encrypted from here" in table and table.index("STARTTLS") < table.index("encrypted from here")
    assert "[encrypted]" in ex.session_options(analysis)[0][0]


def test_the_table_speaks_in_units_and_scrolls():
    s = ex.open_capture(ex.example_captures()["pop3-keep"]).sessions[0]
    table = ex.exchanges_html(s)
    for heading in ("sent at (ms after connect)", "waited for the reply (ms)", "bytes down (server → client)"):
        assert heading in table
    assert "5,140" in table and "t_sent_s" not in table and "overflow:auto" in table


def test_a_long_session_groups_its_bytes_chart():
    analysis, _ = ex.live_capture("pop3", "download-all", messages=60, folder=None)
    try:
        s = analysis.sessions[0]
        assert len(s.exchanges) > ex.GROUP_ABOVE
        assert ex.bytes_png(s).startswith(PNG)
        assert "overflow:auto" in ex.exchanges_html(s)
    finally:
        shutil.rmtree(Path(analysis.path).parent, ignore_errors=True)


def test_an_exchange_reads_as_text_with_credentials_hidden():
    s = ex.open_capture(PEER / "pop3.pcap").sessions[6]
    texts = {e.command: views.exchange_text(s, e.index) for e in s.exchanges}
    assert texts["AUTH"]["command"].startswith("AUTH PLAIN") and "*" * 20 in texts["AUTH"]["command"]
    spans = [ev for ev in s.events if getattr(ev, "secret", False)]
    secret = s.connection.stream("up")[spans[0].start:spans[0].end]
    assert all(secret not in t["command"].encode() for t in texts.values())
    retr = next(e for e in s.exchanges if e.command == "RETR")
    t = views.exchange_text(s, retr.index)
    assert t["command"] == f"RETR {retr.arguments}" and t["reply"].startswith("+OK")
    assert t["reply_rest"] > 0 and len(t["reply"].splitlines()) == views.TEXT_LINES_DOWN
    shown = len(t["reply"].encode()) + t["reply_rest"] + views.TEXT_LINES_DOWN  # the CR of each shown line
    assert abs(shown - retr.bytes_down) <= views.TEXT_LINES_DOWN  # every byte is shown or counted
    e = ex.Explorer()
    e.path.value = str(PEER / "pop3.pcap")
    e.exchange.value = retr.index
    assert "server → client" in e.exchange_text.value and "more bytes" in e.exchange_text.value


def test_compare_two_sessions_side_by_side():
    e = ex.Explorer()
    e.capture.value = "imap-header-first"
    e.keep_button.click()
    assert "now open another session" in e.compare_table.value and e.compare.layout.display == "none"
    e.capture.value = "pop3-keep"
    table = e.compare_table.value
    assert "A: imap-header-first #0" in table and "B: pop3-keep #0" in table
    assert "13,487" in table and "31,149" in table  # bytes down of each, from the captures' sidecars
    assert bytes(e.compare.value).startswith(PNG) and e.compare.layout.display is None


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
        assert pcap.name in e.status.value and pcap.parent.name in e.status.value
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


def test_the_imaps_example_opens_with_the_key_log_beside_it():
    pcap = ex.example_captures()["imaps"]
    analysis = ex.open_capture(pcap)
    (s,) = analysis.sessions
    assert s.decrypted and "[decrypted]" in ex.session_options(analysis)[0][0]
    assert "decrypted with imaps.keylog" in s.warnings[0] and "918 up / 9,038 down" in s.warnings[0]
    assert not any("not IMAP or POP3" in w for w in analysis.warnings)
    if not shutil.which("tshark"):
        pytest.skip("tshark (the independent oracle) is not installed")
    port = 45209  # the sidecar's port
    out = subprocess.run(["tshark", "-r", str(pcap), "-o", f"tls.keylog_file:{pcap.with_suffix('.keylog')}",
                          "-d", f"tcp.port=={port},tls", "-d", f"tls.port=={port},imap", "-Y", "imap.request",
                          "-T", "fields", "-e", "imap.request"], capture_output=True, text=True, timeout=120)
    theirs = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    ours = [" ".join(p for p in (e.tag, e.command, e.arguments) if p) for e in s.exchanges]
    assert ours == theirs and len(ours) == 6
    text = views.exchange_text(s, 1)["command"]  # LOGIN: the key log reveals it, the explorer still masks it
    assert "throwaway-not-a-secret" not in text and text.startswith("ENOI1 LOGIN ***")


def test_a_wrong_key_log_is_a_warning_not_a_crash(tmp_path):
    pcap = tmp_path / "imaps.pcap"
    shutil.copy(ex.example_captures()["imaps"], pcap)
    (tmp_path / "imaps.keylog").write_text("# nothing useful\nCLIENT_RANDOM 00 11\n")
    with pytest.raises(ex.ExplorerError, match="no IMAP or POP3 session found.*not decrypted with imaps.keylog"):
        ex.open_capture(pcap)


def _explore(tmp_path, token: str) -> tuple[subprocess.Popen, str]:
    """``mailstudy explore`` on a free port with ``token`` given by environment; returns it and its URL line,
    read once it is printed (which is once Voilà listens)."""
    env = {**os.environ, "MAILSTUDY_EXPLORE_TOKEN": token, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "mailstudy.cli", "explore", "--port", "0"], cwd=ex.project_root(),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line


def _homes(tmp_path, proc) -> list[Path]:
    """The folders of ``mailstudy explore`` (process ``proc``): in its TMPDIR, or in SHORT_TEMP when that path is
    too long for its kernels' Unix sockets (as pytest's is)."""
    from mailstudy.processes import SHORT_TEMP

    return [h for root in (tmp_path, Path(SHORT_TEMP)) for h in root.glob(f"mailstudy-explore-{proc.pid}-*")]


def _wait_gone(tmp_path, proc, deadline_s: float = 60) -> list:
    import time

    end = time.monotonic() + deadline_s
    while time.monotonic() < end and _homes(tmp_path, proc):
        time.sleep(0.2)
    return _homes(tmp_path, proc)


@pytest.mark.slow
def test_explore_prints_its_url_once_listening_and_stops_with_128_plus_signal(tmp_path):
    import signal
    import socket
    import urllib.parse

    token = "not-in-the-process-list-42"
    finished = subprocess.Popen(["true"])  # its pid no longer runs: the owner of what a kill -9 of a tree left
    finished.wait()
    dead = tmp_path / f"mailstudy-explore-{finished.pid}-left"
    dead.mkdir()
    (dead / "kernel-x.json").write_text("{}")
    proc, line = _explore(tmp_path, token)
    try:
        assert "?token=" + token in line, line
        assert not dead.exists()  # swept at the start
        port = urllib.parse.urlparse(line.split(" at ")[1].split()[0]).port
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # listening when the URL is printed
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                assert token.encode() not in cmdline.read_bytes()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
        (home,) = _homes(tmp_path, proc)
        assert (home / "voila.json").stat().st_mode & 0o077 == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
        assert "stopped by SIGTERM" in proc.stderr.read()
        assert not _homes(tmp_path, proc)  # config and connection files removed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_explore_killed_leaves_no_connection_files(tmp_path):
    proc, line = _explore(tmp_path, "tok")
    try:
        assert "?token=tok" in line
        assert _homes(tmp_path, proc)
        proc.kill()  # SIGKILL: no cleanup of its own; the guardian removes the folder
        proc.wait()
        assert _wait_gone(tmp_path, proc) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_network_slider_replays_the_session_through_the_model():
    from mailstudy.faces.ladder import replayed
    from mailstudy.link import model

    s = ex.open_capture(ex.example_captures()["pop3-keep"]).sessions[0]
    arrows = replayed(s, "4g")
    whole = model.session_from_chunks(s.connection.chunk_tuples, s.t_start, exchanges=s.exchanges, time_scale=1.0)
    assert arrows[-1].t_end == pytest.approx(model.predict(whole, "4g")["duration_s"])  # the model's own total
    assert all(a.t_end >= a.t_start for a in arrows)
    assert all(b.t_start >= a.t_start for a, b in zip(arrows, arrows[1:]))  # time flows down
    e = ex.Explorer()
    e.capture.value = "pop3-keep"
    assert "on 4g" in e.network_summary.value and bytes(e.network_ladder.value).startswith(PNG)
    e.network.value = "satellite-geo"
    assert "on satellite-geo" in e.network_summary.value and e.error.value == ""
    slow = float(e.network_summary.value.split("<b>")[2].split(" ms")[0].replace(",", ""))
    fast = float(ex.on_network(s, "4g")[0].split("<b>")[2].split(" ms")[0].replace(",", ""))
    assert slow > fast > s.metrics["duration_s"] * 1000  # POP3's round trip per message costs more on a slower link


def test_the_radio_view_shows_each_states_time_and_energy():
    """The radio view walks every packet of the session through the radio model: the same ledger as
    `mailstudy energy` on the capture (one session, one client address), each state's seconds and joules in
    the table, the states under the ladder; off by default, on with the switch, gone with the capture."""
    from mailstudy.energy import get_model, ledger
    from mailstudy.energy.pcap import client_timelines, session_activities

    path = ex.example_captures()["pop3-keep"]
    s = ex.open_capture(path).sessions[0]
    (tl,), _ = client_timelines(path)
    acts = session_activities(path, s)
    assert acts == tl.activities and acts[0].t == 0.0  # one session: the client's timeline
    lte = ledger(get_model("lte"), acts)
    assert lte.joules["promotion"] == pytest.approx(0.2601 * 1.2107)  # Huang et al., Table 3
    table, png = ex.radio_view(s, "lte")
    assert png.startswith(PNG) and f"{lte.total_j:,.3f} J" in table
    for state in ("promotion", "transfer", "tail", "idle"):
        assert f"{lte.joules[state]:,.3f}</td>" in table and f"{lte.seconds[state]:,.3f}</td>" in table
    e = ex.Explorer()
    e.capture.value = "pop3-keep"
    assert e.radio_table.value == "" and e.radio.layout.display == "none"  # off until the student asks
    e.radio_on.value = True
    assert f"{lte.total_j:,.3f} J" in e.radio_table.value and bytes(e.radio.value).startswith(PNG)
    assert e.radio.layout.display is None and e.error.value == ""
    e.radio_model.value = "wifi"
    wifi = ledger(get_model("wifi"), acts)
    assert f"{wifi.total_j:,.3f} J" in e.radio_table.value and wifi.total_j < lte.total_j
    e.path.value = "/nonexistent/file.pcap"
    assert "no such file" in e.error.value and e.radio_table.value == "" and e.radio.layout.display == "none"
