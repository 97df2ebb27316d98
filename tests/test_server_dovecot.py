"""Lifecycle and error behaviour of the Dovecot server wrapper, against the real Dovecot binaries.

Why: every Dovecot number in the study rests on this wrapper starting a private instance that serves exactly
the mail we gave it, and on it never leaving a process behind. (The protocol conformance suite for both servers
lives elsewhere.)
"""

from __future__ import annotations

import imaplib
import json
import os
import poplib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mailstudy.processes import group_members
from mailstudy.servers.base import DEFAULT_ACCOUNT, ServerError, free_port
from mailstudy.servers.dovecot import DovecotServer, dovecot_available

# every test here needs Dovecot: skipped where it cannot run, failed under CI (tests/needs.py)
pytestmark = [pytest.mark.dovecot, pytest.mark.usefixtures("dovecot_usable")]

USER, PASSWORD = DEFAULT_ACCOUNT.user, DEFAULT_ACCOUNT.password
REPO = Path(__file__).resolve().parents[1]


def message(i: int, body: bytes = b"") -> bytes:
    """A small CRLF RFC 5322 message; ``body`` replaces the default body."""
    return (b"From: Sender <sender@example.org>\r\nTo: alice@example.org\r\n"
            b"Subject: message %d\r\nMessage-ID: <%d@mailstudy.test>\r\n"
            b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n" % (i, i)
            + (body or b"Body of message %d.\r\nSecond line.\r\n" % i))


DOTTED = message(3, b".starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n")
MAILBOX = [message(1), message(2), DOTTED] + [message(i) for i in range(4, 41)]


def running_in_group(pgid: int) -> dict[int, str]:
    return group_members(pgid)


@pytest.fixture(scope="module")
def server():
    with DovecotServer(mailboxes={USER: MAILBOX}) as s:
        yield s


def imap_login(s: DovecotServer) -> imaplib.IMAP4:
    c = imaplib.IMAP4(s.host, s.imap_port, timeout=10)
    c.login(USER, PASSWORD)
    return c


def test_start_stop_leaves_no_process_and_no_files():
    s = DovecotServer(mailboxes={USER: [message(1)]})
    s.start()
    pid, workdir = s.pid, s.workdir
    assert pid is not None and running_in_group(pid), "Dovecot's master and its services should be running"
    assert workdir.is_dir()
    s.stop()
    assert running_in_group(pid) == {}
    assert not workdir.exists(), "the temporary private directory should be removed at stop"
    assert not s.running and s.pid is None


def test_login_ok_and_wrong_password_refused(server):
    c = imap_login(server)
    assert c.state == "AUTH"
    c.logout()
    c = imaplib.IMAP4(server.host, server.imap_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED|Authentication failed"):
        c.login(USER, PASSWORD + "-wrong")
    c.shutdown()


def test_select_count_and_bodies_are_byte_exact_in_list_order(server):
    c = imap_login(server)
    typ, data = c.select("INBOX", readonly=True)
    assert (typ, int(data[0])) == ("OK", len(MAILBOX))
    for seq in (1, 3, len(MAILBOX)):  # 3 holds lines starting with "."
        typ, data = c.fetch(str(seq), "(UID BODY.PEEK[])")
        assert typ == "OK"
        assert re.search(rb"UID %d\b" % seq, data[0][0]), "UIDs must follow the list order"
        assert data[0][1] == MAILBOX[seq - 1]
    c.logout()


def test_pop3_list_octets_and_retr_match_the_original(server):
    p = poplib.POP3(server.host, server.pop3_port, timeout=10)
    p.user(USER)
    p.pass_(PASSWORD)
    _, listing, _ = p.list()
    assert [int(line.split()[1]) for line in listing] == [len(m) for m in MAILBOX]
    for n in (1, 3):
        _, lines, octets = p.retr(n)
        # poplib removes the dot-stuffing and the line ends; every test message ends with CRLF.
        assert b"\r\n".join(lines) + b"\r\n" == MAILBOX[n - 1]
        assert octets == len(MAILBOX[n - 1])
    p.quit()


def test_log_has_no_errors_after_sessions(server):
    c = imap_login(server)
    c.select("INBOX")
    c.logout()
    assert server.log_errors() == []
    assert "Login: user=<alice>" in server.log_text()


def test_deliver_shows_up_in_a_new_session():
    new = message(99, b"delivered while running\r\n")
    with DovecotServer(mailboxes={USER: [message(1)]}) as s:
        s.deliver(USER, new)
        c = imap_login(s)
        typ, data = c.select("INBOX", readonly=True)
        assert int(data[0]) == 2
        typ, data = c.fetch("2", "(BODY.PEEK[])")
        assert data[0][1] == new
        c.logout()


def test_hidden_imap_capability_is_not_announced():
    with DovecotServer(disabled={"IDLE", "CONDSTORE"}) as s:
        c = imap_login(s)
        caps = set(c.capability()[1][0].decode().upper().split())
        c.logout()
    assert "IDLE" not in caps and "CONDSTORE" not in caps
    assert "QRESYNC" not in caps, "QRESYNC implies CONDSTORE and must go with it"
    assert {"IMAP4REV1", "UIDPLUS", "ENABLE"} <= caps


@pytest.mark.parametrize("cap", ["UIDL", "PIPELINING", "TOP"])
def test_pop3_capabilities_cannot_be_disabled(cap):
    with pytest.raises(ValueError, match=f"cannot switch off POP3 capability {cap}"):
        DovecotServer(disabled={cap})


def test_unknown_capability_is_refused():
    with pytest.raises(ValueError, match="XNOSUCH"):
        DovecotServer(disabled={"XNOSUCH"})


def test_explicit_port_in_use_is_reported():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} .*already in use"):
            DovecotServer(imap_port=port).start()


