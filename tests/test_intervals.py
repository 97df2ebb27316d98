"""The one summary of per-seed rows (mailstudy.study.intervals): medians, bootstrap intervals, the column names
the charts read, break-even distributions."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest

from mailstudy.study.intervals import (breakeven_distribution, breakeven_summary, median_interval, summarize)


def test_a_known_distributions_interval_contains_its_median():
    rng = random.Random(7)
    values = [rng.gauss(100.0, 15.0) for _ in range(40)]  # the population's median is 100
    med, lo, hi = median_interval(values)
    assert lo < med < hi
    assert lo < 100.0 < hi
    assert hi - lo < 30  # 40 draws pin a median of a spread of 15 closer than two standard deviations


def test_the_interval_is_the_same_every_run():
    values = [0.317, 0.142, 0.566, 0.562, 0.107, 0.2, 0.3, 0.45, 0.5, 0.25]
    assert median_interval(values) == median_interval(list(reversed(values)))


def test_one_seed_gives_lo_equal_hi_equal_value_and_says_so():
    df = pd.DataFrame({"label": ["IMAP"], "seed": [3], "bytes_down": [1234]})
    out = summarize(df, ["label"])
    assert out.to_dict("records") == [{"label": "IMAP", "seeds": 1, "bytes_down": 1234.0,
                                       "bytes_down_lo": 1234.0, "bytes_down_hi": 1234.0}]


def test_columns_are_named_metric_lo_hi_seeds_and_constant_columns_stay():
    df = pd.DataFrame({"label": ["a"] * 10 + ["b"] * 10, "seed": list(range(10)) * 2,
                       "bytes_down": [float(i) for i in range(20)], "rtt_s": [0.05] * 20, "repeat": [0] * 20,
                       "mailbox_path": [f"/tmp/{i}" for i in range(20)]})
    out = summarize(df, ["label"])
    assert list(out.columns) == ["label", "seeds", "bytes_down", "bytes_down_lo", "bytes_down_hi", "rtt_s",
                                 "rtt_s_lo", "rtt_s_hi"]
    a = out[out.label == "a"].iloc[0]
    assert a.seeds == 10 and a.bytes_down == 4.5 and a.bytes_down_lo < 4.5 < a.bytes_down_hi
    assert a.rtt_s == a.rtt_s_lo == a.rtt_s_hi == 0.05  # a value all seeds share has no spread
    assert "mailbox_path" not in out  # differs between a group's rows: dropped, never one seed's value shown


def test_a_breakeven_over_seeds_is_a_distribution():
    seeds = [0.317, 0.142, 0.566, 0.562, 0.107]  # issue 17: 4G waiting break-even over seeds 0 to 4
    d = breakeven_distribution(seeds)
    assert d["median"] == 0.317 and d["seeds"] == 5 and d["never"] == 0 and d["values"] == seeds
    assert d["lo"] <= 0.317 <= d["hi"] and d["lo"] >= 0.107 and d["hi"] <= 0.566


def test_a_seed_that_never_breaks_even_ranks_above_every_fraction():
    d = breakeven_distribution([0.3, None, None, None, 0.2])
    assert d["median"] is None and d["hi"] is None and d["never"] == 3  # most seeds: never
    assert breakeven_distribution([6.4, 3.7])["median"] == pytest.approx(5.05)  # above 1 is a figure, kept
    assert d["lo"] == pytest.approx(0.2)
    df = pd.DataFrame({"profile": ["4g"] * 3, "seed": [2, 0, 1], "waiting_r": [0.5, 0.1, math.nan]})
    row = breakeven_summary(df, ["profile"], ["waiting_r"]).iloc[0]
    assert row.waiting_r == 0.5 and row.waiting_r_never == 1 and row.seeds == 3
    assert row.waiting_r_values == "0.1;never;0.5"  # in seed order


@pytest.mark.parametrize("bad", [[], (), 3, "0,1", [0, -1], [0, 1.5], [True], [0, 0], [2**31 + 1], None])
def test_the_seeds_parameter_refuses_nonsense_in_one_line(bad):
    from mailstudy.study.parameters import ParameterError, check_parameters, check_seeds

    if bad is None:  # None means "the notebook's default"
        check_parameters(SEEDS=None)
        return
    with pytest.raises(ParameterError, match="SEEDS") as err:
        check_parameters(SEEDS=bad)
    assert "\n" not in str(err.value)
    assert check_seeds(range(3)) == [0, 1, 2]


def test_volume_tables_over_two_seeds_are_medians_with_intervals_and_a_breakeven_distribution():
    """Real sessions on the embedded server: two seeds' mailboxes differ, so their bytes do, and the summary
    says so with an interval around each median."""
    from mailstudy.study.volume import traffic_tables

    out = traffic_tables(["embedded"], (4,), [0.0, 1.0], read_messages=4, sizes="buchner2009", seeds=[0, 1])
    per_seed, volume = out["volume_seeds"], out["volume"]
    assert sorted(per_seed["seed"].unique()) == [0, 1] and len(volume) == 4 and set(volume["seeds"]) == {2}
    for _, row in volume.iterrows():
        seeds = per_seed[per_seed["label"] == row["label"]]["bytes_down"]
        assert row["bytes_down"] == seeds.median()
        assert row["bytes_down_lo"] == seeds.min() and row["bytes_down_hi"] == seeds.max()  # two values
        assert row["bytes_down_lo"] < row["bytes_down_hi"]  # two corpora, two sizes
    even = out["breakeven"].set_index("protocol")
    assert set(even.index) == {"imap", "pop3"} and (even["seeds"] == 2).all()
    assert even["bytes_r_values"].str.count(";").eq(1).all()  # one value per seed
