"""The article's claims ledger: every claim gets a verdict backed by a number, on both servers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mailstudy.study.claims import (CONTRADICTED, HOLDS_ONLY_WHEN, NOT_PROTOCOL, SUPPORTED, VERDICTS, Lab,
                                    claim_pop3_one_device, run_claims)

EXPECTED = {
    "ports": SUPPORTED, "imap-keeps-pop3-delete-removes": SUPPORTED, "pop3-keep-delete": SUPPORTED,
    "storage-row-swapped": SUPPORTED, "sent-folder": SUPPORTED, "read-state": SUPPORTED, "device-loss": SUPPORTED,
    "headers-first": SUPPORTED, "partial-read": SUPPORTED, "pop3-only-after-download": CONTRADICTED,
    "pop3-one-device": HOLDS_ONLY_WHEN, "pop3-offline": SUPPORTED, "pop3-many-messages": HOLDS_ONLY_WHEN,
    "folders": SUPPORTED, "pop3-spam-virus": NOT_PROTOCOL,
}


def test_every_claim_has_its_verdict_and_numbers(server_kind):
    ledger = run_claims(quick=True, servers=[server_kind])
    got = {v.key: v for v in ledger}
    assert set(got) == set(EXPECTED)
    for key, verdict in EXPECTED.items():
        v = got[key]
        assert v.verdict == verdict, (key, v.measured)
        assert v.measured and any(ch.isdigit() for ch in v.measured), key
    storage = got["imap-keeps-pop3-delete-removes"].numbers
    assert (storage["after_imap"], storage["after_pop3_delete"], storage["after_pop3_keep"]) == (10, 0, 10)
    assert got["pop3-only-after-download"].numbers["top"] < got["pop3-only-after-download"].numbers["retr"] / 10
    assert got["pop3-many-messages"].condition.startswith("only when")


@pytest.mark.dovecot
@pytest.mark.slow
def test_dovecot_with_the_rfc1939_lock_refuses_a_second_device(dovecot_usable):
    v = claim_pop3_one_device(Lab(messages=3), "dovecot", with_lock=True)
    assert v.numbers["second_login"].startswith("refused") and "IN-USE" in v.numbers["second_login"]


def test_claims_cli_json_is_the_same_ledger():
    out = subprocess.run([sys.executable, "-m", "mailstudy.cli", "claims", "--quick", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["key"] for r in rows} == set(EXPECTED)
    assert all(r["verdict"] in VERDICTS and r["measured"] for r in rows)
