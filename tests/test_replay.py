"""Replay: captured sessions of our engine, curl, fetchmail and mbsync, replayed on fresh real servers.

What must hold: replaying our own engine's captures on the same server kind (embedded -> embedded) gives the same
commands and round trips exactly and the same bytes each way, and every message fetched whole comes back byte for
byte; an embedded capture replays on Dovecot with the same commands and round trips (greeting, capability and
SELECT texts, Dovecot's timing text differ, so bytes are not compared across kinds); other clients' captures
(credentials different from the new server's) replay with the same commands and flights and every exchange OK.
The pure parts (UID set mapping, credential rewriting, flight cutting, filler) are checked without servers.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mailstudy.offline.replay import (ReplayFlight, Target, apply_edits, filler, map_uid_set, replay_pcap,
                                     rewrite_client_stream)
from mailstudy.servers import make_server
from mailstudy.servers.base import Account

ALICE = Account("alice", "wonderland-42")
BOB = Account("bob", "builder 7")  # a space: LOGIN must quote it
import needs
from peers import PEER


def apply_edits_edits(up: bytes, edits) -> bytes:
    f = [ReplayFlight(0, len(up), Target(True, 0, 0, True))]
    apply_edits(up, f, edits)
    return f[0].data


# ---- pure parts ------------------------------------------------------------------------------------------------
def test_uid_sets_map_element_wise_and_stay_unchanged_when_already_fresh():
    shifted = {3: 1, 4: 2, 7: 3}
    assert map_uid_set("3", shifted) == ("1", [])
    assert map_uid_set("3:7", shifted) == ("1:3", [])
    assert map_uid_set("4:*", shifted) == ("2:*", [])
    assert map_uid_set("1:*", shifted) == ("1:*", [])
    assert map_uid_set("3,7", shifted) == ("1,3", [])
    assert map_uid_set("8:*", shifted) == ("4:*", [])  # past the end stays past the end
    kept, warnings = map_uid_set("5", shifted)
    assert kept == "5" and "not a UID the capture showed" in warnings[0]
    fresh = {1: 1, 2: 2, 3: 3}
    for text in ("1:3", "2", "1,3", "2:*", "1:*"):
        assert map_uid_set(text, fresh) == (text, [])


def test_imap_credentials_are_mapped_in_the_form_they_were_sent():
    up = (b'a1 LOGIN bob "builder 7"\r\n'
          b"a2 LOGIN {3}\r\nbob {9}\r\nbuilder 7\r\n"
          b"a3 UID FETCH 3:7 (BODY.PEEK[])\r\n"
          b"a4 FETCH 3 BODY[]\r\n")
    edits, warnings = rewrite_client_stream("imap", [("down", b"* OK hi\r\n"), ("up", up)], ALICE,
                                             {3: 1, 4: 2, 7: 3})
    assert warnings == []
    assert apply_edits_edits(up, edits) == (b'a1 LOGIN alice "wonderland-42"\r\n'
                                       b"a2 LOGIN {5}\r\nalice {13}\r\nwonderland-42\r\n"
                                       b"a3 UID FETCH 1:3 (BODY.PEEK[])\r\n"
                                       b"a4 FETCH 3 BODY[]\r\n")


def test_sasl_plain_and_login_are_mapped_with_and_without_initial_response():
    """SASL lines are the ones the server asked for with ``+`` (the parser's rule, the same as redaction's)."""
    plain_bob = base64.b64encode(b"\0bob\0builder 7")
    plain_alice = base64.b64encode(b"\0alice\0wonderland-42")
    go = ("down", b"+ \r\n")
    chunks = [("down", b"* OK hi\r\n"),
              ("up", b"A AUTHENTICATE PLAIN " + plain_bob + b"\r\n"), ("down", b"A OK\r\n"),
              ("up", b"B AUTHENTICATE PLAIN\r\n"), go, ("up", plain_bob + b"\r\n"), ("down", b"B OK\r\n"),
              ("up", b"C AUTHENTICATE LOGIN\r\n"), go, ("up", base64.b64encode(b"bob") + b"\r\n"), go,
              ("up", base64.b64encode(b"builder 7") + b"\r\n"), ("down", b"C OK\r\n"), ("up", b"D NOOP\r\n")]
    up = b"".join(d for k, d in chunks if k == "up")
    edits, _ = rewrite_client_stream("imap", chunks, ALICE)
    assert apply_edits_edits(up, edits) == (b"A AUTHENTICATE PLAIN " + plain_alice + b"\r\n" +
                                       b"B AUTHENTICATE PLAIN\r\n" + plain_alice + b"\r\n" +
                                       b"C AUTHENTICATE LOGIN\r\n" + base64.b64encode(b"alice") + b"\r\n" +
                                       base64.b64encode(b"wonderland-42") + b"\r\nD NOOP\r\n")
    # without the server's "+" a line is a command, not a SASL response: left alone (redaction agrees)
    unasked = [("down", b"* OK hi\r\n"), ("up", b"B AUTHENTICATE PLAIN\r\n" + plain_bob + b"\r\n")]
    assert rewrite_client_stream("imap", unasked, ALICE)[0] == []
    pop = [("down", b"+OK hi\r\n"), ("up", b"USER bob\r\nPASS builder 7\r\nAUTH PLAIN\r\n"),
           ("down", b"+OK\r\n+OK\r\n+ \r\n"), ("up", plain_bob + b"\r\n"), ("down", b"+OK\r\n"),
           ("up", b"STAT\r\nAPOP bob 0123\r\n")]
    pop_up = b"".join(d for k, d in pop if k == "up")
    edits, warnings = rewrite_client_stream("pop3", pop, ALICE)
    assert apply_edits_edits(pop_up, edits) == (b"USER alice\r\nPASS wonderland-42\r\nAUTH PLAIN\r\n" + plain_alice +
                                           b"\r\nSTAT\r\nAPOP bob 0123\r\n")
    assert any("APOP" in w for w in warnings)


def test_rewritten_stream_is_cut_into_the_same_flights():
    up = b"a LOGIN {3}\r\nbob {9}\r\nbuilder 7\r\nb LOGOUT\r\n"
    cut1 = up.index(b"bob")
    cut2 = up.index(b"builder")
    cut3 = up.index(b"b LOGOUT")
    flights = [ReplayFlight(0, cut1, Target(True, 0, 1, True)), ReplayFlight(cut1, cut2, Target(True, 0, 2, True)),
               ReplayFlight(cut2, cut3, Target(True, 1, 2, True)), ReplayFlight(cut3, len(up), Target(True, 2, 2, True))]
    edits, _ = rewrite_client_stream("imap", [("down", b"* OK hi\r\n"), ("up", up)], ALICE)
    apply_edits(up, flights, edits)
    assert [f.data for f in flights] == [b"a LOGIN {5}\r\n", b"alice {13}\r\n", b"wonderland-42\r\n",
                                         b"b LOGOUT\r\n"]


def test_filler_reaches_the_size_exactly():
    head = b"Subject: x\r\n\r\n"
    for size in (0, 5, len(head), len(head) + 1, len(head) + 2, 1000, 5003):
        out = filler(size, head)
        assert out.startswith(head[:size] if size < len(head) else head)
        assert len(out) == max(size, len(head))


# ---- captures ----------------------------------------------------------------------------------------------------
def _packet_backend_or_skip() -> str:
    """A backend that sees what a separate client process sends (not rebuilt from our own trace)."""
    from mailstudy.capture import CaptureError, choose_backend

    try:
        backend, _ = choose_backend("auto")
    except CaptureError as exc:
        pytest.skip(f"no capture backend can run here: {exc}")
    if backend == "rebuilt":
        pytest.skip("capturing another program needs tcpdump or CAP_NET_RAW (only the rebuilt backend can run)")
    return backend


OWN = {
    "imap-header-first": dict(protocol="imap", strategy="header-first", read_fraction=0.5),
    "imap-download-all": dict(protocol="imap", strategy="download-all"),
    "pop3-download-all": dict(protocol="pop3", strategy="download-all"),
    "pop3-header-first-pipelined": dict(protocol="pop3", strategy="header-first", pipelining=True,
                                        read_fraction=0.5),
}


@pytest.fixture(scope="module")
def own_captures(tmp_path_factory):
    """Our engine's sessions (embedded server, 6 messages), captured with the best backend that runs."""
    from mailstudy.capture import CaptureError, choose_backend
    from mailstudy.study.experiment import Experiment, run_captured_session

    try:
        choose_backend("auto")
    except CaptureError as exc:
        pytest.skip(f"no capture backend can run here: {exc}")
    folder = tmp_path_factory.mktemp("own")
    out = {}
    for name, kw in OWN.items():
        row, report = run_captured_session(Experiment(messages=6, sizes="fixed-5k", **kw), folder / f"{name}.pcap")
        assert report.complete, report.warnings
        out[name] = (folder / f"{name}.pcap", row)
    return out


