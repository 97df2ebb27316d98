"""The radio models and the energy ledger, checked against the figures their sources publish.

The expected values are computed here from the figures as Huang et al. (MobiSys 2012, Tables 3 and 4) and ARO's
3G profile (Qian et al., MobiSys 2011) give them, written out in the papers' own units (mW, ms, mW/Mbps), not
read back from the model: a figure mistyped in mailstudy/energy/radios.py fails here.
"""

from __future__ import annotations

import json
import math

import pytest

from mailstudy.energy import (
    MODELS,
    Activity,
    ModelError,
    TimelineError,
    get_model,
    ledger,
    model_from_dict,
    promotion_delay,
)
from mailstudy.energy.files import load_model
from mailstudy.energy.radios import LTE

# Huang et al. 2012, Table 3 (LTE): promotion, tail base, DRX On in RRC_CONNECTED and RRC_IDLE.
P_PRO, T_PRO = 1210.7e-3, 260.1e-3
P_TAIL, T_TAIL = 1060.0e-3, 11576.0e-3
P_ON_SHORT, P_ON_LONG, T_ON, T_PS, T_PL = 1680.2e-3, 1680.1e-3, 1.0e-3, 20.0e-3, 40.1e-3
P_ON_IDLE, T_ON_IDLE, T_PI = 594.3e-3, 43.2e-3, 1280.2e-3
T_I, T_IS = 100e-3, 20e-3  # DRX inactivity timer and short DRX timer (Section 3)
# Huang et al. 2012, Table 4: P = alpha_u * t_u + alpha_d * t_d + beta (mW, Mbps).
LTE_AU, LTE_AD, LTE_BETA = 438.39, 51.97, 1288.04
WIFI_AU, WIFI_AD, WIFI_BETA = 283.17, 137.01, 132.86


def _drx(p_on: float, period: float) -> float:
    return (T_ON * p_on + (period - T_ON) * P_TAIL) / period


def test_an_isolated_small_transfer_on_lte_is_promotion_plus_tail_at_the_papers_powers():
    one = ledger(get_model("lte"), [Activity(30.0, bytes_up=120, bytes_down=300)])
    assert one.promotions == 1 and one.transfers == 1
    assert one.joules["promotion"] == pytest.approx(P_PRO * T_PRO, rel=1e-12)  # 0.3149 J
    assert one.seconds["promotion"] == pytest.approx(T_PRO, rel=1e-12)
    assert one.seconds["tail"] == pytest.approx(T_TAIL, rel=1e-12)
    tail = T_I * P_TAIL + T_IS * _drx(P_ON_SHORT, T_PS) + (T_TAIL - T_I - T_IS) * _drx(P_ON_LONG, T_PL)
    assert one.joules["tail"] == pytest.approx(tail, rel=1e-12)
    # the paper's round figure, promotion + tail at the tail base power (12.59 J), within the DRX wake-ups' share
    paper = P_PRO * T_PRO + P_TAIL * T_TAIL
    assert paper == pytest.approx(12.585, abs=0.001)
    assert one.total_j == pytest.approx(paper, rel=0.02) and one.total_j > paper
    # the bytes cost the throughput terms' energy per bit, nothing more
    assert one.joules["transfer"] == pytest.approx((LTE_AU * 120 * 8 + LTE_AD * 300 * 8) / 1e9, rel=1e-12)
    assert one.tail_share > 0.97


