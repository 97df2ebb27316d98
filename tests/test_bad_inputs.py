"""Bad inputs get a one-line answer, never a traceback, a hang or silence; flags that do not apply say so.

Also: ``serve`` stops on SIGINT even when started with SIGINT ignored, says "permission" for a port below 1024,
and a run keeps third-party caches out of the home directory.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import mailbox
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from cli_run import CLI, one_line_error, run

from mailstudy.corpus import CorpusError, check_mailbox_size, estimate_bytes, generate, load

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("port", ["-1", "0", "70000", "99999999999", "imap"])
def test_serve_port_out_of_range(port):
    one_line_error(run("serve", "--imap-port", port), "--imap-port")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-3"])
def test_replay_timeout_must_be_finite_and_positive(value):
    one_line_error(run("replay", REPO / "captures" / "pop3-keep.pcap", "--timeout", value), "--timeout")


def test_replay_exits_non_zero_when_a_session_fails(monkeypatch, capsys):
    """The report of a replay whose session broke down (as a ReplayReport says it) makes the exit status 1."""
    from mailstudy.cli import replay as cli_replay
    from mailstudy.offline import replay as offline_replay
    from mailstudy.offline.replay.report import ReplayReport, SessionReplay

    broken = SessionReplay(0, "pop3", "embedded", {}, None, failed=True)
    broken.warnings.append("replay failed: RuntimeError: boom")
    ok = SessionReplay(1, "pop3", "embedded", {}, {"bytes_up": 1})
    monkeypatch.setattr(offline_replay, "replay_pcap", lambda *a, **k: ReplayReport("f.pcap", [broken, ok]))
    args = argparse.Namespace(file="f.pcap", server="embedded", session=None, timeout=1.0, json=True)
    assert cli_replay.run(args) == cli_replay.EXIT_FAILED
    assert "session(s) 0 failed" in capsys.readouterr().err
    monkeypatch.setattr(offline_replay, "replay_pcap", lambda *a, **k: ReplayReport("f.pcap", [ok]))
    assert cli_replay.run(args) == 0


@pytest.mark.parametrize("command", ["analyze", "redact", "replay"])
def test_a_fifo_is_refused_without_blocking(tmp_path, command):
    fifo = tmp_path / "fifo.pcap"
    os.mkfifo(fifo)
    args = [fifo, tmp_path / "out.pcap"] if command == "redact" else [fifo]
    one_line_error(run(command, *args, timeout=60), "not a regular file")


def test_a_huge_mailbox_is_refused_with_its_estimate_and_the_flag_to_raise_the_limit():
    out = run("session", "--messages", "100000000", timeout=60)
    one_line_error(out, "--max-mailbox-gb")
    assert re.search(r"about [\d,.]+ GB", out.stderr)
    small = run("session", "--messages", "20", "--sizes", "fixed-5k", "--max-mailbox-gb", "0.00005")
    one_line_error(small, "--max-mailbox-gb")  # 20 x 5120 B plus their arrival headers: 267,808 B > 50 kB
    raised = run("session", "--messages", "20", "--sizes", "fixed-5k", "--max-mailbox-gb", "0.0003")
    assert raised.returncode == 0, raised.stderr


def test_the_estimate_is_exact_for_small_mailboxes_and_close_for_large_ones():
    assert estimate_bytes(300, "buchner2009", 4) == generate(300, "buchner2009", 4).total_bytes
    assert estimate_bytes(10**6, "fixed-5k", headers="minimal") == 5120 * 10**6
    with pytest.raises(CorpusError, match="about"):
        check_mailbox_size(10**8, "buchner2009", 0)


def test_generating_and_delivering_a_large_mailbox_shows_progress_on_a_terminal():
    """stderr is a pseudo-terminal, as in an interactive shell: tqdm's bars appear there (not on stdout)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal has a width
    proc = subprocess.Popen(CLI + ["session", "--messages", "2500", "--sizes", "fixed-5k", "--json"],
                            stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        out = proc.stdout.read()
        assert proc.wait(120) == 0
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"generating mail" in seen and b"delivering to alice" in seen
    assert out.lstrip().startswith("{")  # the JSON on stdout stays clean


def test_generate_reports_progress_through_its_callback():
    calls = []

    def bar(items, total, desc):
        calls.append((total, desc))
        return items

    assert len(generate(7, "fixed-5k", progress=bar)) == 7
    assert calls == [(7, "generating mail")]


# -- real mail with junk in it -------------------------------------------------------------------------------
def _maildir_with_junk(root: Path) -> Path:
    md = root / "md"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    for i, m in enumerate(generate(3, "fixed-5k", seed=1)):
        (md / "cur" / f"{1700000000 + i}.M{i}P1.host:2,S").write_bytes(m.raw)
    (md / "new" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(200))
    (md / "cur" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(100))
    (md / "cur" / "noise").write_bytes(bytes(range(256)) * 3)
    return md


def test_maildir_junk_is_skipped_with_a_warning_naming_each_file(tmp_path, caplog):
    md = _maildir_with_junk(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mailstudy.corpus"):
        corpus = load(md)
    assert [m.raw for m in corpus] == [m.raw for m in generate(3, "fixed-5k", seed=1)]
    text = caplog.text
    assert "photo.jpg" in text and "noise" in text and ".DS_Store" not in text  # dotfiles are not even looked at


def test_eml_folder_junk_is_skipped_and_the_session_passes_its_integrity_check(tmp_path):
    folder = tmp_path / "eml"
    folder.mkdir()
    for i, m in enumerate(generate(2, "fixed-5k", seed=2)):
        (folder / f"{i}.eml").write_bytes(m.raw)
    (folder / "._0.eml").write_bytes(b"\0\5\26\7 resource fork")
    (folder / "zz.eml").write_bytes(os.urandom(500).replace(b":", b"."))
    out = run("session", "--mailbox", folder, "--messages", "0", "--json")
    assert out.returncode == 0, out.stderr
    assert '"integrity_ok": true' in out.stdout and '"messages": 2' in out.stdout
    assert "zz.eml" in out.stderr and "._0.eml" not in out.stderr and "Traceback" not in out.stderr


def test_a_truncated_mbox_is_warned_about(tmp_path, caplog):
    whole = tmp_path / "whole.mbox"
    mb = mailbox.mbox(str(whole))
    for m in generate(3, "buchner2009", seed=5):
        mb.add(m.raw)
    mb.close()
    cut = tmp_path / "cut.mbox"
    cut.write_bytes(whole.read_bytes()[:-333])
    with caplog.at_level(logging.WARNING, logger="mailstudy.corpus"):
        load(whole)
        assert caplog.text == ""
        load(cut)
    assert "cut.mbox" in caplog.text and "cut short" in caplog.text


def test_a_cut_multipart_message_is_warned_about(tmp_path, caplog):
    big = next(m for m in generate(40, "buchner2009", seed=3) if b"multipart/mixed" in m.raw)
    path = tmp_path / "mp.mbox"
    body = big.raw.replace(b"\r\n", b"\n")
    cut_at = body.rindex(b"\n--") + 1  # drop the closing boundary line, keep the file ending in a line break
    path.write_bytes(b"From a@b Thu Jan  1 00:00:00 1970\n" + body[:cut_at] + b"\n")
    with caplog.at_level(logging.WARNING, logger="mailstudy.corpus"):
        load(path)
    assert "closing boundary" in caplog.text


# -- flags that do not apply -----------------------------------------------------------------------------------
def test_pop3_mode_on_imap_is_warned_about_and_not_echoed():
    out = run("session", "--protocol", "imap", "--pop3-mode", "delete", "--messages", "3", "--sizes", "fixed-5k",
              "--json")
    assert out.returncode == 0, out.stderr
    assert "--pop3-mode applies only to POP3 download-all" in out.stderr
    assert '"pop3_mode": null' in out.stdout and "delete" not in out.stdout


def test_sizes_with_a_mailbox_is_warned_about_and_marked_not_applicable(tmp_path):
    from mailstudy.corpus import save_eml

    save_eml(generate(2, "fixed-5k"), tmp_path / "mail")
    out = run("session", "--mailbox", tmp_path / "mail", "--sizes", "lognormal", "--messages", "0")
    assert out.returncode == 0, out.stderr
    assert "--sizes applies only to a generated mailbox" in out.stderr
    assert re.search(r"^sizes\s+n/a$", out.stdout, re.M) and "lognormal" not in out.stdout


# -- serve -------------------------------------------------------------------------------------------------------
def test_serve_stops_on_sigint_even_when_started_with_sigint_ignored():
    ignore = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731 - a background job's setting
    proc = subprocess.Popen(CLI + ["serve", "--messages", "2", "--sizes", "fixed-5k"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=ignore)
    try:
        for line in proc.stdout:
            if "Ctrl-C stops it" in line:
                break
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert "stopped." in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_privileged_port_says_it_is_a_permission_problem():
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is missing to switch to nobody")
        cmd = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + CLI
    else:
        cmd = CLI
    out = subprocess.run(cmd + ["serve", "--imap-port", "143", "--messages", "1"], capture_output=True, text=True,
                         timeout=120, cwd="/", env=dict(os.environ, PYTHONPATH=str(REPO), HOME="/tmp"))
    if "Permission denied" in out.stderr and "python" in out.stderr.lower() and out.returncode != 2:
        pytest.skip(f"nobody cannot run this interpreter: {out.stderr[-200:]}")
    one_line_error(out, "ports below 1024 need root or the CAP_NET_BIND_SERVICE capability")
    assert "already in use" not in out.stderr


# -- the home directory ----------------------------------------------------------------------------------------
USES_CACHES = """
import sys
if sys.argv[1] == "ours":
    from mailstudy.caches import keep_caches_in_project
    keep_caches_in_project()
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import scapy.all  # noqa: F401
plt.figure().savefig(sys.argv[2])
"""


@pytest.mark.parametrize("who", ["ours", "default"])
def test_third_party_caches_stay_out_of_home(tmp_path, who):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "IPYTHONDIR",
                                                            "XDG_CONFIG_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", USES_CACHES, who, str(tmp_path / "f.png")], capture_output=True,
                         text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    if who == "ours":  # scapy makes an empty ~/.config when there is none (said in the README)
        assert [p for p in left if p != ".config"] == []
    else:  # the control: the libraries' defaults do write there, so the check above can fail
        assert any("matplotlib" in p for p in left) and any("scapy" in p for p in left), left


def test_a_fresh_checkout_gives_ipython_its_folder_without_a_warning(tmp_path, monkeypatch):
    """On a fresh clone .cache/ does not exist yet; IPython (every notebook kernel) then warned "IPython parent
    ... is not a writable location" and used a temporary folder: the study printed it once per kernel."""
    from mailstudy import caches

    root = tmp_path / "checkout" / ".cache"
    monkeypatch.setattr(caches, "cache_root", lambda: root)
    env = {k: v for k, v in os.environ.items() if k not in caches.VARIABLES}
    caches.keep_caches_in_project(env)
    out = subprocess.run([sys.executable, "-W", "error", "-c", "import IPython.paths as p; print(p.get_ipython_dir())"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and "not a writable location" not in out.stderr, out.stderr[-500:]
    assert out.stdout.strip() == str(root / "ipython")