def test_bind_failure_in_dovecot_is_reported_as_port_in_use():
    # Something on 0.0.0.0 takes the port after the ports were chosen: only Dovecot's own bind fails.
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        s = DovecotServer()
        s.imap_port, s.pop3_port = busy.getsockname()[1], free_port()
        with pytest.raises(ServerError, match=f"port {s.imap_port} on 127.0.0.1 is already in use"):
            s._start()
    assert not s.workdir.exists()


def test_failed_start_shows_the_log_and_leaves_nothing_behind():
    s = DovecotServer(extra_config="no_such_setting_here = 1\n")
    with pytest.raises(ServerError, match="no_such_setting_here"):
        s.start()
    assert not s.running
    assert not s.workdir.exists()
    marker = str(s.workdir).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                assert marker not in (entry / "cmdline").read_bytes()
            except OSError:
                pass


def test_missing_binary_says_how_to_install():
    with pytest.raises(ServerError, match="apt-get install dovecot-imapd dovecot-pop3d"):
        DovecotServer(binary="/nonexistent/dovecot").start()
    assert "not installed" in dovecot_available("/nonexistent/dovecot")


def test_version_is_dovecots():
    assert re.match(r"^\d+\.\d+\.\d+", DovecotServer().version)


def test_workdir_is_kept_and_restart_starts_from_the_same_mail():
    wd = Path(tempfile.mkdtemp(prefix="mailstudy-test-"))
    try:
        s = DovecotServer(mailboxes={USER: [message(1), message(2)]}, workdir=wd)
        for _ in range(2):
            with s:
                s.deliver(USER, message(3))
                c = imap_login(s)
                assert int(c.select("INBOX", readonly=True)[1][0]) == 3
                c.logout()
        assert (wd / "dovecot.log").is_file() and (wd / "dovecot.conf").is_file()
    finally:
        shutil.rmtree(wd, ignore_errors=True)


_AS_USER = """
import imaplib, json, os
from mailstudy.processes import group_members
from mailstudy.servers.dovecot import DovecotServer
msgs = [b"Subject: %d\\r\\n\\r\\nbody\\r\\n" % i for i in range(5)]
with DovecotServer(mailboxes={"alice": msgs}) as s:
    c = imaplib.IMAP4(s.host, s.imap_port, timeout=10)
    c.login("alice", "wonderland-42")
    count = int(c.select("INBOX")[1][0])
    body = c.fetch("5", "(BODY.PEEK[])")[1][0][1]
    c.logout()
    pid, errors = s.pid, s.log_errors()
    uid = os.stat(f"/proc/{pid}").st_uid
print(json.dumps({"euid": os.geteuid(), "master_uid": uid, "count": count, "body_ok": body == msgs[4],
                  "errors": errors, "left": len(group_members(pid))}))
"""


def test_runs_as_a_non_root_user():
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is missing to switch to nobody")
        cmd = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", _AS_USER]
    else:
        cmd = [sys.executable, "-c", _AS_USER]
    env = dict(os.environ, PYTHONPATH=str(REPO), HOME="/tmp")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["euid"] != 0 and result["master_uid"] == result["euid"]
    assert (result["count"], result["body_ok"], result["errors"], result["left"]) == (5, True, [], 0)
