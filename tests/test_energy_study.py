"""Notebook 07's sweep, summary and charts: real fleet days priced on each radio, written atomically."""

from __future__ import annotations

import pandas as pd
import pytest

from mailstudy.study.energy import (STANDARD_SETTINGS, Setting, catch_up_energy, check_seeds, summarize,
                                    summarize_catch_up_energy)
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


def test_the_energy_break_even_is_where_header_first_passes_download_all():
    from mailstudy.study.energy import energy_breakeven

    rows = pd.DataFrame([{"protocol": "imap", "radio": "lte", "strategy": s, "read_fraction": f, "joules_together": j}
                         for s, f, j in [("download-all", None, 15.0), ("header-first", 0.0, 13.0),
                                         ("header-first", 0.5, 14.0), ("header-first", 1.0, 18.0)]])
    assert energy_breakeven(rows, "imap", "lte") == pytest.approx(0.625)  # 14 -> 18 crosses 15 a quarter on
    cheap = rows.assign(joules_together=[30.0, 13.0, 14.0, 18.0])
    assert energy_breakeven(cheap, "imap", "lte") is None


def test_spread_opens_moves_each_open_to_the_users_pace():
    from types import SimpleNamespace

    from mailstudy.energy.timeline import spread_opens, trace_activities
    from mailstudy.wire import DOWN, UP, Chunk

    ms, t0 = 1_000_000, 5_000_000_000  # perf_counter_ns: the connect at 5 s
    chunks = [Chunk(DOWN, 1 * ms, b"+OK hi\r\n"), Chunk(UP, 2 * ms, b"TOP 1 0\r\n"), Chunk(DOWN, 3 * ms, b"x" * 50),
              Chunk(UP, 5 * ms, b"RETR 1\r\n"), Chunk(DOWN, 6 * ms, b"y" * 500), Chunk(DOWN, 7 * ms, b"z" * 500),
              Chunk(UP, 8 * ms, b"RETR 2\r\n"), Chunk(DOWN, 9 * ms, b"w" * 400),
              Chunk(UP, 10 * ms, b"QUIT\r\n"), Chunk(DOWN, 11 * ms, b"+OK bye\r\n")]
    chunks = [Chunk(c.direction, t0 + c.t, c.data) for c in chunks]
    trace = SimpleNamespace(t_connect_ns=t0, chunks=chunks, milestones={"list_ready": t0 + 4 * ms})
    spread = spread_opens(trace, 60.0)
    # the connect, the greeting, the list; each open a minute after the last; QUIT as it followed the last open
    assert [round(a.t, 3) for a in spread] == [0.0, 0.001, 0.002, 0.003, 60.003, 60.004, 60.005, 120.003,
                                               120.004, 120.005, 120.006]
    together = trace_activities(trace)
    assert [a.bytes_down for a in spread] == [a.bytes_down for a in together]
    lte = ledger_of(spread)
    assert lte.promotions == 3  # the list, and each open after the tail has run out


def ledger_of(acts):
    from mailstudy.energy import get_model, ledger

    return ledger(get_model("lte"), acts)


def test_reading_energy_of_real_sessions_through_a_link():
    from mailstudy.energy import MODELS
    from mailstudy.study.energy import read_energy_rows

    rows = read_energy_rows(fractions=(0.0, 0.5), messages=6, protocols=("pop3",), profile="lan",
                            models=[MODELS["lte"]])
    da, none, half = (rows.iloc[i] for i in range(3))
    assert da["strategy"] == "download-all" and da["bodies_fetched"] == 6
    assert none["bodies_fetched"] == 0 and half["bodies_fetched"] == 3
    assert none["joules_spread"] == pytest.approx(none["joules_together"])  # nothing opened: nothing to spread
    assert half["promotions_spread"] == 1 + 3  # the list, then each open after a quiet minute
    assert half["joules_spread"] > half["joules_together"] + 3 * 12.0  # a tail per open, at ~1 W for 11.6 s


def test_reading_sessions_in_a_pool_give_the_rows_of_one_at_a_time():
    """The read-energy sessions run in a process pool (notebook 07, 10 seeds) come back in the serial order with
    the same counts: each one its own real server and link."""
    from mailstudy.energy import MODELS
    from mailstudy.study.energy import read_energy_rows
    from mailstudy.study.experiment import count_executor

    kw = dict(fractions=(0.0, 0.5), messages=6, protocols=("pop3",), profile="lan", seeds=(0, 1),
              models=[MODELS["lte"]])
    serial = read_energy_rows(**kw)
    with count_executor(2) as pool:
        pooled = read_energy_rows(**kw, executor=pool)
    keys = ["strategy", "read_fraction", "seed", "radio", "bodies_fetched", "bytes_down"]
    assert len(pooled) == 6 and pooled[keys].equals(serial[keys])
    assert list(pooled["bodies_fetched"]) == [6, 6, 0, 3, 0, 3]


