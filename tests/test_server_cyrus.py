"""Cyrus as a third server: lifecycle, byte-exact delivery, failures that say why, and the IMAP and POP3
strategies with integrity checked, against Debian's real Cyrus binaries.

Why: every Cyrus number (and every JMAP number, which only Cyrus serves) rests on this wrapper starting a private
instance that serves exactly the mail we gave it, that a failed start says why (Cyrus logs only to syslog), and
that nothing of it outlives a run.
"""

from __future__ import annotations

import imaplib
import json
import os
import poplib
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mailstudy.corpus import generate
from mailstudy.live.access import Known, SessionSpec, run_session
from mailstudy.processes import group_members, running
from mailstudy.servers import make_server
from mailstudy.servers.base import DEFAULT_ACCOUNT, PortInUseError, ServerError, free_port
from mailstudy.servers.cyrus import SESSIONID_TEXT, CyrusServer, crlf, find_programs, namespace_command

pytestmark = [pytest.mark.cyrus, pytest.mark.usefixtures("cyrus_usable")]

USER, PASSWORD = DEFAULT_ACCOUNT.user, DEFAULT_ACCOUNT.password
REPO = Path(__file__).resolve().parents[1]


def message(i: int, body: bytes = b"") -> bytes:
    return (b"From: Sender <sender@example.org>\r\nTo: alice@example.org\r\n"
            b"Subject: message %d\r\nMessage-ID: <%d@mailstudy.test>\r\n"
            b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n" % (i, i)
            + (body or b"Body of message %d.\r\nSecond line.\r\n" % i))


DOTTED = message(3, b".starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n")
EIGHT_BIT = message(4).replace(b"Subject: message 4", "Subject: Grüße aus Köln".encode())
MAILBOX = [message(1), message(2), DOTTED, EIGHT_BIT] + [message(i) for i in range(5, 13)]


@pytest.fixture(scope="module")
def server():
    with CyrusServer(mailboxes={USER: MAILBOX}) as s:
        yield s


def imap_login(s) -> imaplib.IMAP4:
    c = imaplib.IMAP4(s.host, s.imap_port, timeout=10)
    c.login(USER, PASSWORD)
    return c


def _cmdlines_with(marker: bytes) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                pass
    return found


def test_make_server_knows_cyrus_and_its_version():
    s = make_server("cyrus")
    assert isinstance(s, CyrusServer)
    assert re.match(r"^Cyrus IMAP 3\.\d+\.\d+", s.version)


def test_start_stop_leaves_no_process_and_no_files():
    s = CyrusServer(mailboxes={USER: [message(1)]})
    s.start()
    pid, workdir = s.pid, s.workdir
    assert pid is not None and group_members(pid), "Cyrus's master should be running"
    reader = s._reader
    assert workdir.is_dir() and s.http_port not in (0, s.imap_port, s.pop3_port)
    s.stop()
    assert group_members(pid) == {}
    assert reader is None or not reader.is_alive()
    assert not workdir.exists(), "the private folder should be removed at stop"
    assert _cmdlines_with(str(workdir).encode()) == []
    assert not s.running and s.pid is None


def test_login_ok_and_wrong_password_refused_on_imap_and_pop3(server):
    c = imap_login(server)
    assert c.state == "AUTH"
    c.logout()
    c = imaplib.IMAP4(server.host, server.imap_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="authentication failure"):
        c.login(USER, PASSWORD + "-wrong")
    c.shutdown()
    p = poplib.POP3(server.host, server.pop3_port, timeout=10)
    p.user(USER)
    with pytest.raises(poplib.error_proto, match="Invalid login"):
        p.pass_(PASSWORD + "-wrong")
    p.close()


