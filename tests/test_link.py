"""The link: profiles and their sources, the relay's rule (pure and live), counts unchanged through the relay on
both servers and protocols, captures on the client's side, the model against the link, and bad input.

Timing checks here are coarse on purpose (a shared 2-core machine): lower bounds the relay guarantees by
construction, and upper bounds several times the goal. The exact goals live in ``bench/link.py``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

import needs

from mailstudy.link import (BASELINE, PROFILES, Link, ModelInputError, Profile, ProfileError, RoundTrip, Session,
                            breakeven, custom, get_profile, parse_duration, parse_rate, predict, rows,
                            session_from_chunks)
from mailstudy.link.profiles import HEADER_BYTES, INITIAL_WINDOW, MSS, TRACED
from mailstudy.link.relay import wait_gone
from mailstudy.link.schedule import Direction, rto
from mailstudy.link.traces import TraceError, mean_rate_bps, shipped
from mailstudy.live.access import SessionError
from mailstudy.study.experiment import Experiment, run_experiment
from mailstudy.wire import DOWN, UP

CLI = [sys.executable, "-m", "mailstudy.cli"]
COUNTS = ("bytes_up", "bytes_down", "commands", "round_trips", "headers_fetched", "bodies_fetched",
          "integrity_ok", "exchanges_failed")


# -- profiles (pure) -------------------------------------------------------------------------------------------
def test_every_profile_shows_its_source_and_the_issue_figures():
    assert list(PROFILES) == ["loopback", "lan", "4g", "lte-2012", "3g", "edge", "satellite-geo"]
    assert all(p.source for p in PROFILES.values())
    g4 = PROFILES["4g"]
    assert (g4.rtt_s, g4.down_bps, g4.up_bps) == (0.055, 21.3e6, 6.3e6) and "OpenSignal" in g4.source
    assert "assumption" in PROFILES["3g"].source and "assumption" in PROFILES["lan"].source
    assert PROFILES["satellite-geo"].rtt_s >= 4 * 35_786e3 / 299_792_458  # light alone: >= 477 ms
    assert not PROFILES["loopback"].shaped and PROFILES["lan"].shaped
    assert [r["name"] for r in rows()] == list(PROFILES)


def test_profiles_carry_their_spread_and_sample_it_per_seed():
    g4 = PROFILES["4g"]
    assert "all users, not 4G only" in g4.source and "middle of that range: ours" in g4.source
    assert g4.rtt_spread == ("uniform", 0.0441, 0.0664) and "Mississippi" in g4.spread_source
    draws = [g4.sample(seed) for seed in range(2000)]
    assert draws[7] == g4.sample(7) and draws[7] != draws[8] and draws[7].name == "4g"
    assert all(0.0441 <= d.rtt_s <= 0.0664 and 12.1e6 <= d.down_bps <= 32.9e6 for d in draws)
    assert all(d.up_bps == 6.3e6 for d in draws)  # no published spread: the figure stays
    assert statistics.mean(d.down_bps for d in draws) == pytest.approx(21.3e6, rel=0.02)  # the source's mean
    assert (g4.rtt_s, g4.down_bps) == (0.055, 21.3e6) and g4.sample_seed is None and draws[3].sample_seed == 3
    assert PROFILES["3g"].sample(5) is PROFILES["3g"]  # an assumption has no spread to draw from
    assert get_profile(json.loads(json.dumps(g4.to_dict()))) == g4  # as a cached row or the relay gets it
    with pytest.raises(ProfileError, match="bad down_spread"):
        Profile("x", down_spread=("triangular", 5e6, 1e6, 2e6))


@pytest.mark.parametrize("name", [n for n, p in {**PROFILES, **TRACED}.items() if p.spread])
def test_every_spread_stays_in_its_sources_range_and_centres_on_the_profiles_figure(name):
    """Every profile is sampleable; where its source gives a spread, 4000 draws stay inside the range the source
    states, and their centre is the profile's own figure: the median of a uniform range (the middle of the
    range the source gives), the mean of a triangle (a source's average over places)."""
    p = get_profile(name)
    draws = [p.sample(seed) for seed in range(4000)]
    for field, spread in (("rtt_s", p.rtt_spread), ("down_bps", p.down_spread), ("up_bps", p.up_spread)):
        values = [getattr(d, field) for d in draws]
        if spread is None:
            assert set(values) == {getattr(p, field)}  # no published spread: the figure stays
            continue
        assert all(spread[1] <= v <= spread[2] for v in values) and len(set(values)) > 3900
        centre = statistics.median(values) if spread[0] == "uniform" else statistics.mean(values)
        assert centre == pytest.approx(getattr(p, field), rel=0.02), (field, centre)
    assert p.spread_source


def test_units_parse_and_bad_values_name_the_accepted_forms():
    assert parse_duration("80ms") == pytest.approx(0.08) and parse_duration("500us") == pytest.approx(5e-4)
    assert parse_rate("10mbit") == 10e6 and parse_rate("200kbit") == 200e3 and parse_rate("1Gbit") == 1e9
    for bad in ("-3ms", "80", "fast", "8 parsecs"):
        with pytest.raises(ProfileError, match="accepted: .*80ms"):
            parse_duration(bad)
    for bad in ("0mbit", "-1mbit", "10", "10mb/s"):
        with pytest.raises(ProfileError, match="accepted: .*10mbit"):
            parse_rate(bad)
    with pytest.raises(ProfileError, match="choose one of loopback, lan, 4g"):
        get_profile("5g")
    with pytest.raises(ProfileError):
        Profile("x", down_bps=0)
    c = custom("4g", rtt="80ms", jitter="5ms")
    assert (c.name, c.rtt_s, c.down_bps, c.jitter_s) == ("custom", 0.08, 21.3e6, 0.005)
    simple = custom("4g", tcp="simple")  # the named control: the link before TCP's behaviour was modelled
    assert (simple.name, simple.slow_start, simple.idle_restart, simple.rwnd_bytes, simple.header_bytes) == \
        ("4g+simple-tcp", False, False, None, 0) and simple.simple() is simple
    assert custom("4g", tcp="full") is PROFILES["4g"] and custom("4g", slow_start=False).name == "4g-no-slow-start"
    with pytest.raises(ProfileError, match="unknown tcp mode 'reno'; choose full"):
        custom("4g", tcp="reno")


# -- the rule (pure) -------------------------------------------------------------------------------------------
def test_serialization_is_per_byte_and_the_handshake_costs_one_rtt():
    p = Profile("t", rtt_s=0.1, down_bps=1e6, up_bps=1e6)
    d = Direction(p, down=True, t_open=0.0)
    pieces = d.schedule(1.0, 10_000)  # 80 ms of payload at 1 Mbit/s, plus 52 B of header per segment
    assert sum(n for _, n in pieces) == 10_000 and max(n for _, n in pieces) <= MSS and len(pieces) == 7
    assert pieces[0][0] == pytest.approx(1.0 + 1500 * 8 / 1e6 + 0.05)  # the first packet does not wait for all
    assert pieces[-1][0] == pytest.approx(1.0 + (10_000 + 7 * HEADER_BYTES) * 8 / 1e6 + 0.05)
    simple = Direction(p.simple(), down=True, t_open=0.0).schedule(1.0, 10_000)  # the named control: payload only
    assert simple[-1][0] == pytest.approx(1.0 + 0.08 + 0.05) and p.simple().name == "t+simple-tcp"
    early = Direction(p, down=False, t_open=0.0).schedule(0.0, 10)
    assert early[0][0] == pytest.approx(0.1)  # no byte before one RTT after connect


def test_jitter_is_seeded_and_never_reorders():
    p = Profile("j", rtt_s=0.05, jitter_s=0.02)

    def arrivals(seed):
        d = Direction(p, down=True, t_open=0.0, seed=seed)
        return [t for i in range(300) for t, _ in d.schedule(1.0 + i * 0.001, 100)]

    a = arrivals(1)
    assert a == sorted(a) and a == arrivals(1) and a != arrivals(2)
    assert len(set(round(t - 1.0 - i * 0.001, 9) for i, t in enumerate(a))) > 10  # the delay really varies


def test_slow_start_is_on_by_default_and_grows_per_acknowledged_byte():
    base = Profile("s", rtt_s=0.1, down_bps=20e6, header_bytes=0, rwnd_bytes=None)
    assert base.slow_start and base.idle_restart and PROFILES["4g"].slow_start
    plain = Direction(replace(base, slow_start=False), True, 0.0).schedule(1.0, 500_000)[-1][0]
    slow = Direction(base, True, 0.0).schedule(1.0, 500_000)[-1][0]
    assert plain == pytest.approx(1.0 + 0.2 + 0.05)
    # 10, 20, 40, 80, 160 segments: each round one RTT after the last began, the window doubling as ACKs return
    d = Direction(base, True, 0.0)
    pieces = d.schedule(1.0, 346 * MSS)  # 346 = 10 + 20 + 40 + 80 + 160 + 36
    rounds = sorted({round(t - 1.0 - 0.05, 1) for t, _ in pieces})
    assert rounds[:5] == [0.0, 0.1, 0.2, 0.3, 0.4] and slow > plain + 0.1
    first_round = Direction(base, True, 0.0).schedule(1.0, INITIAL_WINDOW * MSS)
    assert first_round[-1][0] == pytest.approx(1.0 + INITIAL_WINDOW * MSS * 8 / 20e6 + 0.05)
    eleven = Direction(base, True, 0.0).schedule(1.0, (INITIAL_WINDOW + 1) * MSS)
    # the 11th waits for the first ACK: that segment's serialization and one RTT, then its own serialization
    assert eleven[-1][0] == pytest.approx(1.0 + 2 * MSS * 8 / 20e6 + 0.1 + 0.05)


def test_small_flights_keep_the_initial_window_and_idle_restarts_it():
    p = Profile("i", rtt_s=0.1, down_bps=100e6, header_bytes=0, rwnd_bytes=None)
    d = Direction(p, True, 0.0)
    for i in range(20):  # request-response: one small segment per RTT never fills the window, so it never grows
        d.schedule(1.0 + 0.2 * i, 200)
    assert d.cwnd == INITIAL_WINDOW * MSS
    d.schedule(10.0, 400_000)
    grown = d.cwnd
    assert grown > 100 * MSS
    idle = 10.0 + 0.5 + 5 * rto(0.1)  # five RTOs after the last send: halved each RTO, down to the initial window
    d.schedule(idle, MSS)
    assert d.cwnd == INITIAL_WINDOW * MSS
    kept = Direction(replace(p, idle_restart=False), True, 0.0)
    kept.schedule(10.0, 400_000)
    kept.schedule(idle, MSS)
    assert kept.cwnd > 100 * MSS


def test_the_receive_window_caps_the_bytes_in_flight():
    p = Profile("r", rtt_s=0.5, down_bps=100e6, header_bytes=0, slow_start=False, rwnd_bytes=45 * MSS)
    last = Direction(p, True, 0.0).schedule(1.0, 450 * MSS)[-1][0]
    assert last == pytest.approx(1.0 + 9 * 0.5 + 0.25, abs=0.02)  # ten windows, one RTT each


def test_loss_is_retransmitted_late_never_dropped_or_reordered():
    p = Profile("l", rtt_s=0.1, down_bps=10e6, loss=0.05)
    d = Direction(p, True, 0.0, seed=3)
    pieces = d.schedule(1.0, 2_000_000)
    assert sum(n for _, n in pieces) == 2_000_000 and [t for t, _ in pieces] == sorted(t for t, _ in pieces)
    assert d.retransmits > 20
    clean = Direction(replace(p, loss=0.0), True, 0.0).schedule(1.0, 2_000_000)[-1][0]
    assert pieces[-1][0] > clean
    unlimited = Direction(Profile("u", rtt_s=0.1, loss=0.05), True, 0.0, seed=3)  # loss is drawn per segment
    assert len(unlimited.schedule(1.0, 100 * MSS)) == 100 and unlimited.retransmits >= 1
    # a lone lost segment waits for the RTO (SRTT + max(4 RTTVAR, 200 ms)); three followers: fast retransmit
    one = Direction(replace(p, loss_trace=None, loss=0.0), True, 0.0)
    one.loss_flags, one.loss_pos = (True, False), 0
    assert one.schedule(1.0, 100)[0][0] == pytest.approx(1.0 + 152 * 8 / 10e6 + rto(0.1) + 152 * 8 / 10e6 + 0.05)
    four = Direction(replace(p, loss=0.0), True, 0.0)
    four.loss_flags, four.loss_pos = (True, False, False, False, False), 0  # the 5th draw: the copy
    got = four.schedule(1.0, 4 * MSS)
    third_follower = 1.0 + 4 * 1500 * 8 / 10e6 + 0.05
    assert got[0][0] == pytest.approx(third_follower + 0.05 + 1500 * 8 / 10e6 + 0.05)
    assert [t for t, _ in got[1:]] == [got[0][0]] * 3  # held behind the hole


def test_the_response_to_loss_is_cubics_and_reno_stays_reachable(tmp_path):
    """One loss in a long answer: CUBIC (the default, RFC 9438) keeps 0.7 of the window, Reno half of what was in
    flight; CUBIC then grows back toward the window it lost (W_max) faster than Reno's segment per RTT."""
    flags = tmp_path / "one.loss"
    flags.write_text("0\n" * 400 + "1\n" + "0\n" * 5000)  # the 401st segment lost, once: followers to spare
    p = Profile("c", rtt_s=0.1, down_bps=100e6, loss_trace=str(flags))
    seen = {}
    for cc in ("cubic", "reno"):
        d = Direction(p, True, 0.0, cc=cc)
        before = []
        d._reduce = (lambda orig: lambda when, timeout: (before.append((d.cwnd, d.inflight)), orig(when, timeout)))(d._reduce)
        pieces = d.schedule(1.0, 3_000_000)
        (cwnd, inflight), = before  # one reduction: one recovery
        seen[cc] = pieces[-1][0]
        assert d.retransmits == 1 and d.timeouts == 0
        assert d.ssthresh == pytest.approx(0.7 * cwnd if cc == "cubic" else inflight / 2)
    assert seen["cubic"] < seen["reno"]
    with pytest.raises(ValueError, match="choose one of cubic, reno"):
        Direction(p, True, 0.0, cc="vegas")


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan")])
def test_a_loss_rate_outside_0_1_is_one_line(bad):
    with pytest.raises(ProfileError, match=r"loss rate must be in \[0, 1\)"):
        Profile("x", loss=bad)
    with pytest.raises(ProfileError, match=r"loss rate must be in \[0, 1\)|bad loss rate"):
        custom("4g", loss=str(bad))
    assert custom("4g", loss="1%").loss == pytest.approx(0.01) and custom("4g", loss="0.02").loss == 0.02


def test_jitter_distributions_are_seeded_and_exponential_only_adds():
    for dist in ("normal", "uniform", "exponential"):
        p = Profile("j", rtt_s=0.05, jitter_s=0.01, jitter_dist=dist)
        a = [t for i in range(200) for t, _ in Direction(p, True, 0.0, seed=1).schedule(1.0 + i * 0.01, 10)]
        b = [t for i in range(200) for t, _ in Direction(p, True, 0.0, seed=1).schedule(1.0 + i * 0.01, 10)]
        assert a == b
    d = Direction(Profile("e", rtt_s=0.05, jitter_s=0.01, jitter_dist="exponential"), True, 0.0, seed=2)
    delays = [d.schedule(1.0 + i, 10)[0][0] - 1.0 - i for i in range(300)]
    assert min(delays) >= 0.025 and statistics.mean(delays) == pytest.approx(0.035, abs=0.003)
    with pytest.raises(ProfileError, match="choose one of normal, uniform, exponential"):
        Profile("x", jitter_dist="pareto")


# -- traces (pure) -----------------------------------------------------------------------------------------
def test_a_trace_gives_one_1500_byte_packet_per_line_and_loops(tmp_path):
    every_ms = tmp_path / "12mbit.trace"
    every_ms.write_text("".join(f"{ms}\n" for ms in range(1, 101)))  # 100 opportunities in 100 ms, looping
    assert mean_rate_bps(every_ms) == pytest.approx(12e6)
    p = Profile("t", rtt_s=0.02, down_trace=str(every_ms), slow_start=False)
    d = Direction(p, True, 0.0)
    pieces = d.schedule(0.0, 250 * MSS)  # 250 full segments: one opportunity each, through 2.5 loops
    assert [t for t, _ in pieces[:3]] == pytest.approx([0.02, 0.02, 0.02])  # the handshake holds the first ones
    assert pieces[-1][0] == pytest.approx(0.250 + 0.01)
    assert d.schedule(0.5005, 10)[0][0] == pytest.approx(0.501 + 0.01)  # unused opportunities are lost
    shipped_ones = sorted(shipped())
    assert shipped_ones == ["4g-us-2019-down.trace", "4g-us-2019-up.trace", "lte-2012-down.trace",
                            "lte-2012-up.trace"]
    assert mean_rate_bps("4g-us-2019-down.trace") == pytest.approx(21.3e6, rel=1e-3)
    assert get_profile("4g-trace").down_trace == "4g-us-2019-down.trace" and not get_profile("4g-trace").only_delays


def test_the_shipped_traces_are_what_the_seeded_generator_makes(tmp_path):
    from mailstudy.link.tracegen import write_all

    for made in write_all(tmp_path):
        assert made.read_bytes() == shipped()[made.name].read_bytes(), made.name


@pytest.mark.parametrize("text, words", [
    ("", "is empty"),
    ("# nothing\n\n", "is empty"),
    ("1\n2\nfast\n", "line 3: 'fast' is not a number"),
    ("1\n5\n3\n", "line 3: 3 ms comes before the line above"),
    ("0\n0\n", "the last time is 0 ms"),
    ("1\n-4\n", "line 2: '-4' is not a time >= 0 ms"),
])
def test_a_bad_trace_is_one_line_naming_the_line(tmp_path, text, words):
    bad = tmp_path / "bad.trace"
    bad.write_text(text)
    with pytest.raises(TraceError) as e:
        custom("4g", down_trace=str(bad))
    assert words in str(e.value) and "bad.trace" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(TraceError, match="cannot be read"):
        custom("4g", up_trace=str(tmp_path / "missing.trace"))
    lossy = tmp_path / "loss.txt"
    lossy.write_text("0\n1\n2\n")
    with pytest.raises(TraceError, match="line 3: '2' is not 0"):
        Direction(Profile("l", down_bps=1e6, loss_trace=str(lossy)), True, 0.0)


# -- the model (pure) ------------------------------------------------------------------------------------------
def test_the_model_is_the_formula():
    p = Profile("m", rtt_s=0.1, down_bps=8e6, up_bps=8e5).simple()  # 1 MB/s down, 100 kB/s up; no TCP terms
    streamed = ((0.0, 500_000), (0.2, 500_000))  # produced while the first half is still being serialized
    s = Session(0.001, (RoundTrip(100, 1_000_000, answer=streamed, before_list=True),
                        RoundTrip(1000, 500_000, work_s=0.9, pause_s=0.05, before_list=False, opens=True)))
    m = predict(s, p)
    greeting = 0.15 + 0.001 + 0.05  # accepted at 1.5 RTT, c_0 of work, half an RTT back (0 bytes: no serializing)
    first = 0.1 + 0.001 + 1.0  # RTT + up + down: the server's 0.2 s hides behind the serialization
    second = 0.1 + 0.01 + 0.9 + 0.5  # one piece at the end of the work: work, then serialization
    assert m["time_to_list_s"] == pytest.approx(greeting + first)
    assert m["duration_s"] == pytest.approx(greeting + first + 0.05 + second)
    assert m["open_waits_s"] == pytest.approx([second]) and m["open_median_s"] == pytest.approx(second)
    on = predict(s, replace(p, slow_start=True, header_bytes=HEADER_BYTES))
    assert on["duration_s"] > m["duration_s"]


def test_the_model_can_wait_for_the_radios_promotion():
    """Off by default. With LTE's radio the SYN waits 260.1 ms (Huang et al., Table 3) and every time moves by
    it; a flight 0.05 s after the last answer finds the radio in its tail (no wait); an open a minute later,
    after the 11.576 s tail has run out, waits the promotion again. 3G's FACH after 5 s costs 1.5 s."""
    p = Profile("m", rtt_s=0.1, down_bps=8e6, up_bps=8e5).simple()
    s = Session(0.001, (RoundTrip(100, 1_000_000, before_list=True),
                        RoundTrip(1000, 500_000, work_s=0.9, pause_s=0.05, before_list=False, opens=True)))
    plain, lte = predict(s, p), predict(s, p, radio="lte")
    assert plain["promotion_wait_s"] == 0.0
    assert lte["promotion_wait_s"] == pytest.approx(0.2601)
    for key in ("duration_s", "time_to_list_s"):
        assert lte[key] == pytest.approx(plain[key] + 0.2601)
    assert lte["open_waits_s"] == pytest.approx(plain["open_waits_s"])  # 0.05 s: still in the tail
    warm = predict(s, p, radio="lte", quiet_before_s=5.0)  # a connection inside the last one's tail
    assert warm["duration_s"] == pytest.approx(plain["duration_s"]) and warm["promotion_wait_s"] == 0.0
    later = Session(s.greeting_s, (s.round_trips[0], replace(s.round_trips[1], pause_s=60.0)))
    read_later, read_later_lte = predict(later, p), predict(later, p, radio="lte", quiet_before_s=0.0)
    assert read_later_lte["open_waits_s"][0] == pytest.approx(read_later["open_waits_s"][0] + 0.2601)
    on_3g = predict(replace(later, round_trips=(later.round_trips[0], replace(later.round_trips[1], pause_s=6.0))),
                    p, radio="3g", quiet_before_s=0.0)
    assert on_3g["promotion_wait_s"] == pytest.approx(1.5)  # FACH to DCH (Qian et al.'s ARO)


def test_the_model_takes_the_baselines_delays_out_and_gives_its_times_back():
    """A session recorded through the baseline link (rho = 0.5 ms), modelled on the baseline itself, takes exactly
    the times it was measured in; on loopback each round trip is rho shorter."""
    rho = BASELINE.rtt_s
    ms = 1e-3
    chunks = [(DOWN, 2.5 * ms, 100),  # greeting: accepted at 1.5 rho, c_0 = 1.5 ms, then rho / 2 on the way
              (UP, 3.0 * ms, 20), (DOWN, 4.5 * ms, 300), (DOWN, 5.0 * ms, 700),  # produced 1.0 and 1.5 ms in
              (UP, 5.2 * ms, 10), (UP, 6.2 * ms, 10), (DOWN, 7.0 * ms, 30)]  # a client that sends twice
    s = session_from_chunks(chunks, 0.0, 5.1 * ms, time_scale=1.0, rtt_s=rho)
    assert s.greeting_s == pytest.approx(1.5 * ms) and s.greeting_bytes == 100
    first, second = s.round_trips
    assert [n for _, n in first.answer] == [300, 700]
    assert [o for o, _ in first.answer] == pytest.approx([1.0 * ms, 1.5 * ms])
    assert (first.bytes_up, first.bytes_down, second.pause_s) == (20, 1000, pytest.approx(0.2 * ms))
    assert second.bytes_up == 20 and [q for q, _ in second.request] == pytest.approx([0.0, 1.0 * ms])
    back = predict(s, BASELINE)
    assert back["duration_s"] == pytest.approx(7.0 * ms) and back["time_to_list_s"] == pytest.approx(5.1 * ms)
    assert predict(s, "loopback")["duration_s"] == pytest.approx(7.0 * ms - 4 * rho)  # 2 rho setup, rho a trip


def test_breakeven_closed_form():
    p = Profile("b", rtt_s=0.1)
    none = [RoundTrip(10, 1000)]
    every = [RoundTrip(10, 1000)] + [RoundTrip(10, 4000, before_list=False, opens=True)] * 10
    whole = [RoundTrip(10, 21_000)]
    b = breakeven(none, every, whole, p)
    assert b["bytes_r"] == pytest.approx((21_010 - 1010) / (41_110 - 1010))
    assert b["waiting_r"] == pytest.approx(0.0)  # equal list waits: the first open already costs more


# -- the relay, live -------------------------------------------------------------------------------------------
@pytest.fixture
def echo_port():
    """A plain TCP echo upstream (not a mail server): the relay's timing is checked on bytes alone."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def echo(c=c):
                with c:
                    while data := c.recv(65536):
                        c.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    stop.set()
    srv.close()


def _connect(port):
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def test_ping_pong_pays_one_rtt_per_exchange(echo_port):
    with Link(Profile("p", rtt_s=0.05), [("127.0.0.1", echo_port)]) as link:
        t0 = time.perf_counter()
        with _connect(link.ports[0]) as c:
            c.sendall(b"hello")
            assert c.recv(100) == b"hello"
            first = time.perf_counter() - t0
            times = []
            for _ in range(15):
                t = time.perf_counter()
                c.sendall(b"ping\r\n")
                assert c.recv(100) == b"ping\r\n"
                times.append(time.perf_counter() - t)
    assert first >= 0.0999  # connect() costs an RTT, the echo another (the server accepts at 1.5 RTT)
    assert min(times) >= 0.0499 and statistics.median(times) < 0.2


def test_a_clear_text_sessions_first_command_leaves_two_rtt_after_connect():
    """Issue 16's done-when: on a 600 ms link the greeting (server-first) reaches the client no earlier than 2 RTT
    after connect (1 RTT of handshake, the server's accept at 1.5 RTT, half an RTT back), and the first command
    leaves right after it. The upper bound leaves 300 ms (half an RTT, so one round trip more still fails) for the
    server's and the client's work and scheduling on a shared 2-core box."""
    results: list = []
    exp = Experiment(protocol="imap", messages=2, profile="satellite-geo")
    run_experiment(exp, results=results)
    run_experiment(replace(exp, profile=BASELINE), results=results)
    trace = results[0].trace
    greeting = next(c for c in trace.chunks if c.direction == DOWN)
    first_command = next(c for c in trace.chunks if c.direction == UP)
    assert 1.2 <= (greeting.t - trace.t_connect_ns) * 1e-9 <= (first_command.t - trace.t_connect_ns) * 1e-9 < 1.5
    m = predict(results[1], "satellite-geo")
    assert m["duration_s"] >= 1.2 + 0.6 * results[0].metrics["round_trips"]  # the model pays the setup too


def test_bulk_is_serialized_at_the_profile_rate(echo_port):
    # 200 kB down at 4 Mbit/s (the echo sends it back): >= 0.4 s of serialization one way
    with Link(Profile("b", down_bps=4e6, up_bps=1e9), [("127.0.0.1", echo_port)]) as link:
        with _connect(link.ports[0]) as c:
            t = time.perf_counter()
            c.sendall(b"x" * 200_000)
            got = 0
            while got < 200_000:
                got += len(c.recv(65536))
            took = time.perf_counter() - t
    assert 0.399 <= took < 2.0


#: Dovecot ends each tagged reply with its own timing, "(0.001 + 0.000 secs)", and adds "+ 0.001" when the reply
#: waited for the client to read: bytes that depend on the clock, not on the link. Masked before comparing.
DOVECOT_TIMING = re.compile(rb"\(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)")


def test_counts_through_the_link_equal_loopback(server_kind):
    """Both protocols on both servers: bytes, commands, round trips and integrity are the link's to keep."""
    for protocol in ("imap", "pop3"):
        base = Experiment(server=server_kind, protocol=protocol, messages=6, read_fraction=0.5, seed=2)
        lo_results: list = []
        hi_results: list = []
        (lo,) = run_experiment(base, results=lo_results)
        (hi,) = run_experiment(replace(base, profile="4g"), results=hi_results)
        (baseline,) = run_experiment(replace(base, profile=BASELINE))  # what the model reads
        exact = [k for k in COUNTS if k != "bytes_down" or server_kind != "dovecot"]
        assert {k: hi[k] for k in exact} == {k: lo[k] for k in exact} == {k: baseline[k] for k in exact}
        with pytest.raises(ModelInputError, match="4g"):  # its work is hidden under the 4g link's shaping
            predict(hi_results[0], "lan")
        down = [DOVECOT_TIMING.sub(b"(t)", r.trace.stream("down")) for r in (lo_results[0], hi_results[0])]
        assert len(down[0]) == len(down[1])  # the same bytes down, Dovecot's clock readings aside
        assert hi["integrity_ok"] is True and hi["profile"] == "4g" and hi["rtt_s"] == 0.055
        assert lo["profile"] == "loopback" and lo["down_bps"] is None
        # every round trip and the handshake pay at least one RTT: a bound the relay guarantees
        assert hi["duration_s"] >= 0.055 * (hi["round_trips"] + 1)


@pytest.mark.parametrize("profile", ["4g-trace", replace(PROFILES["3g"], name="3g-lossy", loss=0.02)])
def test_a_trace_driven_or_lossy_link_keeps_loopbacks_counts_exactly(profile):
    """Bytes, commands and round trips through a link that varies its rate or loses segments equal loopback's:
    the link only delays bytes (a lost segment is delivered late, never dropped or reordered)."""
    for protocol in ("imap", "pop3"):
        base = Experiment(protocol=protocol, messages=8, read_fraction=0.5, seed=4)
        (lo,) = run_experiment(base)
        (hi,) = run_experiment(replace(base, profile=profile))
        assert {k: hi[k] for k in COUNTS} == {k: lo[k] for k in COUNTS}
        assert hi["integrity_ok"] is True and hi["duration_s"] >= get_profile(profile).rtt_s * (hi["round_trips"] + 1)
    assert hi["profile"] == get_profile(profile).name and (hi["down_trace"] or hi["loss"])


@pytest.mark.parametrize("profile", ["4g", "lan"])
def test_the_model_follows_the_link_coarsely(profile):
    """Model from sessions through the baseline link vs the same session through the profile's link, each time
    the median of 5 sessions (times are reported as medians: on lan a round trip is 1 ms, and one session slowed
    by the shared machine moved a single-session comparison by 2x). Coarse: the machine's noise lands on either
    side (bench/link.py and bench/reference.py report the real error)."""
    rtt = get_profile(profile).rtt_s
    results: list = []
    exp = Experiment(protocol="imap", strategy="header-first", messages=10, read_fraction=0.3, repeats=5)
    run_experiment(replace(exp, profile=BASELINE), results=results)
    rows = run_experiment(replace(exp, profile=profile))
    keys = ("duration_s", "time_to_list_s", "open_median_s")
    models = [predict(r, profile) for r in results]
    m = {k: statistics.median(x[k] for x in models) for k in keys}
    row = {k: statistics.median(r[k] for r in rows) for k in keys}
    for k in keys:
        assert 0.6 * m[k] <= row[k] <= 3 * m[k] + 0.2, (k, m[k], row[k])
    assert all(r["opens"] == 3 for r in rows) and row["open_median_s"] >= rtt and m["open_median_s"] >= rtt
    assert m["duration_s"] >= rtt * (rows[0]["round_trips"] + 1)


def test_model_rows_carry_the_counts_and_the_median_of_the_repeats_times(monkeypatch):
    """Counts from the baseline sessions (equal to loopback's), each time the median over the repeats."""
    from mailstudy.study import modelled

    exp = Experiment(protocol="pop3", strategy="header-first", messages=5, read_fraction=0.4, repeats=3)
    (lo,) = run_experiment(replace(exp, repeats=1))
    real, seen = modelled.predict, []

    def predict_spread(result, profile):  # the three sessions' times set far apart: 1, 100 and 10 x the real
        m = dict(real(result, profile))
        seen.append(result)
        m["duration_s"] *= (1, 100, 10)[(len(seen) - 1) % 3]
        return m

    monkeypatch.setattr(modelled, "predict", predict_spread)
    rows = modelled.model_rows([exp], ["4g", "lan"], conditions="as-given")
    assert [r["profile"] for r in rows] == ["4g", "lan"] and all(r["modelled"] for r in rows)
    assert len({id(r) for r in seen}) == 3 and all(r.link == BASELINE for r in seen)
    for r in rows:
        assert {k: r[k] for k in COUNTS} == {k: lo[k] for k in COUNTS}
        m = [real(x, r["profile"])["duration_s"] for x in seen[:3]]
        assert r["duration_s"] == pytest.approx(10 * m[2])  # the median of (m0, 100 m1, 10 m2)
    assert rows[0]["duration_s"] >= 0.055 * (rows[0]["round_trips"] + 1)


def test_previews_read_part_of_a_message(server_kind):
    for protocol in ("imap", "pop3"):
        base = Experiment(server=server_kind, protocol=protocol, messages=6, read_fraction=1.0, seed=1,
                          sizes="fixed-5k")
        (whole,) = run_experiment(base)
        (part,) = run_experiment(replace(base, preview=256))
        assert part["integrity_ok"] is True and part["opens"] == 6 == whole["opens"]
        assert part["bodies_fetched"] == 0 and part["bytes_down"] < whole["bytes_down"]


@pytest.mark.parametrize("profile", [BASELINE, Profile("p10", rtt_s=0.01, down_bps=10e6)])
def test_a_close_right_after_the_last_bytes_reaches_the_client(profile):
    """An IMAP server closes just after ``* BYE``: the close must follow the bytes through the link. (The relay
    once lost a close that came while its writer held bytes back, and every IMAP session then waited out the
    client's 5 s read timeout after LOGOUT.)"""
    srv = socket.create_server(("127.0.0.1", 0))

    def bye_and_close():
        while True:
            c, _ = srv.accept()
            c.sendall(b"* BYE Logging out.\r\n")
            c.close()

    threading.Thread(target=bye_and_close, daemon=True).start()
    with Link(profile, [("127.0.0.1", srv.getsockname()[1])]) as link:
        for _ in range(5):
            with socket.create_connection((link.host, link.ports[0]), timeout=5) as c:
                got = b""
                while chunk := c.recv(100):  # a lost close is a TimeoutError here
                    got += chunk
                assert got == b"* BYE Logging out.\r\n"
    srv.close()


def test_a_dying_upstream_ends_the_session_with_a_session_error_and_no_relay_is_left():
    from mailstudy.corpus import generate
    from mailstudy.live.access import Known, SessionSpec, run_session
    from mailstudy.servers import make_server

    corpus = generate(20, "fixed-5k", 0)
    server = make_server("embedded")
    server.mailboxes[server.account.user] = corpus.raws()
    server.start()
    link = Link(Profile("slow", rtt_s=0.05), [(server.host, server.imap_port)]).start()
    pid = link.pid
    try:
        threading.Timer(0.6, server.stop).start()  # the session needs ~25 round trips: 1.3 s
        with pytest.raises(SessionError, match="imap session .* failed"):
            run_session(link.host, link.ports[0], link.ports[0], server.account.user, server.account.password,
                        SessionSpec(protocol="imap", read_fraction=1.0), Known(corpus.raws()), timeout=10)
    finally:
        link.stop()
        server.stop()
    assert wait_gone(pid)


# -- captures on the client's side ----------------------------------------------------------------------------
def test_a_capture_through_the_link_shows_the_delays_and_tshark_agrees(tmp_path, tshark, tcpdump):
    from mailstudy.capture import Capture
    from mailstudy.corpus import generate
    from mailstudy.live.access import Known, SessionSpec, run_session
    from mailstudy.offline.analyze import analyze_pcap
    from mailstudy.servers import make_server

    needs.tcpdump_capture()
    corpus = generate(5, "fixed-5k", 0)
    server = make_server("embedded")
    server.mailboxes[server.account.user] = corpus.raws()
    with server, Link("4g", [(server.host, server.imap_port)]) as link:
        with Capture(tmp_path / "s.pcap", link.ports, backend="tcpdump", host=link.host) as cap:
            result = run_session(link.host, link.ports[0], 0, server.account.user, server.account.password,
                                 SessionSpec(read_fraction=0.4), Known(corpus.raws()))
        report = cap.finish(result.trace, {})
    assert report.complete
    client_port = result.trace.local[1]  # this session's connection, whatever else the capture holds
    out = subprocess.run([tshark, "-r", str(report.path), "-d", f"tcp.port=={link.ports[0]},imap", "-Y",
                          f"imap.time && tcp.port == {client_port}", "-T", "fields", "-e", "imap.response_tag",
                          "-e", "imap.time"], capture_output=True, text=True, timeout=60).stdout
    theirs = [(tag, float(t)) for tag, t in (line.split("\t") for line in out.splitlines() if line)]
    # the analysis of the same file reads the same kernel timestamps as tshark: equal to the microsecond
    (session,) = [s for s in analyze_pcap(report.path, [link.ports[0]]).sessions
                  if s.connection.client[1] == client_port]
    analysed = {e.tag: e.t_done - e.t_sent for e in session.exchanges}
    # the client's own clock (socket calls in this process) sees the same delays, but for scheduling: a stall of
    # the shared box can delay one reading, so the typical difference is bounded tightly and the worst loosely
    ours = {e.tag: (e.t_done - e.t_sent) * 1e-9 for e in result.exchanges}
    assert len(theirs) == len(ours) == len(analysed) == result.metrics["commands"], (theirs, ours, analysed)
    off = []
    for tag, t in theirs:
        (mine,) = [v for k, v in ours.items() if tag.endswith(k)]
        (read,) = [v for k, v in analysed.items() if tag.endswith(k)]
        assert t >= 0.055 and abs(t - read) < 2e-6, (tag, t, read)
        off.append(abs(t - mine))
    assert statistics.median(off) < 0.005 and max(off) < 0.05, off


# -- the command line ------------------------------------------------------------------------------------------
def _cli(*args, timeout=120):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.parametrize("args, words", [
    (["session", "--profile", "5g"], "choose one of loopback"),
    (["session", "--rtt=-3ms"], "accepted: a number with a unit"),
    (["session", "--down", "0mbit"], "accepted: a positive number with a unit"),
    (["session", "--up", "fast"], "accepted: a positive number with a unit"),
    (["breakeven", "--jitter", "5"], "accepted: a number with a unit"),
])
def test_bad_network_input_is_one_line_and_exit_2(args, words):
    out = _cli(*args)
    assert out.returncode == 2 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_profiles_and_breakeven_commands():
    out = _cli("profiles")
    assert out.returncode == 0 and all(name in out.stdout for name in PROFILES) and "OpenSignal" in out.stdout
    out = _cli("breakeven", "--profile", "4g", "--messages", "8", "--json")
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert [g["protocol"] for g in got] == ["imap", "pop3"]
    assert all(g["profile"] == "4g" and g["bytes_r"] is not None and g["waiting_r"] is not None for g in got)
    out = _cli("session", "--rtt", "20ms", "--down", "50mbit", "--up", "10mbit", "--messages", "3", "--json")
    row = json.loads(out.stdout)
    assert row["profile"] == "custom" and row["rtt_s"] == 0.02 and row["integrity_ok"] is True


@pytest.mark.parametrize("sub", ["profiles", "breakeven"])
def test_new_subcommands_have_help_and_session_lists_the_network_options(sub):
    out = _cli(sub, "--help")
    assert out.returncode == 0 and "usage: mailstudy" in out.stdout
    session = _cli("session", "--help").stdout
    assert all(opt in session for opt in ("--profile", "--rtt", "--down", "--up", "--jitter", "--preview"))
