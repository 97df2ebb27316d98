"""Notebook 07's sweep, summary and charts: real fleet days priced on each radio, written atomically."""

from __future__ import annotations

import pandas as pd
import pytest

from mailstudy.study.energy import STANDARD_SETTINGS, Setting, check_seeds, summarize
from mailstudy.study.parameters import ParameterError


def test_the_summary_is_the_median_and_range_over_seeds():
    rows = pd.DataFrame([{"setting": s, "radio": r, "joules_per_day": j, "tail_share": 0.5, "promotion_j": 1.0,
                          "transfer_j": 1.0, "tail_j": 1.0, "idle_j": 1.0, "promotions": 3,
                          "staleness_median_s": st}
                         for s, r, j, st in [("b", "lte", 10.0, 60.0), ("b", "lte", 30.0, 120.0),
                                             ("b", "lte", 20.0, 90.0), ("a", "lte", 5.0, 0.0)]])
    summary = summarize(rows)
    assert list(summary["setting"]) == ["b", "a"]  # the settings' order, not the alphabet's
    b = summary.iloc[0]
    assert (b["joules_per_day"], b["joules_per_day_lo"], b["joules_per_day_hi"], b["seeds"]) == (20.0, 10.0, 30.0, 3)
    assert b["staleness_median_s"] == 90.0


def test_seeds_are_checked_in_one_line():
    assert check_seeds((0, 1)) == [0, 1]
    for bad in ([], [-1], ["x"], 3):
        with pytest.raises(ParameterError, match="SEEDS"):
            check_seeds(bad)


def test_the_standard_settings_change_one_thing_at_a_time():
    imap = [s for s in STANDARD_SETTINGS if s.client == "thunderbird"]
    assert [s.poll_s for s in imap] == [None, 300.0, 900.0, 3600.0] and imap[0].idle
    assert all(not s.idle for s in imap[1:])


def test_a_small_energy_study_writes_its_tables_and_charts(tmp_path):
    from mailstudy.faces.energy_charts import energy

    settings = (Setting("push", "thunderbird", None, True), Setting("poll 15 min", "thunderbird", 900.0))
    out = energy(settings, seeds=(0,), hours=1, rate=48, results=tmp_path, figures=tmp_path)
    summary = out["summary"]
    assert set(summary["radio"]) == {"lte", "3g", "wifi"} and len(summary) == 6
    lte = summary[summary["radio"] == "lte"].set_index("setting")
    assert lte.loc["poll 15 min", "promotions"] == 4  # polls at 0, 15, 30, 45 min
    assert lte.loc["push", "staleness_median_s"] == 0.0 < lte.loc["poll 15 min", "staleness_median_s"]
    assert (summary["joules_per_day"] > 0).all() and (summary["tail_share"] <= 1).all()
    for name in ("energy_per_day", "energy_tradeoff"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(tmp_path / "energy_per_day.csv").shape[0] == 6
    assert not list(tmp_path.glob(".*.part"))