@pytest.mark.parametrize("name", list(OWN))
def test_own_capture_replays_identically_on_the_same_server_kind(own_captures, name):
    path, row = own_captures[name]
    report = replay_pcap(str(path), server="embedded")
    [s] = report.sessions
    assert s.replayed is not None, s.warnings
    for key in ("commands", "round_trips", "bytes_up", "bytes_down"):
        assert s.replayed[key] == s.original[key] == row[key], key
    assert s.replayed["exchanges_failed"] == 0
    assert s.messages == 6
    assert s.messages_checked == row["bodies_fetched"] > 0
    assert s.messages_matched == s.messages_checked  # byte for byte
    if row["bodies_fetched"] < 6:  # header-first with half the messages opened: the rest are placeholders
        assert s.placeholders == 6 - row["bodies_fetched"]


@pytest.mark.dovecot
def test_embedded_capture_replays_on_dovecot(own_captures, dovecot_usable):
    path, row = own_captures["imap-header-first"]
    [s] = replay_pcap(str(path), server="dovecot").sessions
    assert s.server == "dovecot"
    assert (s.replayed["commands"], s.replayed["round_trips"]) == (row["commands"], row["round_trips"])
    assert s.replayed["exchanges_failed"] == 0
    assert s.messages_matched == s.messages_checked == row["bodies_fetched"] > 0
    [p] = replay_pcap(str(own_captures["pop3-header-first-pipelined"][0]), server="dovecot").sessions
    assert (p.replayed["commands"], p.replayed["round_trips"]) == (p.original["commands"], p.original["round_trips"])
    assert p.replayed["exchanges_failed"] == 0


