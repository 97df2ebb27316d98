"""The model's time split: the session's own work as measured (local) apart from what the network adds."""

from __future__ import annotations

import pytest

from mailstudy.link import get_profile, predict
from mailstudy.link.model import local_time, session_of
from mailstudy.study.experiment import Experiment
from mailstudy.study.modelled import baseline_sessions, model_rows


@pytest.fixture(scope="module")
def session():
    _rows, results = baseline_sessions(Experiment(messages=5, sizes="fixed-5k", strategy="download-all"))
    return results[0]


@pytest.mark.parametrize("profile", ["lan", "4g", "satellite-geo", "edge"])
def test_local_and_network_add_up_to_the_duration(session, profile):
    got = predict(session, profile)
    assert got["local_s"] == pytest.approx(local_time(session_of(session)))
    assert got["local_s"] + got["network_s"] + got["promotion_wait_s"] == pytest.approx(got["duration_s"])


def test_network_time_grows_with_the_rtt_and_local_time_does_not(session):
    lan, sat = predict(session, "lan"), predict(session, "satellite-geo")
    assert lan["local_s"] == sat["local_s"]
    rounds = len(session_of(session).round_trips)
    # connect + greeting (2 RTT) and one RTT per round trip, at least
    assert sat["network_s"] >= (rounds + 2) * get_profile("satellite-geo").rtt_s * 0.99
    assert lan["network_s"] < sat["network_s"] / 50


def test_model_rows_carry_both_columns():
    (row,) = model_rows([Experiment(messages=3, sizes="fixed-5k")], ["4g"], conditions="control")
    assert row["local_s"] > 0 and row["network_s"] > 0
    assert row["local_s"] + row["network_s"] == pytest.approx(row["duration_s"], rel=0.05)
