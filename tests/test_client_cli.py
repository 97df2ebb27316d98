"""``mailstudy session --client NAME`` and ``mailstudy profiles --clients`` as a user meets them: every profile runs
with no other option, no output format shows the password, and a bad value gets the same one line as anywhere."""

from __future__ import annotations

import base64
import json

import pytest

from cli_run import one_line_error, run
from mailstudy.live.client_profiles import CLIENTS, profile_table
from mailstudy.servers.base import DEFAULT_ACCOUNT

PASSWORD = DEFAULT_ACCOUNT.password
#: SASL PLAIN's initial response (RFC 4616) as NeoMutt, mbsync and offlineimap3 send it: the password in base64
SASL_PLAIN = base64.b64encode(f"\0{DEFAULT_ACCOUNT.user}\0{PASSWORD}".encode()).decode()


@pytest.mark.parametrize("client", CLIENTS)
def test_every_client_profile_runs_with_no_other_option_and_shows_no_password(client):
    out = run("session", "--client", client, "--exchanges")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and PASSWORD not in out.stdout + out.stderr
    assert f"{client}, first sync: " in out.stdout and f"{client}, next sync, 2 new: " in out.stdout
    assert any(verb in out.stdout for verb in ("LOGIN", "PASS", "AUTHENTICATE"))  # the login is listed
    assert "***" in out.stdout or "AUTHENTICATE" in out.stdout  # its arguments hidden
    assert SASL_PLAIN not in out.stdout + out.stderr and SASL_PLAIN[:-4] not in out.stdout


@pytest.mark.parametrize("client", ["k9", "thunderbird-pop3"])
def test_json_shows_no_password_and_lists_exchanges_only_when_asked(client):
    plain = run("session", "--client", client, "--messages", "3", "--json")
    assert plain.returncode == 0, plain.stderr
    assert all("exchanges" not in phase for phase in json.loads(plain.stdout))
    listed = run("session", "--client", client, "--messages", "3", "--json", "--exchanges")
    phases = json.loads(listed.stdout)
    assert PASSWORD not in listed.stdout and DEFAULT_ACCOUNT.user not in listed.stdout
    logins = [e for e in phases[0]["exchanges"] if e["command"] in ("LOGIN", "USER", "PASS")]
    assert logins and all(set(e["arguments"]) <= {"*", " "} for e in logins)


@pytest.mark.parametrize("value", ["nan", "1.5", "-0.1"])
def test_a_bad_read_fraction_gets_the_same_line_with_and_without_a_client(value):
    lines = set()
    for args in (["--client", "k9"], [], ["--protocol", "pop3"]):
        out = run("session", *args, "--read-fraction", value)
        one_line_error(out, "--read-fraction: must be at least 0 and at most 1, not")
        lines.add(out.stderr)
    assert len(lines) == 1, lines  # one rule, one message, whatever else is asked


def test_an_option_a_client_profile_cannot_use_is_refused(tmp_path):
    one_line_error(run("session", "--client", "k9", "--capture", tmp_path / "x.pcap"), "--capture does nothing with --client")
    one_line_error(run("session", "--client", "k9", "--profile", "4g"), "--profile does nothing with --client")
    one_line_error(run("session", "--client", "k9", "--rtt", "80ms"), "--rtt does nothing with --client")
    one_line_error(run("session", "--client", "nope"), "unknown client profile 'nope'")
    one_line_error(run("session", "--client", "k9", "--messages", "5000000"), "would make a mailbox of about")
    assert not (tmp_path / "x.pcap").exists()


def test_profiles_clients_prints_every_behaviour_with_its_source():
    out = run("profiles", "--clients")
    assert out.returncode == 0, out.stderr
    for client in CLIENTS:
        assert f"{client} (" in out.stdout
    assert "nsImapProtocol.cpp" in out.stdout and "Pop3Folder.java" in out.stdout
    rows = [json.loads(line) for line in run("profiles", "--clients", "--json").stdout.splitlines()]
    assert rows == json.loads(json.dumps(profile_table(), default=str))