def test_bodies_are_byte_exact_in_list_order(server):
    c = imap_login(server)
    typ, data = c.select("INBOX", readonly=True)
    assert (typ, int(data[0])) == ("OK", len(MAILBOX))
    for seq in (1, 3, 4, len(MAILBOX)):  # 3 has lines starting with ".", 4 has 8-bit header bytes
        typ, data = c.fetch(str(seq), "(UID BODY.PEEK[])")
        assert typ == "OK"
        assert re.search(rb"UID %d\b" % seq, data[0][0]), "UIDs must follow the list order"
        assert data[0][1] == MAILBOX[seq - 1]
    typ, data = c.fetch("1:2", "(INTERNALDATE)")
    dates = [re.search(rb'INTERNALDATE "([^"]+)"', d).group(1) for d in data]
    assert dates[0] != dates[1], "each message gets its own fixed INTERNALDATE"
    c.logout()


def test_pop3_list_octets_and_retr_match_the_original(server):
    p = poplib.POP3(server.host, server.pop3_port, timeout=10)
    assert b"<" not in p.getwelcome(), "no APOP challenge: the greeting is the same every run"
    p.user(USER)
    p.pass_(PASSWORD)
    _, listing, _ = p.list()
    assert [int(line.split()[1]) for line in listing] == [len(m) for m in MAILBOX]
    for n in (1, 3, 4):
        _, lines, octets = p.retr(n)
        assert b"\r\n".join(lines) + b"\r\n" == MAILBOX[n - 1]
        assert octets == len(MAILBOX[n - 1])
    p.quit()


def test_jmap_session_resource_answers_for_the_account(server):
    req = urllib.request.Request(f"http://{server.host}:{server.http_port}/jmap/")
    req.add_header("Authorization", "Basic " + __import__("base64").b64encode(f"{USER}:{PASSWORD}".encode())
                   .decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        session = json.load(resp)
    assert session["username"] == USER
    assert "urn:ietf:params:jmap:mail" in session["capabilities"]


def test_syslog_is_collected(server):
    if namespace_command()[1]:
        pytest.skip(f"no private mount namespace here: {namespace_command()[1]}")
    c = imap_login(server)
    c.logout()
    assert re.search(r"login: .*alice", server.log_text()), server.log_text()[-2000:]


def test_deliver_while_running_shows_up_and_bare_lf_becomes_crlf():
    bare = b"Subject: bare\nFrom: a@example.org\n\nline one\nline two\n"
    with CyrusServer(mailboxes={USER: [message(1)]}) as s:
        s.deliver(USER, message(99, b"delivered while running\r\n"))
        s.deliver(USER, bare)
        c = imap_login(s)
        assert int(c.select("INBOX", readonly=True)[1][0]) == 3
        assert c.fetch("2", "(BODY.PEEK[])")[1][0][1] == message(99, b"delivered while running\r\n")
        assert c.fetch("3", "(BODY.PEEK[])")[1][0][1] == crlf(bare) == bare.replace(b"\n", b"\r\n")
        c.logout()


def test_a_refused_delivery_is_one_clear_error(server):
    with pytest.raises(ServerError, match=r"Cyrus refused A0 for 'alice': NO .*(exist|not found)"):
        server.deliver(USER, message(1), folder="No-Such-Folder")


def test_a_missing_program_fails_with_cyrus_own_words_and_leaves_nothing():
    programs = dict(find_programs())
    programs["pop3d"] = "/nonexistent/pop3d"
    s = CyrusServer(programs=programs, start_timeout=10)
    expect = "cannot find executable for service 'pop3'" if not namespace_command()[1] else "status 78"
    with pytest.raises(ServerError, match=re.escape(expect)):
        s.start()
    assert not s.running and not s.workdir.exists()
    assert _cmdlines_with(str(s.workdir).encode()) == []


def test_without_a_namespace_cyrus_runs_and_a_failure_says_its_log_was_not_collected(monkeypatch):
    import mailstudy.servers.cyrus as cyrus

    monkeypatch.setattr(cyrus, "namespace_command", lambda: ((), "namespaces are off in this test"))
    with CyrusServer(mailboxes={USER: [message(1)]}) as s:
        c = imap_login(s)
        c.select("INBOX", readonly=True)
        assert c.fetch("1", "(BODY.PEEK[])")[1][0][1] == message(1)
        c.logout()
        assert s.log_text() == ""
    programs = dict(find_programs())
    programs["imapd"] = "/nonexistent/imapd"
    with pytest.raises(ServerError, match="status 78; nothing was logged .*not collected here: namespaces are off"):
        CyrusServer(programs=programs, start_timeout=10).start()


def test_cyrus_missing_names_the_package(monkeypatch):
    import mailstudy.servers.cyrus as cyrus

    monkeypatch.setattr(cyrus, "BIN", Path("/nonexistent/cyrus/bin"))
    assert "cyrus-common" in cyrus.cyrus_available()
    with pytest.raises(ServerError, match="package cyrus-common not installed.*never cyrus-imapd"):
        CyrusServer().start()


def test_explicit_http_port_in_use_is_reported():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} .*already in use"):
            CyrusServer(http_port=port).start()


