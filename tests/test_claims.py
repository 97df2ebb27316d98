"""The article's claims ledger: every claim gets a verdict computed from a number, on both servers, and each
verdict flips when its input changes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mailstudy.servers.cyrus import cyrus_available
from mailstudy.study.claims import (CONTRADICTED, HOLDS_ONLY_WHEN, NOT_MEASURABLE, NOT_PROTOCOL, SUPPORTED,
                                    THRESHOLDS, VERDICTS, Lab, claim_headers_first, claim_jmap_changes,
                                    claim_jmap_list, claim_jmap_push, claim_many_messages, claim_pop3_one_device,
                                    claim_pop3_polling, claim_push_battery, format_ledger, ledger_frame,
                                    push_breakeven_rate, run_claims, verdict_header_first, verdict_jmap_changes,
                                    verdict_jmap_list, verdict_jmap_push, verdict_many_messages,
                                    verdict_one_device, verdict_pop3_polling, verdict_push_battery,
                                    verdict_spam_virus, verdict_storage_row)

EXPECTED = {
    "ports": SUPPORTED, "imap-keeps-pop3-delete-removes": SUPPORTED, "pop3-keep-delete": SUPPORTED,
    "storage-row": CONTRADICTED, "sent-folder": SUPPORTED, "read-state": SUPPORTED, "device-loss": SUPPORTED,
    "headers-first": SUPPORTED, "partial-read": SUPPORTED, "pop3-only-after-download": CONTRADICTED,
    "pop3-one-device": CONTRADICTED, "pop3-offline": SUPPORTED, "pop3-many-messages": HOLDS_ONLY_WHEN,
    "folders": SUPPORTED, "pop3-spam-virus": NOT_PROTOCOL, "phone-push-battery": HOLDS_ONLY_WHEN,
    "phone-pop3-polling": NOT_PROTOCOL,
    # JMAP's own, on Cyrus; Debian's Cyrus declines the EventSource (204), so push is not measurable here
    "jmap-list-one-request": SUPPORTED, "jmap-change-sync": SUPPORTED, "jmap-push": NOT_MEASURABLE,
}
if cyrus_available() is not None:  # without Cyrus every JMAP row says why it was not measured
    EXPECTED.update({k: NOT_MEASURABLE for k in ("jmap-list-one-request", "jmap-change-sync", "jmap-push")})
#: The rows whose verdict rests on a threshold, and the thresholds they must show.
SHOWN = {"headers-first": {"header_first_max_share"}, "partial-read": {"partial_max_share"},
         "pop3-only-after-download": {"partial_max_share"}, "pop3-one-device": {"second_session"},
         "pop3-many-messages": {"many_messages_max_ratio", "typical_read_fraction"},
         "pop3-spam-virus": {"same_bytes"},
         "phone-push-battery": {"phone_same_energy_ratio", "phone_poll_s", "phone_rates"},
         "phone-pop3-polling": {"phone_same_energy_ratio", "phone_poll_s"}}
if cyrus_available() is None:
    SHOWN.update({"jmap-list-one-request": {"jmap_list_max_requests"}, "jmap-change-sync": {"jmap_sync_max_requests"},
                  "jmap-push": {"jmap_push_stream"}})


def test_every_claim_has_its_verdict_and_numbers(server_kind):
    ledger = run_claims(quick=True, servers=[server_kind])
    got = {v.key: v for v in ledger}
    assert set(got) == set(EXPECTED)
    for key, verdict in EXPECTED.items():
        v = got[key]
        assert v.verdict == verdict, (key, v.measured)
        assert v.measured and (v.measured.startswith("not run: Cyrus")
                               or any(ch.isdigit() for ch in v.measured)), key
        assert v.quote and v.seeds, key
    storage = got["imap-keeps-pop3-delete-removes"].numbers
    assert (storage["after_imap"], storage["after_pop3_delete"], storage["after_pop3_keep"]) == (20, 0, 20)
    assert got["pop3-only-after-download"].numbers["top"] < got["pop3-only-after-download"].numbers["retr"] / 2
    assert got["pop3-many-messages"].condition.startswith("only when")
    for key, names in SHOWN.items():
        assert set(got[key].thresholds) == names, key
        for name in names:
            assert got[key].thresholds[name].startswith(f"{THRESHOLDS[name][0]}: "), (key, name)
    hf = got["headers-first"]
    assert hf.seeds == (0, 1, 2) and len(hf.numbers["shares"]) == 3 and "over 3 seeds" in hf.interval
    assert min(hf.numbers["shares"]) <= hf.numbers["share"] <= max(hf.numbers["shares"])
    text = format_ledger(ledger)
    assert "threshold:  header_first_max_share = 0.5: below half" in text and "seeds:      0, 1, 2" in text
    frame = ledger_frame(ledger)
    assert {"quote", "measured", "server", "seeds", "interval", "thresholds"} <= set(frame.columns)
    assert json.loads(frame.set_index("key").loc["headers-first", "thresholds"])["header_first_max_share"]
    push = got["phone-push-battery"].numbers  # measured on LTE: busy mail wakes push more often than polls
    assert push["ratios"]["100"] > 1.10 > push["ratios"]["10"]
    assert 10 < push["breakeven_rate"] < 100
    assert push["days"]["100"]["push"]["staleness_median_s"] == 0 < push["days"]["100"]["poll"]["staleness_median_s"]
    pop = got["phone-pop3-polling"].numbers
    assert abs(pop["ratio"] - 1) <= 0.10 and pop["pop3"]["promotions"] == pop["imap"]["promotions"]


# -- flips: the same claim, another input, another verdict ---------------------------------------------------

def test_many_messages_flips_when_every_message_is_read():
    """At one message read in ten POP3's download-all moves far more than IMAP's header-first (holds only when
    everything is read); with every message read the two cost the same (supported)."""
    few = claim_many_messages(Lab(messages=10), "embedded")
    everything = claim_many_messages(Lab(messages=10, read_fraction=1.0), "embedded")
    assert few.verdict == HOLDS_ONLY_WHEN and few.numbers["ratio"] > 1.10
    assert few.numbers["ratio_all_read"] <= 1.10
    assert everything.verdict == SUPPORTED and everything.numbers["ratio"] <= 1.10
    assert everything.numbers["read_fraction"] == 1.0


def test_header_first_flips_for_a_mailbox_of_one_small_message():
    """Seed 1's first message is small, so in a mailbox of that one message its 7 kB header is most of it:
    listing costs more than half of download-all. Twenty messages of the same seed: far less."""
    one = claim_headers_first(Lab(messages=1, seed=1), "embedded")
    twenty = claim_headers_first(Lab(messages=20, seed=1), "embedded")
    assert one.verdict == CONTRADICTED and one.numbers["share"] >= 0.5
    assert twenty.verdict == SUPPORTED and twenty.numbers["share"] < 0.5


def test_push_battery_flips_with_how_often_mail_arrives():
    """A quiet mailbox (10 messages a day) wakes push less often than 15-minute polls (contradicted); a busy one
    (100 a day) more often (supported); the ledger measures both rates (holds only when mail arrives often)."""
    quiet = claim_push_battery(Lab(phone_rates=(10.0,)), "embedded")
    busy = claim_push_battery(Lab(phone_rates=(100.0,)), "embedded")
    assert quiet.verdict == CONTRADICTED and quiet.numbers["ratios"]["10"] <= 1.10
    assert busy.verdict == SUPPORTED and busy.numbers["ratios"]["100"] > 1.10
    assert quiet.numbers["breakeven_rate"] is None


def test_pop3_polling_flips_against_imap_polling_more_often():
    """POP3 and IMAP polling every 15 minutes cost the radio the same (the interval decides); against IMAP
    polling every 5 minutes, POP3 every 15 costs less (supported): the verdict follows the wake-ups."""
    lab = Lab()
    same = claim_pop3_polling(lab, "embedded")
    faster = claim_pop3_polling(lab, "embedded", imap_poll_s=300.0)
    assert same.verdict == NOT_PROTOCOL
    assert faster.verdict == SUPPORTED and faster.numbers["ratio"] * 1.10 < 1
    assert faster.numbers["imap"]["promotions"] > same.numbers["imap"]["promotions"]


@pytest.mark.dovecot
@pytest.mark.slow
def test_one_device_flips_with_dovecots_pop3_maildrop_lock(dovecot_usable):
    """Dovecot as shipped lets a second POP3 session in (contradicted); with pop3_lock_session = yes the second
    waits and is refused with [IN-USE] (supported)."""
    lab = Lab(messages=3)
    shared = claim_pop3_one_device(lab, "dovecot")
    locked = claim_pop3_one_device(lab, "dovecot", with_lock=True)
    assert shared.verdict == CONTRADICTED and shared.numbers["second_refused"] is False
    assert locked.verdict == SUPPORTED and locked.numbers["second_refused"] is True
    assert locked.numbers["second_login"].startswith("refused") and "IN-USE" in locked.numbers["second_login"]
    assert locked.server == "dovecot (pop3_lock_session = yes)"


@pytest.mark.cyrus
def test_jmap_claims_measured_on_cyrus(cyrus_usable):
    """On one mailbox of 10 messages: JMAP's list is 1 POST after 2 discovery GETs (3 round trips) against IMAP's
    5; its change sync 1 round trip against CONDSTORE's 6, in fewer bytes; Debian's Cyrus answers the EventSource
    with 204, which the row quotes from the trace."""
    lab = Lab(messages=10)
    listed, changes = claim_jmap_list(lab, "cyrus"), claim_jmap_changes(lab, "cyrus")
    push = claim_jmap_push(lab, "cyrus")
    (run,) = listed.numbers["runs"]
    assert (run["jmap_discovery"], run["jmap_api_requests"], run["jmap_round_trips"], run["imap_round_trips"]) == \
        (2, 1, 3, 5)
    assert run["listed"] == 10 and run["jmap_bytes"] < run["imap_bytes"] and listed.verdict == SUPPORTED
    assert (changes.numbers["jmap_round_trips"], changes.numbers["imap_round_trips"]) == (1, 6)
    assert changes.numbers["jmap_bytes"] < changes.numbers["imap_bytes"] and changes.verdict == SUPPORTED
    assert push.verdict == NOT_MEASURABLE and push.numbers["offered"] is False
    assert "answered 204 No Content (1 of 1 seeds)" in push.measured and push.numbers["imap_idle_latency_ms"]


def test_jmap_rules_flip_on_either_side_of_their_thresholds():
    assert verdict_jmap_list(1, 3, 5) == SUPPORTED
    assert verdict_jmap_list(1, 5, 5) == HOLDS_ONLY_WHEN  # one request, but discovery makes it no shorter
    assert verdict_jmap_list(2, 3, 5) == CONTRADICTED
    assert verdict_jmap_changes(1, 4_000, 6, 40_000) == SUPPORTED
    assert verdict_jmap_changes(2, 4_000, 6, 40_000) == HOLDS_ONLY_WHEN  # above the one-request threshold
    assert verdict_jmap_changes(1, 50_000, 6, 40_000) == HOLDS_ONLY_WHEN
    assert verdict_jmap_changes(7, 50_000, 6, 40_000) == CONTRADICTED
    assert verdict_jmap_push(False, None) == NOT_MEASURABLE
    assert verdict_jmap_push(True, 0.01) == SUPPORTED and verdict_jmap_push(True, None) == CONTRADICTED


def test_each_rule_follows_its_numbers():
    """The verdict rules alone, on inputs no server here produces (a POP3 that filters, the row as written)."""
    assert verdict_header_first(0.49) == SUPPORTED and verdict_header_first(0.5) == CONTRADICTED
    assert verdict_many_messages(1.10, None) == SUPPORTED
    assert verdict_many_messages(1.5, 1.0) == HOLDS_ONLY_WHEN and verdict_many_messages(1.5, 1.2) == CONTRADICTED
    assert verdict_one_device(True) == SUPPORTED and verdict_one_device(False) == CONTRADICTED
    assert verdict_spam_virus([True, True], [True, True]) == NOT_PROTOCOL
    assert verdict_spam_virus([False, True], [True, True]) == SUPPORTED  # POP3 withheld what IMAP delivered
    assert verdict_spam_virus([False, False], [False, False]) == NOT_PROTOCOL  # the server filtered both
    assert verdict_storage_row(0, 10, 10) == SUPPORTED and verdict_storage_row(10, 0, 10) == CONTRADICTED
    assert verdict_push_battery({100.0: 1.3, 10.0: 0.86}) == HOLDS_ONLY_WHEN
    assert verdict_push_battery({100.0: 1.11}) == SUPPORTED and verdict_push_battery({100.0: 1.10}) == CONTRADICTED
    assert push_breakeven_rate({10.0: 0.8, 100.0: 1.2}) == pytest.approx(55.0)
    assert push_breakeven_rate({10.0: 1.2, 100.0: 1.3}) is None
    assert verdict_pop3_polling(1.0) == NOT_PROTOCOL and verdict_pop3_polling(0.9) == SUPPORTED
    assert verdict_pop3_polling(1.11) == CONTRADICTED and verdict_pop3_polling(1.10) == NOT_PROTOCOL


def test_claims_cli_json_is_the_same_ledger():
    out = subprocess.run([sys.executable, "-m", "mailstudy.cli", "claims", "--quick", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["key"] for r in rows} == set(EXPECTED)
    assert all(r["verdict"] in VERDICTS and r["measured"] for r in rows)