def test_batching_keeps_the_first_poll_after_n_arrivals():
    """Polls every 10 s, arrivals at 1, 2, 15 and 31 s: every poll as measured; after 1 arrival the polls at
    10, 20 and 40 s (the empty ones go, their bytes ride on the next kept one); after 2 the ones at 10 and 40 s;
    after 8 none, and every arrival waits for the day's end."""
    from mailstudy.energy.fleet import batched_polls

    polls = [{"device": 0, "t_sim_s": float(t), "bytes_up": 10, "bytes_down": 100, "network_s": 1.0}
             for t in (0, 10, 20, 30, 40)]
    arrivals = (1.0, 2.0, 15.0, 31.0)
    every, delays = batched_polls(polls, 0, arrivals, 0, 60.0)
    assert [s["t_sim_s"] for s in every] == [0, 10, 20, 30, 40] and delays == [10.0, 9.0, 6.0, 10.0]
    one, delays = batched_polls(polls, 0, arrivals, 1, 60.0)
    assert [s["t_sim_s"] for s in one] == [10, 20, 40]
    assert [s["bytes_down"] for s in one] == [200, 100, 200] and delays == [10.0, 9.0, 6.0, 10.0]
    two, delays = batched_polls(polls, 0, arrivals, 2, 60.0)
    assert [s["t_sim_s"] for s in two] == [10, 40] and delays == [10.0, 9.0, 26.0, 10.0]
    assert [s["bytes_down"] for s in two] == [200, 300]
    assert batched_polls(polls, 0, arrivals, 8, 60.0) == ([], [59.0, 58.0, 45.0, 29.0])
    idle = [{"device": 0, "t_sim_s": 0.0, "bytes_up": 1, "bytes_down": 1, "held_s": 50.0}]
    assert batched_polls(idle, 0, arrivals, 2, 60.0) == (idle, [])


def test_the_batching_what_if_saves_tail_on_lte(tmp_path):
    from mailstudy.faces.energy_charts import batching

    out = batching((Setting("poll 5 min", "thunderbird", 300.0), Setting("push", "thunderbird", None, True)),
                   seeds=(0,), hours=2, rate=100, batches=(1, 4), results=tmp_path, figures=tmp_path)
    s = out["summary"]
    assert set(s["setting"]) == {"poll 5 min"} and sorted(set(s["batch"])) == [0, 1, 4]  # push has no polls
    lte = s[s["radio"] == "lte"].set_index("batch")
    assert lte.loc[0, "polls"] == 24 and lte.loc[0, "saving"] == 0
    assert 0 < lte.loc[1, "saving"] < lte.loc[4, "saving"] < 1  # fewer wake-ups, less tail
    assert lte.loc[4, "tail_j"] < lte.loc[1, "tail_j"] < lte.loc[0, "tail_j"]
    assert lte.loc[4, "staleness_median_s"] > lte.loc[1, "staleness_median_s"] == lte.loc[0, "staleness_median_s"]
    assert (tmp_path / "energy_batching.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(tmp_path / "energy_batching.csv").shape[0] == len(s)


@pytest.mark.cyrus
def test_jmap_catch_up_is_priced_per_sync_beside_imap(cyrus_usable):
    """The catch-up on one Cyrus through lte-2012's link, priced on LTE: joules for every sync of both protocols;
    JMAP's poll (one round trip) keeps the radio out of idle no longer than IMAP's (five), and its change sync
    moves fewer bytes."""
    rows = catch_up_energy(messages=5, new=2, seeds=(0,))
    assert len(rows) == 4 and set(rows["radio"]) == {"lte"} and (rows["joules"] > 0).all()
    got = {(r.protocol, r.workload): r for r in rows.itertuples()}
    assert set(got) == {(p, w) for p in ("imap", "jmap") for w in ("change-sync", "poll")}
    jp, ip = got["jmap", "poll"], got["imap", "poll"]
    assert (jp.round_trips, ip.round_trips) == (1, 5)
    assert jp.radio_s <= ip.radio_s and jp.joules <= ip.joules
    assert got["jmap", "change-sync"].bytes < got["imap", "change-sync"].bytes
    table = summarize_catch_up_energy(rows)
    assert list(table["seeds"]) == [1] * 4 and {"joules_lo", "joules_hi", "radio_s"} <= set(table.columns)


def test_a_device_day_read_back_from_the_cache_prices_as_it_ran(tmp_path):
    """The fleet cache keeps a device's day as JSON; priced again from there (notebook 06 pricing the days 07
    ran, or the batching what-if the days of the energy day), every joule and count is what the run gave."""
    from mailstudy.study.energy import batching_rows, energy_day_rows, fleet_day

    settings = (Setting("poll 15 min", "thunderbird", 900.0), Setting("POP3 15 min", "thunderbird-pop3", 900.0))
    fleet_day.cache_clear()
    ran = energy_day_rows(settings, (3,), 1, 48, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("fleet-*.json"))) == 2
    fleet_day.cache_clear()  # as another process: only the files remain
    again = energy_day_rows(settings, (3,), 1, 48, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(ran, again)
    assert (ran["joules_per_day"] > 0).all() and (ran["sessions"] > 0).all()
    fleet_day.cache_clear()
    batched = batching_rows(settings, (3,), 1, 48, cache_dir=tmp_path)
    measured = batched[(batched["batch"] == 0) & (batched["radio"] == "lte")].set_index("setting")
    lte = ran[ran["radio"] == "lte"].set_index("setting")
    assert measured["joules_per_day"].round(6).to_dict() == lte["joules_per_day"].round(6).to_dict()
    assert len(list(tmp_path.glob("fleet-*.json"))) == 2  # the what-if ran no day of its own