def test_the_throughput_terms_give_the_papers_bulk_power():
    lte = get_model("lte")
    # Huang et al.'s median LTE rates, 13 Mbit/s down and 6 Mbit/s up, for 10 s each (one packet per ms)
    for mbps, up in ((13, False), (6, True)):
        per_ms = mbps * 1e6 / 8 / 1000
        acts = [Activity(1.0 + i / 1000, bytes_up=per_ms if up else 0, bytes_down=0 if up else per_ms)
                for i in range(10_001)]
        run = ledger(lte, acts)
        assert run.seconds["transfer"] == pytest.approx(10.0)
        watts = run.joules["transfer"] / run.seconds["transfer"]
        expected = ((LTE_AU * mbps if up else LTE_AD * mbps) + LTE_BETA) / 1000  # 3.918 W up, 1.964 W down
        assert watts == pytest.approx(expected, rel=2e-4)  # one ms of bytes more than 10 s: 1e-4
    assert lte.transfer_power(0, 13) == pytest.approx(1.96365, rel=1e-12)
    # Table 4's own alpha_u / alpha_d column: 8.44 (LTE) and 2.07 (WiFi)
    assert round(lte.alpha_up_w_per_mbps / lte.alpha_down_w_per_mbps, 2) == 8.44
    wifi = get_model("wifi")
    assert round(wifi.alpha_up_w_per_mbps / wifi.alpha_down_w_per_mbps, 2) == 2.07
    assert wifi.transfer_power(1, 1) == pytest.approx((WIFI_AU + WIFI_AD + WIFI_BETA) / 1000, rel=1e-12)


def test_wifi_and_3g_isolated_transfers():
    wifi = ledger(get_model("wifi"), [Activity(5.0)])
    assert wifi.joules["promotion"] == pytest.approx(124.4e-3 * 79.1e-3, rel=1e-12)
    assert wifi.joules["tail"] == pytest.approx(119.3e-3 * 238.1e-3, rel=1e-12)
    umts = ledger(get_model("3g"), [Activity(5.0)])
    assert umts.joules["promotion"] == pytest.approx(0.53 * 2.0)
    assert umts.joules["tail"] == pytest.approx(0.7 * 5 + 0.35 * 12)
    assert umts.seconds["tail"] == pytest.approx(17.0)
    # 2000 B down 8 s later finds the radio in FACH: promoted to DCH (1.5 s at 0.55 W), not from idle
    two = ledger(get_model("3g"), [Activity(5.0), Activity(13.0, bytes_down=2000)])
    assert two.promotions == 2
    assert two.joules["promotion"] == pytest.approx(0.53 * 2.0 + 0.55 * 1.5)
    assert two.seconds["tail"] == pytest.approx(5 + 1.5 + 17)  # DCH 5 s, FACH 1.5 s before the promotion, tail
    # 100 B each way (under ARO's RLC thresholds, 543 B up and 475 B down) is carried in FACH: no promotion,
    # FACH's 12 s timer starts again, and DCH is never reached
    small = ledger(get_model("3g"), [Activity(5.0), Activity(13.0, bytes_up=100, bytes_down=100, t_end=13.5)])
    assert small.promotions == 1
    assert small.seconds["tail"] == pytest.approx(5 + 3 + 12)
    assert small.joules["tail"] == pytest.approx(0.7 * 5 + 0.35 * (3 + 12))
    assert small.joules["transfer"] == pytest.approx(0.35 * 0.5)  # at FACH's power, not DCH's
    assert [s.stage for s in small.segments if s.category == "transfer"] == ["transfer in FACH tail"]
    assert ledger(get_model("3g"), [Activity(5.0), Activity(13.0, 544, 0)]).promotions == 2  # one byte over


def test_a_packet_inside_the_tail_costs_no_promotion_and_cuts_the_tail():
    lte = get_model("lte")
    two = ledger(lte, [Activity(1.0), Activity(6.0)])
    assert two.promotions == 1 and two.transfers == 2
    assert two.seconds["tail"] == pytest.approx(5.0 + T_TAIL)
    far = ledger(lte, [Activity(1.0), Activity(31.0)])
    assert far.promotions == 2
    assert far.seconds["idle"] == pytest.approx(30.0 - T_TAIL - T_PRO)
    # packets closer than Ti are one transfer, in continuous reception between them
    burst = ledger(lte, [Activity(1.0), Activity(1.05), Activity(1.1)])
    assert burst.transfers == 1 and burst.seconds["transfer"] == pytest.approx(0.1)
    assert burst.joules["transfer"] == pytest.approx(0.1 * LTE_BETA / 1000)


