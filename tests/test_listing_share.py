"""Header-first's listing cost as a share of download-all, per strategy and per client profile (real sessions)."""

from __future__ import annotations

import matplotlib
import pytest

from mailstudy.study.listing_share import listing_share

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def shares():
    return listing_share("embedded", messages=8, seeds=[0, 1], clients=("neomutt", "thunderbird", "thunderbird-pop3"))


def row(df, name):
    got = df[df["name"] == name]
    assert len(got) == 1, name
    return got.iloc[0]


def test_download_all_is_the_whole_and_header_first_a_part(shares):
    s = shares["summary"]
    for protocol in ("IMAP", "POP3"):
        assert row(s, f"{protocol} download-all")["share"] == 1.0
        hf = row(s, f"{protocol} header-first")
        assert 0.0 < hf["share_lo"] <= hf["share"] <= hf["share_hi"] < 1.0
        assert hf["seeds"] == 2


def test_clients_pay_as_they_fetch(shares):
    s = shares["summary"]
    # NeoMutt asks for a few header fields; Thunderbird (autosync) and a POP3 client download every message
    assert row(s, "neomutt")["share"] < row(s, "IMAP header-first")["share"]
    assert row(s, "thunderbird")["share"] >= 1.0
    assert row(s, "thunderbird-pop3")["share"] >= 1.0


def test_per_seed_rows_are_the_summary_s_inputs(shares):
    per_seed = shares["seeds"]
    assert set(per_seed["seed"]) == {0, 1}
    hf = per_seed[per_seed["name"] == "IMAP header-first"]
    assert (hf["share"] == hf["bytes_down"] / hf["download_all_bytes"]).all()
    assert row(shares["summary"], "IMAP header-first")["share"] == pytest.approx(hf["share"].median())


def test_chart_draws_every_row_with_its_interval(shares):
    from mailstudy.faces.share_charts import share_chart

    fig = share_chart(shares["summary"])
    (ax,) = fig.get_axes()
    assert len(ax.get_yticklabels()) == len(shares["summary"])
    assert ax.get_xscale() == "linear" and "%" in ax.get_xlabel()
    assert ax.containers and len(ax.patches) == len(shares["summary"])
    assert "\n" not in ax.get_title()
