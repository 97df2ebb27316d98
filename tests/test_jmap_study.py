"""The study's third column (issue 20): IMAP, POP3 and JMAP on one Cyrus store beside Dovecot, with intervals over
seeds, measured and modelled; and the device catch-up view. Real servers, few messages.

Why: notebooks 01, 03 and 04 show these tables; the counts they show must be exact and the same in every seed's
column of one mailbox, and the interval columns must bracket the median.
"""

from __future__ import annotations

import pytest

from mailstudy.study.jmap_cell import COLUMNS, catch_up, three_protocols, with_intervals

pytestmark = [pytest.mark.cyrus, pytest.mark.usefixtures("cyrus_usable", "dovecot_usable")]


@pytest.fixture(scope="module")
def three():
    return three_protocols(messages=5, seeds=(0, 1), model_profiles=("4g",))


def test_every_column_strategy_and_seed_is_measured_and_modelled(three):
    measured = three[~three.modelled]
    assert len(measured) == len(COLUMNS) * 2 * 2 and measured.integrity_ok.all()
    assert set(measured.column) == {"IMAP on Cyrus", "POP3 on Cyrus", "JMAP on Cyrus", "IMAP on Dovecot",
                                    "POP3 on Dovecot"}
    modelled = three[three.modelled]
    assert len(modelled) == len(measured) and set(modelled.profile) == {"4g"}
    # the model gives 4g's times from the same sessions: same counts, longer times
    m = measured.set_index(["column", "strategy", "seed"]).sort_index()
    p = modelled.set_index(["column", "strategy", "seed"]).sort_index()
    assert (m.bytes_down == p.bytes_down).all() and (p.duration_s > m.duration_s).all()
    # header-first: JMAP lists in one request after discovery
    jh = measured[(measured.column == "JMAP on Cyrus") & (measured.strategy == "header-first")]
    assert set(jh.round_trips) == {3}


def test_intervals_bracket_the_median(three):
    t = with_intervals(three)
    assert len(t) == len(COLUMNS) * 2 * 2 and set(t.seeds) == {2}
    for m in ("bytes_down", "round_trips", "duration_s"):
        assert ((t[f"{m}_lo"] <= t[m]) & (t[m] <= t[f"{m}_hi"])).all(), m


def test_catch_up_jmap_changes_in_one_round_trip_and_idle_hears_without_waiting_bytes():
    df = catch_up(messages=5, new=2, seeds=(0,), wait_s=0.2)
    row = {(r.protocol, r.workload): r for r in df.itertuples()}
    assert row["jmap", "change-sync"].round_trips == 1 and row["jmap", "change-sync"].listed == 2
    assert row["imap", "change-sync"].listed == 2 and row["imap", "poll"].listed == 0
    assert row["imap", "push"].offered and row["imap", "push"].waiting_bytes == 0
    assert not row["jmap", "push"].offered and "204" in row["jmap", "push"].why