def test_a_quiet_day_costs_the_idle_paging_power_and_segments_tile_the_window():
    lte = get_model("lte")
    day = ledger(lte, [], start=0.0, end=86_400.0)
    assert day.total_j == pytest.approx(86_400 * P_ON_IDLE * T_ON_IDLE / T_PI, rel=1e-12)  # 1733 J
    polls = [Activity(t, 500, 2000) for t in range(300, 86_400, 300)]
    run = ledger(lte, polls, start=0.0, end=86_400.0)
    assert sum(run.seconds.values()) == pytest.approx(86_400.0)
    assert sum(s.joules for s in run.segments) == pytest.approx(run.total_j)
    assert all(a.t1 == pytest.approx(b.t0) for a, b in zip(run.segments, run.segments[1:]))
    assert run.promotions == len(polls)
    quick = ledger(lte, polls, start=0.0, end=86_400.0, keep_segments=False)
    assert quick.segments == [] and quick.total_j == pytest.approx(run.total_j)


@pytest.mark.parametrize("acts, words", [
    ([Activity(-1.0)], "activity 0: negative time -1.0 s"),
    ([Activity(2.0), Activity(1.0)], "activity 1 starts at 1.0 s, before activity 0 ends at 2.0 s"),
    ([Activity(1.0, t_end=3.0), Activity(2.0)], "activity 1 starts at 2.0 s, before activity 0 ends at 3.0 s"),
    ([Activity(3.0, t_end=2.0)], "activity 0: ends at 2.0 s, before it starts at 3.0 s"),
    ([Activity(1.0, bytes_up=-5)], "activity 0: negative byte count"),
    ([Activity(math.nan)], "not a finite number"),
])
def test_a_timeline_that_is_not_one_is_refused_in_one_line(acts, words):
    with pytest.raises(TimelineError) as err:
        ledger(get_model("lte"), acts)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_window_that_does_not_hold_the_timeline_is_refused():
    with pytest.raises(TimelineError, match="end 5.0 s is before the last activity ends at 10.0 s"):
        ledger(get_model("lte"), [Activity(10.0)], end=5.0)
    with pytest.raises(TimelineError, match="start 20.0 s is after the first activity"):
        ledger(get_model("lte"), [Activity(10.0)], start=20.0)


def test_promotion_delay_is_the_state_machines():
    lte, umts = get_model("lte"), get_model("3g")
    assert promotion_delay(lte, 5.0) == 0.0
    assert promotion_delay(lte, 11.0) == 0.0
    assert promotion_delay(lte, 12.0) == pytest.approx(T_PRO)  # 260.1 ms, "about 260 ms"
    assert promotion_delay(umts, 3.0) == 0.0  # DCH tail
    assert promotion_delay(umts, 6.0) == 1.5  # FACH
    assert promotion_delay(umts, 6.0, bytes_up=40, bytes_down=60) == 0.0  # a keep-alive FACH carries itself
    assert promotion_delay(lte, 12.0, bytes_up=40, bytes_down=60) == pytest.approx(T_PRO)  # LTE idle carries none
    assert promotion_delay(umts, 60.0) == 2.0  # IDLE
    assert promotion_delay(lte, float("inf")) == pytest.approx(T_PRO)  # long idle: what the model's SYN waits
    for bad in (-1.0, float("nan")):
        with pytest.raises(TimelineError, match="quiet_s"):
            promotion_delay(lte, bad)


def test_every_built_in_figure_has_a_source():
    for m in MODELS.values():
        for key in ("promotion_s", "promotion_power_w", "transfer_power_w", "alpha_up_w_per_mbps",
                    "alpha_down_w_per_mbps", "burst_gap_s", "tail_s", "idle",
                    *(f"tail[{i}]" for i in range(len(m.tail)))):
            assert m.sources.get(key), f"{m.name}: no source for {key}"
    assert "Table 3" in MODELS["lte"].sources["promotion_s"] and "260.1" in MODELS["lte"].sources["promotion_s"]
    assert "MobiSys 2011" in MODELS["3g"].sources["transfer_power_w"]


