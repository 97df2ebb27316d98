"""The article's device claims as measured facts, on both servers: fleets of real clients over a simulated day.

Kept small (a few hours of simulated time, a few messages, two or three devices) so the suite stays quick.
"""

from __future__ import annotations

import json

import pytest

from mailstudy.live.fleet import FleetError, FleetSpec, plan, run_fleet

SMALL = {"hours": 3, "rate": 96, "start_messages": 2, "poll_s": 1800, "seed": 7, "read_fraction": 0.5}


def run(start_server, **kw):
    spec = FleetSpec(**{**SMALL, **kw})
    p = plan(spec)
    server = start_server(p.start_raws)
    return run_fleet(server, spec, p)


def by_device(result):
    return {r["device"]: r for r in result.devices}


def test_pop3_delete_the_second_device_sees_none_of_what_the_first_took(start_server):
    r = run(start_server, devices=2, clients=("pop3-delete",))
    f, d = r.fleet, by_device(r)
    assert f["delivered"] >= 5 and f["on_server"] == 0
    assert d[0]["listed"] > 0 and d[1]["listed"] > 0  # both took some
    assert d[0]["listed"] + d[1]["listed"] == f["delivered"]  # and no message twice
    assert f["messages_only_on_one_device"] == f["delivered"] and f["duplicate_downloads"] == 0
    assert d[0]["sole_holder"] == d[0]["listed"] and d[1]["sole_holder"] == d[1]["listed"]
    assert f["pop3_second_session"]  # what the server does with two sessions at once is recorded


@pytest.mark.parametrize("client", ["thunderbird-pop3", "k9-pop3"])
def test_pop3_keep_every_device_downloads_every_body(start_server, client):
    n = 3
    r = run(start_server, devices=n, clients=(client,), sizes="fixed-5k")
    f = r.fleet
    assert f["on_server"] == f["delivered"] >= 5
    assert all(d["bodies_downloaded"] == f["delivered"] for d in r.devices)
    assert f["duplicate_downloads"] == (n - 1) * f["delivered"]
    # POP3 has no flags: a message read on one device is unread on the others
    assert f["reads"] > 0 and f["read_agreement"] < 1.0


@pytest.mark.parametrize("clients", [("neomutt",), ("thunderbird", "k9", "mbsync")])
def test_imap_read_state_agrees_on_every_device_after_one_round(start_server, clients):
    r = run(start_server, devices=3, clients=clients)
    f = r.fleet
    assert f["reads"] > 0
    assert f["read_agreement"] == 1.0 and all(d["read_agreement"] == 1.0 for d in r.devices)
    assert all(d["availability_listed"] == 1.0 for d in r.devices)  # every device sees the same mailbox
    if clients == ("neomutt",):  # header-first: a body crosses the wire once per reading, not once per device
        assert f["body_downloads"] == f["reads"] and f["duplicate_downloads"] == 0
        assert sum(d["headers_downloaded"] for d in r.devices) == 3 * f["delivered"]


def test_imap_reads_reach_other_devices_only_at_their_next_sync(start_server):
    settled = run(start_server, devices=2, clients=("neomutt",))
    unsettled = run(start_server, devices=2, clients=("neomutt",), final_round=False)
    assert settled.fleet["read_agreement"] == 1.0
    assert unsettled.fleet["read_agreement"] < 1.0  # the last reads are not yet seen elsewhere


def test_losing_an_imap_device_loses_no_mail(start_server):
    r = run(start_server, devices=2, clients=("thunderbird",), lose_device=0, lose_at_h=1.5)
    d = by_device(r)
    assert d[0]["lost"] and d[0]["held_at_loss"] > 0 and d[0]["listed"] == 0
    assert r.fleet["messages_lost"] == 0 and d[1]["availability_listed"] == 1.0


def test_losing_a_pop3_delete_device_loses_what_it_held(start_server):
    r = run(start_server, devices=2, clients=("pop3-delete",), lose_device=0, lose_at_h=2)
    d = by_device(r)
    assert d[0]["held_at_loss"] > 0
    assert r.fleet["messages_lost"] == d[0]["held_at_loss"]
    assert r.fleet["messages_lost"] + d[1]["listed"] == r.fleet["delivered"]


def test_the_same_seed_gives_identical_counts(start_server):
    from mailstudy.study.fleet import counts_only

    a = run(start_server, devices=2, clients=("k9", "thunderbird-pop3"))
    b = run(start_server, devices=2, clients=("k9", "thunderbird-pop3"))
    assert counts_only(a.devices) == counts_only(b.devices)
    assert counts_only([a.fleet]) == counts_only([b.fleet])
    assert counts_only(a.sessions) == counts_only(b.sessions)
    c = run(start_server, devices=2, clients=("k9", "thunderbird-pop3"), seed=8)
    assert counts_only([c.fleet]) != counts_only([a.fleet])


def test_a_fleet_on_a_network_goes_through_the_baseline_link_and_counts_the_same(start_server, monkeypatch):
    """With a profile the devices connect through the model's baseline link (not to the server's own ports),
    each session says so to the model, the counts equal loopback's, and every session's modelled seconds hold at
    least one 4g round trip per round trip and the handshake."""
    from mailstudy.link import BASELINE
    from mailstudy.live import fleet_run
    from mailstudy.study.fleet import counts_only

    seen = []
    real = fleet_run.network_seconds
    monkeypatch.setattr(fleet_run, "network_seconds", lambda result, profile: seen.append(
        (result.link, result.trace.remote[1])) or real(result, profile))
    results, server_ports = {}, {}
    for profile in ("4g", "loopback"):
        spec = FleetSpec(**{**SMALL, "devices": 2, "clients": ("k9", "thunderbird-pop3"), "profile": profile})
        p = plan(spec)
        server = start_server(p.start_raws)
        server_ports[profile] = {server.imap_port, server.pop3_port}
        seen.clear()
        results[profile] = run_fleet(server, spec, p)
        links, ports = {link for link, _ in seen}, {port for _, port in seen}
        if profile == "4g":
            assert links == {BASELINE} and not ports & server_ports["4g"]  # through the relay
        else:
            assert links == {None} and ports <= server_ports["loopback"]
    assert counts_only(results["4g"].sessions) == counts_only(results["loopback"].sessions)
    for row in results["4g"].sessions:
        assert row["network_s"] >= 0.055 * (row["round_trips"] + 1)


