"""Change sync on a mailbox a device knows: naive, CONDSTORE and QRESYNC as real sessions on real servers."""

from __future__ import annotations

import matplotlib
import pandas as pd
import pytest

from mailstudy.study.mailbox_sync import (MailboxSyncError, check_cell, run_mailbox, spread, sync_rows,
                                          sync_table)

matplotlib.use("Agg")

N = 400
CHANGES = (0, 1, 7)


@pytest.fixture(scope="module")
def dovecot_rows(dovecot_usable):
    results = run_mailbox("dovecot", N, CHANGES, repeats=1, conditions="control")
    return pd.DataFrame(sync_rows(results, ["4g", "satellite-geo"], seeds=range(3), conditions="control"))


def cell(df, method, changes, profile="4g"):
    got = df[(df["method"] == method) & (df["changes"] == changes) & (df["profile"] == profile)]
    assert len(got) == 1
    return got.iloc[0]


@pytest.mark.dovecot
def test_each_method_receives_what_it_should(dovecot_rows):
    for k in CHANGES:
        assert cell(dovecot_rows, "naive", k)["flags_received"] == N  # every message's flags, whatever changed
        assert cell(dovecot_rows, "condstore", k)["flags_received"] == k  # only what changed
        assert cell(dovecot_rows, "qresync", k)["flags_received"] == k  # in SELECT's own reply


@pytest.mark.dovecot
def test_commands_and_bytes(dovecot_rows):
    # CAPABILITY, LOGIN, SELECT, UID FETCH, LOGOUT; QRESYNC has ENABLE where the others have UID FETCH
    for method in ("naive", "condstore", "qresync"):
        assert cell(dovecot_rows, method, 0)["commands"] == 5
    naive0, naive7 = cell(dovecot_rows, "naive", 0), cell(dovecot_rows, "naive", 7)
    # the naive answer carries N FETCH lines: it grows with the mailbox, and "\Seen" adds a little per change
    assert naive0["bytes_down"] > 25 * N
    assert naive7["bytes_down"] > naive0["bytes_down"]
    for method in ("condstore", "qresync"):
        none, seven = cell(dovecot_rows, method, 0), cell(dovecot_rows, method, 7)
        assert none["bytes_down"] < naive0["bytes_down"] / 5
        assert seven["bytes_down"] > none["bytes_down"]  # a FETCH line per changed message
    # clear text (the control conditions): the wire carries exactly the protocol's bytes
    assert (dovecot_rows["wire_bytes_down"] == dovecot_rows["bytes_down"]).all()


@pytest.mark.dovecot
def test_times_come_from_the_model_per_seed(dovecot_rows):
    sat, lte = cell(dovecot_rows, "naive", 0, "satellite-geo"), cell(dovecot_rows, "naive", 0, "4g")
    assert sat["duration_s"] > lte["duration_s"]  # 5 round trips at ~600 ms against ~50 ms
    assert sat["duration_s"] >= 5 * 0.5
    for _, r in dovecot_rows.iterrows():
        assert r["duration_s_lo"] <= r["duration_s"] <= r["duration_s_hi"]
        assert r["seeds"] == 3 and r["work_s"] > 0


def test_the_embedded_server_offers_neither_condstore_nor_qresync():
    df = pd.DataFrame(sync_table("embedded", [50], [0, 2], profiles=["4g"], repeats=1, seeds=[0],
                                 conditions="control"))
    offered = df.groupby("method")["offered"].all().to_dict()
    assert offered == {"naive": True, "condstore": False, "qresync": False}
    naive = df[df["method"] == "naive"]
    assert set(naive["flags_received"]) == {50}


def test_spread_changes_are_distinct_and_in_range():
    assert spread(10, 0) == []
    assert spread(1000, 100) == sorted(set(spread(1000, 100)))
    assert len(spread(1000, 100)) == 100 and min(spread(1000, 100)) >= 1 and max(spread(1000, 100)) <= 1000


@pytest.mark.parametrize("args, words", [
    (("dovecot", [0], [0], ["naive"]), "1 to 1,000,000"),
    (("dovecot", [10], [11], ["naive"]), "from 0 to the mailbox size 10"),
    (("dovecot", [10], [1], ["fast"]), "unknown sync method 'fast'"),
    (("dovecot", [True], [0], ["naive"]), "1 to 1,000,000"),
])
def test_bad_cells_are_one_line(args, words):
    with pytest.raises(MailboxSyncError, match=words):
        check_cell(*args)


@pytest.mark.dovecot
def test_chart_shows_every_method_with_units(dovecot_rows, tmp_path):
    from mailstudy.faces.sync_charts import sync_chart

    fig = sync_chart(dovecot_rows.to_dict("records"), "4g")
    axes = fig.get_axes()
    assert len(axes) == 2 * len(CHANGES)
    assert "kilobytes" in axes[0].get_ylabel() and "seconds" in axes[len(CHANGES)].get_ylabel()
    assert all(ax.get_xlabel() == "messages in the mailbox" for ax in axes[len(CHANGES):])
    (legend,) = fig.legends
    assert [t.get_text().split(":")[0] for t in legend.get_texts()] == ["naive", "CONDSTORE", "QRESYNC"]
    assert "\n" not in fig._suptitle.get_text()