def test_bind_failure_inside_cyrus_is_reported_as_port_in_use():
    if namespace_command()[1]:
        pytest.skip(f"Cyrus's bind errors are only in its syslog, not collected here: {namespace_command()[1]}")
    with socket.socket() as busy:  # on 0.0.0.0 after the ports were chosen: only Cyrus's own bind fails
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        s = CyrusServer(start_timeout=10)
        s.imap_port, s.pop3_port = busy.getsockname()[1], free_port()
        with pytest.raises(PortInUseError, match=f"port {s.imap_port} on 127.0.0.1 \\(imap\\) is already in use"):
            s._start()
    assert not s.workdir.exists()


def test_disabling_capabilities_is_refused():
    with pytest.raises(ValueError, match="cannot switch off IDLE"):
        CyrusServer(disabled={"IDLE"})


_AS_USER = """
import imaplib, json, os
from mailstudy.processes import group_members
from mailstudy.servers.cyrus import CyrusServer
msgs = [b"Subject: %d\\r\\n\\r\\nbody\\r\\n" % i for i in range(5)]
with CyrusServer(mailboxes={"alice": msgs}) as s:
    c = imaplib.IMAP4(s.host, s.imap_port, timeout=10)
    c.login("alice", "wonderland-42")
    count = int(c.select("INBOX")[1][0])
    body = c.fetch("5", "(BODY.PEEK[])")[1][0][1]
    c.logout()
    pid = s.pid
    uid = os.stat(f"/proc/{pid}").st_uid
    logged = "login:" in s.log_text()
print(json.dumps({"euid": os.geteuid(), "master_uid": uid, "count": count, "body_ok": body == msgs[4],
                  "logged": logged, "left": len(group_members(pid))}))
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
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["euid"] != 0 and result["master_uid"] == result["euid"]
    assert (result["count"], result["body_ok"], result["left"]) == (5, True, 0)


# -- the access strategies on Cyrus, integrity checked -------------------------------------------------------
@pytest.fixture(scope="module")
def corpus():
    return generate(30, "buchner2009", seed=3)


@pytest.mark.parametrize("protocol,strategy", [("imap", "header-first"), ("imap", "download-all"),
                                               ("pop3", "header-first"), ("pop3", "download-all")])
def test_strategies_run_with_integrity_and_repeatable_counts(corpus, protocol, strategy):
    known = Known(corpus.raws())
    spec = SessionSpec(protocol, strategy, read_fraction=0.2 if strategy == "header-first" else 0.0, seed=3)
    runs = []
    for _ in range(2):
        with CyrusServer(mailboxes={USER: corpus.raws()}) as s:
            runs.append(run_session(s.host, s.imap_port, s.pop3_port, USER, PASSWORD, spec, known))
    first = runs[0]
    assert first.integrity_ok
    opened = round(0.2 * 30) if strategy == "header-first" else 0
    assert (first.headers_fetched, first.bodies_fetched) == ((30, opened) if strategy == "header-first"
                                                             else (0, 30))
    for key in ("bytes_up", "commands", "round_trips"):
        assert runs[0].metrics[key] == runs[1].metrics[key], key
    # bytes down repeat exactly but for the SESSIONID in IMAP's LOGIN reply (imaplib's random tags keep their
    # length)
    down = [r.metrics["bytes_down"] - sum(map(len, SESSIONID_TEXT.findall(r.trace.stream("down")))) for r in runs]
    assert down[0] == down[1]
    if strategy == "download-all":
        assert first.metrics["bytes_down"] > corpus.total_bytes


# -- nothing outlives a run ------------------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_stopped_or_killed_session_leaves_nothing(sig, tmp_path):
    from test_lifetimes import CLI, WAIT_S, _cmd, _pgid, _until, descendants, leftovers

    proc = subprocess.Popen(CLI + ["session", "--server", "cyrus", "--protocol", "pop3", "--strategy",
                                   "download-all", "--messages", "400", "--sizes", "fixed-5k"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _until(lambda: any("cyrus/bin/master" in _cmd(p) for p in descendants(proc.pid)) or proc.poll() is not None)
        ours = {p: _cmd(p) for p in descendants(proc.pid)}
        groups = {g for g in map(_pgid, ours) if g is not None}
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(sig)
        status = proc.wait(WAIT_S)
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in stderr, stderr
    if sig != signal.SIGKILL:
        assert status in (0, 128 + sig), (status, stderr)
    gone = _until(lambda: not [p for p in ours if running(p) and _cmd(p) == ours[p]]
                  and not [g for g in groups if group_members(g)], timeout=30)
    assert gone, {p: ours[p] for p in ours if running(p)}
    assert _until(lambda: not leftovers(proc.pid, tmp_path), timeout=30), leftovers(proc.pid, tmp_path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serve_announces_jmap_and_a_term_leaves_nothing(tmp_path):
    from test_lifetimes import CLI, WAIT_S, _cmd, _pgid, _until, descendants, leftovers

    proc = subprocess.Popen(CLI + ["serve", "--server", "cyrus", "--messages", "3", "--sizes", "fixed-5k"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "Ctrl-C stops it" in line:
                break
        url = next(ln.split()[1] for ln in seen if ln.strip().startswith("JMAP"))
        req = urllib.request.Request(url, headers={"Authorization": "Basic " + __import__("base64").b64encode(
            f"{USER}:{PASSWORD}".encode()).decode()})
        with urllib.request.urlopen(req, timeout=10) as resp:  # follows the redirect to the session resource
            assert json.load(resp)["username"] == USER
        ours = {p: _cmd(p) for p in descendants(proc.pid)}
        groups = {g for g in map(_pgid, ours) if g is not None}
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(WAIT_S)
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == 0 and "Traceback" not in stderr, (status, stderr)
    assert _until(lambda: not [p for p in ours if running(p) and _cmd(p) == ours[p]]
                  and not [g for g in groups if group_members(g)], timeout=30)
    assert _until(lambda: not leftovers(proc.pid, tmp_path), timeout=30), leftovers(proc.pid, tmp_path)


# -- the extraction beside Dovecot -------------------------------------------------------------------------------
def test_extraction_is_idempotent_and_is_what_the_server_runs():
    from mailstudy.servers.cyrus_install import common_version, extract

    found = find_programs()
    version_folder = found["imapd"].parents[4]  # FOLDER/VERSION/usr/lib/cyrus/bin/imapd
    assert version_folder.name == common_version()
    again = extract(version_folder.parent, common_version())  # present: kept, nothing downloaded
    assert again / "usr/lib/cyrus/bin/imapd" == found["imapd"]


def test_an_unknown_version_fails_with_one_clear_line(tmp_path):
    from mailstudy.servers.cyrus_install import InstallError, extract

    with pytest.raises(InstallError, match=r"apt-get download cyrus-imapd=0\.0-none cyrus-pop3d=0\.0-none failed"):
        extract(tmp_path, "0.0-none")
    assert not any(tmp_path.iterdir()), "nothing half-made is left"