# ---- other clients ---------------------------------------------------------------------------------------------
def _fetchmail(tmp: Path, port: int, protocol: str, account: Account) -> list[str]:
    rc = tmp / f"fetchmailrc-{protocol}"
    rc.write_text(f'poll 127.0.0.1 service {port} protocol {protocol} user "{account.user}" '
                  f'password "{account.password}" keep fetchall no sslcertck mda "cat > /dev/null"\n')
    rc.chmod(0o600)
    return ["fetchmail", "-f", str(rc), "--nosyslog", "--nodetach", "--pidfile", str(tmp / "fetchmail.pid")]


def _mbsync(tmp: Path, port: int, protocol: str, account: Account) -> list[str]:
    store = tmp / "maildir"
    store.mkdir(exist_ok=True)
    conf = tmp / "mbsyncrc"
    conf.write_text(f"IMAPAccount t\nHost 127.0.0.1\nPort {port}\nUser {account.user}\nPass \"{account.password}\"\n"
                    f"SSLType None\nAuthMechs LOGIN\n\nIMAPStore far\nAccount t\n\n"
                    f"MaildirStore near\nPath {store}/\nInbox {store}/INBOX\n\n"
                    f"Channel t\nFar :far:\nNear :near:\nPatterns INBOX\nCreate Near\nSyncState *\n")
    return ["mbsync", "-c", str(conf), "-a"]


