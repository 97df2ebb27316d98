"""The command line as a user meets it: help, JSON output, clear errors, and a server to point clients at."""

from __future__ import annotations

import imaplib
import json
import re
import signal
import subprocess
import sys

import pytest

from mailstudy.cli.commands import COMMANDS

CLI = [sys.executable, "-m", "mailstudy.cli"]
REQUIRED = {"protocol", "strategy", "server", "server_version", "messages", "sizes", "seed", "read_fraction",
            "bytes_up", "bytes_down", "commands", "round_trips", "duration_s", "time_to_list_s",
            "bodies_fetched", "integrity_ok"}


def run(*args, timeout=120):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("sub", COMMANDS)
def test_every_subcommand_has_help(sub):
    out = run(sub, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: mailstudy {sub}") and "options:" in out.stdout


def test_top_level_help_lists_every_subcommand():
    out = run("--help")
    assert out.returncode == 0, out.stderr
    for sub in COMMANDS:
        assert re.search(rf"^\s+{sub}\s", out.stdout, re.M), sub


def test_session_json_has_the_promised_fields(server_kind):
    out = run("session", "--protocol", "pop3", "--strategy", "header-first", "--messages", "12",
              "--sizes", "fixed-5k", "--seed", "3", "--read-fraction", "0.5", "--server", server_kind, "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert REQUIRED <= set(row)
    assert row["server"] == server_kind and row["messages"] == 12 and row["integrity_ok"] is True
    assert row["bodies_fetched"] == 6 and row["commands"] == 6 + 12 + 6 + 1


def test_session_table_is_readable():
    out = run("session", "--messages", "5", "--sizes", "fixed-5k")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^bytes_down\s+[\d,]+$", out.stdout, re.M)
    assert re.search(r"^integrity_ok\s+True$", out.stdout, re.M)


@pytest.mark.parametrize("args,needle", [
    (["session", "--read-fraction", "2"], "--read-fraction"),
    (["session", "--sizes", "no-such-preset", "--messages", "2"], "no-such-preset"),
    (["session", "--protocol", "smtp"], "invalid choice"),
])
def test_bad_input_is_a_one_line_error_with_exit_2(args, needle):
    out = run(*args)
    assert out.returncode == 2
    assert needle in out.stderr and "Traceback" not in out.stderr


def test_port_in_use_is_a_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        out = run("serve", "--imap-port", str(s.getsockname()[1]), timeout=60)
    assert out.returncode == 2 and "already in use" in out.stderr and "Traceback" not in out.stderr


def test_serve_prints_how_to_connect_and_stops_on_ctrl_c():
    proc = subprocess.Popen(CLI + ["serve", "--messages", "3", "--sizes", "fixed-5k"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any("Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        text = "".join(lines)
        port = int(re.search(r"IMAP\s+127\.0\.0\.1:(\d+)", text).group(1))
        user = re.search(r"user\s+(\S+)", text).group(1)
        password = re.search(r"password\s+(\S+)", text).group(1)
        with imaplib.IMAP4("127.0.0.1", port, timeout=20) as c:
            c.login(user, password)
            assert int(c.select("INBOX")[1][0]) == 3
            c.logout()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_session_on_a_real_mailbox_and_a_clear_error_for_a_missing_one(tmp_path):
    from mailstudy.corpus import generate, save_eml

    save_eml(generate(4, "fixed-5k", seed=2, headers="minimal"), tmp_path / "mail")
    out = run("session", "--mailbox", str(tmp_path / "mail"), "--messages", "0", "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert row["messages"] == 4 and row["mailbox_bytes"] == 4 * 5120 and row["integrity_ok"] is True
    missing = run("session", "--mailbox", str(tmp_path / "nothing-here"))
    assert missing.returncode == 2 and "nothing-here" in missing.stderr and "Traceback" not in missing.stderr