def test_condstore_is_used_where_offered_and_rows_say_so(start_server, server_kind):
    naive = run(start_server, devices=2, clients=("thunderbird",), start_messages=30, sizes="fixed-5k")
    cond = run(start_server, devices=2, clients=("thunderbird",), start_messages=30, sizes="fixed-5k",
               condstore=True)
    assert cond.fleet["read_agreement"] == 1.0
    if server_kind == "dovecot":
        assert cond.fleet["condstore_offered"] and cond.fleet["condstore_used"]
        assert cond.fleet["bytes_down"] < naive.fleet["bytes_down"]  # flag sync no longer grows with the box
    else:
        assert cond.fleet["condstore_offered"] is False and cond.fleet["condstore_used"] is False
        assert cond.fleet["bytes_down"] == naive.fleet["bytes_down"]


def test_a_server_that_dies_mid_fleet_stops_the_fleet_with_a_clear_message(start_server):
    spec = FleetSpec(**{**SMALL, "devices": 1, "clients": ("k9",)})
    p = plan(spec)
    server = start_server(p.start_raws)
    calls = {"n": 0}
    real_deliver = server.deliver_many

    def deliver_then_die(user, raws):
        real_deliver(user, raws)
        calls["n"] += 1
        if calls["n"] == 2:
            server.stop()

    server.deliver_many = deliver_then_die
    with pytest.raises(FleetError, match=r"fleet stopped at simulated \d\d:\d\d:\d\d"):
        run_fleet(server, spec, p)


@pytest.mark.parametrize("kw, needle", [
    ({"devices": 0}, "at least one device"),
    ({"rate": -1}, "rate"),
    ({"poll_s": 4 * 3600}, "longer than the period"),
    ({"clients": ("outlook",)}, "unknown client profile"),
    ({"lose_device": 5, "lose_at_h": 1}, "lose_device"),
    ({"profile": "no-such-network"}, "no-such-network"),  # the latency hook refuses what it cannot time
])
def test_bad_fleets_are_refused_with_a_clear_message(kw, needle):
    with pytest.raises(ValueError, match=needle):
        FleetSpec(**{**SMALL, **kw})


def test_the_plan_is_seeded():
    a, b = plan(FleetSpec(**SMALL)), plan(FleetSpec(**SMALL))
    assert a.arrivals == b.arrivals and a.readers == b.readers and a.polls == b.polls
    assert [m.sha256 for m in a.corpus.messages] == [m.sha256 for m in b.corpus.messages]
    assert a.arrivals and all(0 < t < 3 * 3600 for t in a.arrivals)
    starts = sorted({t for t, i in a.polls if t < 1800})
    assert len(starts) == 2  # two devices, staggered


def test_idle_shows_new_mail_at_once_over_one_connection_with_keepalives(start_server):
    r = run(start_server, devices=2, clients=("thunderbird", "k9"), idle=True, poll_s=None)
    tb, k9 = by_device(r)[0], by_device(r)[1]
    assert tb["sessions"] == 1 and k9["sessions"] > 1  # thunderbird IDLEs, k9 cannot and polls
    assert tb["staleness_p95_s"] == 0.0 < k9["staleness_median_s"]
    (idle_row,) = [s for s in r.sessions if s["idle"]]
    assert idle_row["held_s"] == 3 * 3600  # held from its start to the end of the period
    assert idle_row["commands"] >= 1 + 3 * 3600 // (29 * 60)  # at least the IDLE and its 29-minute renewals
    assert idle_row["round_trips"] > idle_row["commands"]  # each DONE is a flight of its own
    assert r.fleet["read_agreement"] == 1.0 and r.fleet["reads"] > 0


@pytest.mark.parametrize("args, needle", [
    (["--devices", "0"], "at least one device"),
    (["--rate", "-5"], "rate"),
    (["--hours", "1", "--poll", "2h"], "longer than the period"),
    (["--client", "outlook"], "unknown client profile"),
    (["--poll", "soon"], "interval"),
])
def test_cli_bad_input_is_one_line_and_exit_2(capsys, args, needle):
    from mailstudy.cli.commands import main

    assert main(["fleet", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_cli_prints_a_device_table_and_a_fleet_summary_and_resumes_from_its_cache(capsys, tmp_path):
    from mailstudy.cli.commands import main

    args = ["fleet", "--devices", "2", "--client", "neomutt", "--client", "k9-pop3", "--hours", "2", "--rate", "72",
            "--poll", "30m", "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "neomutt" in out and "k9-pop3" in out and "duplicate_downloads" in out
    (cell,) = tmp_path.glob("fleet-*.json")
    assert main([*args, "--json"]) == 0  # answered from the cache
    again = json.loads(capsys.readouterr().out)
    assert [d["client"] for d in again["devices"]] == ["neomutt", "k9-pop3"]
    assert again["fleet"]["sessions"] == sum(d["sessions"] for d in again["devices"])
    assert list(tmp_path.glob("fleet-*.json")) == [cell]