def _curl(tmp: Path, port: int, protocol: str, account: Account) -> list[str]:
    url = f"imap://127.0.0.1:{port}/INBOX;UID=1" if protocol == "imap" else f"pop3://127.0.0.1:{port}/1"
    return ["curl", "-s", "-S", "-o", os.devnull, url, "-u", f"{account.user}:{account.password}"]


CLIENTS = {
    "curl-imap": ("curl", _curl, "imap"),
    "curl-pop3": ("curl", _curl, "pop3"),
    "fetchmail-imap": ("fetchmail", _fetchmail, "imap"),
    "fetchmail-pop3": ("fetchmail", _fetchmail, "pop3"),
    "mbsync": ("mbsync", _mbsync, "imap"),
}


def _capture_client(tmp: Path, name: str, raws: list[bytes], expunge_first: int = 0) -> Path:
    from mailstudy.capture import Capture

    program, command, protocol = CLIENTS[name]
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (Debian package: {'isync' if program == 'mbsync' else program})")
    backend = _packet_backend_or_skip()
    path = tmp / f"{name}.pcap"
    server = make_server("embedded", accounts=[BOB], mailboxes={BOB.user: raws})
    with server:
        if expunge_first:
            import imaplib

            with imaplib.IMAP4(server.host, server.imap_port, timeout=10) as c:
                c.login(BOB.user, BOB.password)
                c.select("INBOX")
                c.store(f"1:{expunge_first}", "+FLAGS", "(\\Deleted)")
                c.expunge()
                c.logout()
        port = server.imap_port if protocol == "imap" else server.pop3_port
        argv = command(tmp, port, protocol, BOB)
        env = dict(os.environ, HOME=str(tmp), FETCHMAILHOME=str(tmp))
        with Capture(path, [port], backend=backend, host=server.host):
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, f"{name} failed: {done.stderr[-500:]}"
    return path


@pytest.fixture(scope="module")
def raws():
    from mailstudy.corpus import generate

    return generate(4, "fixed-5k", 1).raws()


@pytest.mark.parametrize("name", list(CLIENTS))
def test_other_clients_replay_with_the_same_commands_and_flights(tmp_path, raws, name):
    path = _capture_client(tmp_path, name, raws)
    [s] = replay_pcap(str(path), server="embedded").sessions
    assert s.replayed is not None, s.warnings
    assert s.original["exchanges_failed"] == 0
    assert (s.replayed["commands"], s.replayed["round_trips"]) == (s.original["commands"],
                                                                   s.original["round_trips"])
    assert s.replayed["exchanges_failed"] == 0, s.warnings  # bob's login was mapped to the new account's
    assert s.messages_checked >= 1 and s.messages_matched == s.messages_checked
    # same server kind, fresh mailbox both times: the server's bytes are the same; the client's differ only by
    # the credentials (bob's are 4 bytes shorter than alice's)
    assert s.replayed["bytes_down"] == s.original["bytes_down"]
    assert s.replayed["bytes_up"] != s.original["bytes_up"]


def test_captured_uids_are_mapped_to_the_new_servers(tmp_path, raws):
    # Messages 1-2 expunged before the capture: curl fetches UID 3, which is UID 1 on a fresh server.
    program = "curl"
    if shutil.which(program) is None:
        pytest.skip("curl is not installed (Debian package: curl)")
    CLIENTS["curl-uid3"] = ("curl", lambda tmp, port, protocol, account: [
        "curl", "-s", "-S", "-o", os.devnull, f"imap://127.0.0.1:{port}/INBOX;UID=3", "-u",
        f"{account.user}:{account.password}"], "imap")
    try:
        path = _capture_client(tmp_path, "curl-uid3", raws, expunge_first=2)
    finally:
        CLIENTS.pop("curl-uid3")
    [s] = replay_pcap(str(path), server="embedded").sessions
    fetch = [e for e in s.exchanges if e.command == "UID FETCH"]
    assert [e.arguments.split()[0] for e in fetch] == ["1"]
    assert s.messages == 2 and s.replayed["exchanges_failed"] == 0
    assert s.messages_checked == s.messages_matched == 1  # UID 3 of the capture is raws[2], back byte for byte