def test_a_model_with_a_missing_or_bad_field_names_it():
    broken = {k: v for k, v in LTE.items() if k != "tail_s"}
    with pytest.raises(ModelError, match="radio model: missing field 'tail_s'"):
        model_from_dict(broken)
    stage = dict(LTE, tail=[{"name": "x", "duration_s": 1.0}])
    with pytest.raises(ModelError, match=r"tail\[0\]: missing field 'base_power_w'"):
        model_from_dict(stage)
    with pytest.raises(ModelError, match="promotion_s must be a number >= 0, not 'fast'"):
        model_from_dict(dict(LTE, promotion_s="fast"))
    with pytest.raises(ModelError, match="unknown field 'tail_timer'"):
        model_from_dict(dict(LTE, tail_timer=3))
    with pytest.raises(ModelError, match="unknown radio model '5g'"):
        get_model("5g")


def test_a_custom_model_file_in_json_or_toml(tmp_path):
    lte = get_model("lte")
    as_json = tmp_path / "phone.json"
    as_json.write_text(json.dumps(dict(lte.as_dict(), name="phone", tail_s=5.0)))
    phone = load_model(as_json)
    assert phone.name == "phone" and phone.tail_s == 5.0 and phone.tail[-1].duration_s == pytest.approx(4.88)
    assert ledger(phone, [Activity(1.0)]).seconds["tail"] == pytest.approx(5.0)
    toml = tmp_path / "phone.toml"
    toml.write_text('name = "tiny"\ntitle = "a device of mine"\npromotion_s = 0.1\npromotion_power_w = 1.0\n'
                    'transfer_power_w = 1.0\nalpha_up_w_per_mbps = 0\nalpha_down_w_per_mbps = 0\n'
                    'burst_gap_s = 0.1\ntail_s = 2.0\nidle = {base_power_w = 0.01}\n'
                    '[[tail]]\nname = "tail"\nbase_power_w = 0.5\n')
    tiny = load_model(toml)
    assert ledger(tiny, [Activity(1.0)]).total_j == pytest.approx(0.1 * 1.0 + 2.0 * 0.5)
    toml.write_text(toml.read_text().replace("tail_s = 2.0\n", ""))
    with pytest.raises(ModelError, match=r"phone.toml': missing field 'tail_s'"):
        load_model(toml)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="is not valid JSON"):
        load_model(tmp_path / "bad.json")
    with pytest.raises(ModelError, match="cannot read radio model file"):
        load_model(tmp_path / "missing.json")


def test_a_fleet_days_rows_become_one_devices_radio_timeline():
    from mailstudy.energy.fleet import device_activities, device_day_ledger

    rows = [{"device": 0, "t_sim_s": t, "bytes_up": 400, "bytes_down": 4000, "network_s": 0.5, "held_s": None,
             "final_round": False} for t in range(0, 3600, 900)]
    rows.append({"device": 0, "t_sim_s": 3600.0, "bytes_up": 400, "bytes_down": 4000, "network_s": 0.5,
                 "held_s": None, "final_round": True})  # the fleet's closing sync: the next period's first poll
    rows.append({"device": 1, "t_sim_s": 0.0, "bytes_up": 900, "bytes_down": 9000, "network_s": 2.0,
                 "held_s": 3600.0, "final_round": True})  # an IDLE connection held all period
    polls = device_activities(rows, 0, keepalive_s=1740.0)
    assert [a.t for a in polls] == [0, 900, 1800, 2700] and polls[0].end == 0.5
    idle = device_activities(rows, 1, keepalive_s=1740.0, arrivals=[100.0, 2000.0, 5000.0])
    assert [a.t for a in idle] == [0.0, 100.0, 1740.0, 2000.0, 3480.0, 3600.0]  # open, push, keep-alive, ..., close
    assert idle[0].bytes_down == 9000 and sum(a.bytes_down for a in idle) == 9000
    lte = get_model("lte")
    day = device_day_ledger(lte, rows, 0, 3600.0, 1740.0)
    assert day.end - day.start == pytest.approx(3600.0)
    assert day.promotions == 4 and day.joules["promotion"] == pytest.approx(4 * P_PRO * T_PRO)
    assert day.seconds["transfer"] == pytest.approx(4 * 0.5)
    assert day.seconds["tail"] == pytest.approx(4 * T_TAIL)