def _literal_login_client(port: int) -> None:
    """A client that logs in with synchronizing literals, waiting for each "+" as RFC 9051 requires."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"* OK")
        for part in (b"a LOGIN {3}\r\n", b"bob {9}\r\n"):
            sock.sendall(part)
            assert f.readline().startswith(b"+")
        sock.sendall(b"builder 7\r\n")
        assert f.readline().startswith(b"a OK")
        sock.sendall(b"b SELECT INBOX\r\n")
        while not f.readline().startswith(b"b OK"):
            pass
        sock.sendall(b"c LOGOUT\r\n")
        while f.readline():
            pass


def test_synchronizing_literals_wait_for_the_servers_go_ahead(tmp_path, raws):
    from mailstudy.capture import Capture

    backend = _packet_backend_or_skip()
    path = tmp_path / "literal-login.pcap"
    with make_server("embedded", accounts=[BOB], mailboxes={BOB.user: raws}) as server:
        with Capture(path, [server.imap_port], backend=backend, host=server.host):
            _literal_login_client(server.imap_port)
    [s] = replay_pcap(str(path)).sessions
    assert s.original["round_trips"] == 5 and s.original["commands"] == 3
    assert (s.replayed["commands"], s.replayed["round_trips"]) == (3, 5)
    assert s.replayed["exchanges_failed"] == 0, s.warnings
    login = s.exchanges[0]
    assert login.command == "LOGIN" and login.arguments == "{5} {13}" and login.ok
    assert s.replayed["bytes_down"] == s.original["bytes_down"]


# ---- the command line -------------------------------------------------------------------------------------------
def _cli(*argv: str) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-m", "mailstudy.cli", "replay", *argv], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])


def test_cli_json_and_errors(own_captures, tmp_path):
    path, row = own_captures["pop3-download-all"]
    done = _cli(str(path), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["file"] == str(path)
    [s] = data["sessions"]
    assert s["server"] == "embedded" and s["replayed"]["commands"] == s["original"]["commands"] == row["commands"]
    [direct] = replay_pcap(str(path)).sessions  # the JSON is the report, field for field (times aside)
    expect = json.loads(json.dumps(direct.to_dict(), default=str))
    assert s.keys() == expect.keys()
    for key in ("index", "protocol", "server", "original", "messages", "placeholders", "messages_checked",
                "messages_matched", "warnings"):
        assert s[key] == expect[key], key
    for key in ("commands", "round_trips", "bytes_up", "bytes_down", "exchanges_failed"):
        assert s["replayed"][key] == expect["replayed"][key], key
    assert s["messages_checked"] == s["messages_matched"] == row["bodies_fetched"] == 6
    assert s["warnings"] == [] and s["placeholders"] == 0  # our own capture replays cleanly
    table = _cli(str(path), "--session", "0")
    assert table.returncode == 0 and "round_trips" in table.stdout
    for argv, words in (([str(tmp_path / "missing.pcap")], "missing.pcap"),
                        ([str(path), "--session", "7"], "no mail session 7"),
                        ([str(PEER / "redis-50-pings.pcap")], "no IMAP or POP3 session")):
        if "redis" in argv[0] and not Path(argv[0]).exists():
            continue
        bad = _cli(*argv)
        assert bad.returncode == 2 and words in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_encrypted_session_is_reported_not_replayed():
    path = needs.peer("imap-starttls.pcap")
    [s] = replay_pcap(str(path)).sessions
    assert s.replayed is None
    assert any("cannot be replayed" in w and "STARTTLS" in w for w in s.warnings)
