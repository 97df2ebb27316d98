"""Connections as clients keep them (issue 18 items 1 and 6): the profiles' connection-keeping values and their
sources, the table in docs/clients.md, and fleet days on both servers where each device keeps its connection (or
not) as its client does: IDLE, NOOP polling, a whole sync over a kept connection, reconnect-and-poll.

Kept small (two simulated hours, a few messages) so the suite stays quick; every session is real.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from mailstudy.corpus import generate
from mailstudy.live.client_profiles import CLIENTS, PROFILES, Catalog, Destination, get_client
from mailstudy.live.devices import Device
from mailstudy.live.fleet import FleetSpec, plan, run_fleet
from mailstudy.live.idle import KeptConnection
from mailstudy.live.keeping import FIELDS, KEEPING, NEW_MAIL, RFC2177_RENEW_S, keeping_markdown
from mailstudy.live.values import ParameterValueError

DOC = Path(__file__).resolve().parent.parent / "docs" / "clients.md"
DAY = {"hours": 2, "rate": 120, "start_messages": 2, "seed": 7, "read_fraction": 0.5}
KEPT_COLUMNS = ("way", "logins", "keeps_connection", "staleness_median_s", "staleness_max_s", "bytes_up",
                "bytes_down", "commands", "round_trips")


def run(start_server, **kw):
    spec = FleetSpec(**{**DAY, **kw})
    p = plan(spec)
    return run_fleet(start_server(p.start_raws), spec, p)


def by_client(result) -> dict[str, dict]:
    return {r["client"]: r for r in result.devices}


# -- the values and their table ---------------------------------------------------------------------------------
def test_the_docs_table_is_the_profiles_table():
    text = DOC.read_text()
    start = text.index("-->\n", text.index("<!-- keeping table")) + len("-->\n")
    table = text[start:text.index("<!-- end of keeping table -->")]
    assert table == keeping_markdown(PROFILES.values()), \
        "docs/clients.md is out of date: paste mailstudy.live.keeping.keeping_markdown(PROFILES.values())"


def test_every_connection_keeping_value_names_its_source():
    cited = re.compile(r"\.(cpp|js|mjs|kt|java|c|1)(:\d+)?\b|RFC \d+")
    assert set(KEEPING) == set(CLIENTS)
    for name in CLIENTS:
        p = get_client(name)
        assert p.new_mail in NEW_MAIL and 0 <= p.idle_renew_s <= RFC2177_RENEW_S, name
        for f in FIELDS:
            src = p.source(f)
            assert cited.search(src) or src.startswith("ours"), (name, f, src)
        if p.protocol == "pop3":  # a POP3 session sees the maildrop as it was at login
            assert not p.keep_connection and p.new_mail == "poll"
    # what the sources say, as the table shows it
    assert (get_client("thunderbird").keep_connection, get_client("thunderbird").new_mail) == (True, "idle")
    assert (get_client("neomutt").new_mail, get_client("neomutt").keepalive_s) == ("noop", 300.0)
    assert (get_client("k9").keep_connection, get_client("k9").new_mail) == (True, "poll")
    assert not get_client("mbsync").keep_connection


def test_a_sweep_changes_the_poll_interval_only_where_the_user_can(monkeypatch):
    monkeypatch.setitem(PROFILES, "mbsync", replace(PROFILES["mbsync"], poll_user_set=False))
    spec = FleetSpec(devices=3, clients=("neomutt", "mbsync", "thunderbird"), poll_s=1800, behaviour="profile")
    assert spec.poll_of(0) == 1800 and spec.poll_of(1) == get_client("mbsync").poll_s
    assert spec.renew_of(2) == get_client("thunderbird").idle_renew_s  # the IDLE's own timer
    today = replace(spec, behaviour="poll")
    assert today.poll_of(1) == 1800 and today.way_of(2) == "reconnect" and today.renew_of(2) == RFC2177_RENEW_S
    assert [spec.way_of(i) for i in range(3)] == ["noop", "reconnect", "idle"]


def test_a_poll_sweep_asks_a_client_whose_user_cannot_set_it_once_at_its_own_interval(monkeypatch):
    from mailstudy.study.kept import poll_sweep_cells

    monkeypatch.setitem(PROFILES, "mbsync", replace(PROFILES["mbsync"], poll_user_set=False))
    cells = poll_sweep_cells(["embedded"], clients=("neomutt", "mbsync"), polls=(300, 3600))
    assert [(c.clients[0], c.poll_s) for c in cells] == [("neomutt", 300), ("neomutt", 3600), ("mbsync", None)]
    assert [c.poll_of(0) for c in cells] == [300, 3600, get_client("mbsync").poll_s]
    assert {c.behaviour for c in cells} == {"profile"}


def test_a_client_that_never_looks_by_itself_syncs_only_in_the_final_round(start_server, monkeypatch):
    monkeypatch.setitem(PROFILES, "mbsync", replace(PROFILES["mbsync"], new_mail="none"))
    r = run(start_server, devices=1, clients=("mbsync",), behaviour="profile")
    (d,) = r.devices
    assert d["way"] == "none" and d["logins"] == 1 and not d["keeps_connection"]
    assert d["availability_listed"] == 1.0 and d["staleness_median_s"] > 0


def test_a_behaviour_that_is_not_one_is_refused():
    with pytest.raises(ParameterValueError, match="behaviour must be one of poll, profile"):
        FleetSpec(behaviour="push")


@pytest.mark.parametrize("flag", ["compress", "condstore", "idle"])
def test_a_fleet_flag_that_is_not_true_or_false_is_refused(flag):
    with pytest.raises(ParameterValueError, match=f"{flag} must be True or False, not 'yes'"):
        FleetSpec(**{flag: "yes"})


def test_compress_is_in_a_fleet_cells_cache_name():
    from mailstudy.study.fleet import FleetCell

    assert FleetCell(compress=True).key() != FleetCell().key()


# -- fleet days on both servers ---------------------------------------------------------------------------------
def test_a_day_of_clients_as_they_keep_their_connections(start_server):
    clients = ("thunderbird", "neomutt", "k9", "mbsync")
    kept = run(start_server, devices=4, clients=clients, behaviour="profile")
    d = by_client(kept)
    assert all(c in r for r in kept.devices for c in KEPT_COLUMNS)
    assert [d[c]["way"] for c in clients] == ["idle", "noop", "poll", "reconnect"]
    assert d["thunderbird"]["logins"] == d["neomutt"]["logins"] == d["k9"]["logins"] == 1
    assert d["mbsync"]["logins"] == 2 * 3600 // 900 + 1  # every poll and the final round
    assert d["thunderbird"]["staleness_max_s"] == 0.0  # IDLE: shown when delivered
    assert 0 < d["neomutt"]["staleness_median_s"] and d["neomutt"]["staleness_max_s"] <= 300  # its NOOP timer
    assert d["mbsync"]["staleness_median_s"] > d["thunderbird"]["staleness_median_s"]
    assert kept.fleet["reads"] > 0
    assert all(r["availability_listed"] == 1.0 for r in kept.devices)
    # the same day with every device reconnecting and logging in on each poll (today's sweeps)
    polled_day = run(start_server, devices=4, clients=clients, behaviour="poll")
    polled = by_client(polled_day)
    # NeoMutt stores its reads when it leaves the mailbox (open_marks_seen "on-leave"): polling, it leaves at every
    # poll and every device agrees; holding its connection all day, it leaves only in the final round
    assert polled_day.fleet["read_agreement"] == 1.0
    assert kept.fleet["read_agreement"] < 1.0
    assert all(polled[c]["way"] == "reconnect" and polled[c]["logins"] > 1 for c in clients)
    assert polled["thunderbird"]["staleness_median_s"] > 0.0
    assert polled["neomutt"]["logins"] == 2 * 3600 // 300 + 1
    assert kept.fleet["logins"] < sum(polled[c]["logins"] for c in clients)


def test_idle_devices_log_in_once_where_polling_ones_log_in_each_time(start_server):
    idle = run(start_server, devices=2, clients=("thunderbird",), behaviour="profile")
    poll = run(start_server, devices=2, clients=("thunderbird",), behaviour="poll")
    assert [r["logins"] for r in idle.devices] == [1, 1]
    assert all(r["logins"] == 2 * 3600 // 600 + 1 for r in poll.devices)
    assert idle.fleet["staleness_median_s"] == 0.0 < poll.fleet["staleness_median_s"]
    assert idle.fleet["staleness_max_s"] <= 300  # only mail from before the second device's connection (at 300 s)
    (row, _) = [s for s in idle.sessions if s["kept"]]
    assert row["way"] == "idle" and row["held_s"] == 2 * 3600 - row["t_sim_s"]
    renewals = int((2 * 3600 - row["t_sim_s"]) // get_client("thunderbird").idle_renew_s)
    assert row["commands"] >= 1 + 3 * renewals  # IDLE, then NOOP, UID FETCH and IDLE at each of its timers


def test_a_noop_poller_learns_new_mail_from_exists_over_its_one_connection(start_server):
    corpus = generate(4, "fixed-5k", 3)
    raws = [m.raw for m in corpus.messages]
    server = start_server(raws[:2])
    account = Destination(server.host, server.imap_port, server.pop3_port, server.account.user,
                          server.account.password, Catalog(raws))
    device = Device(keep_bytes=False)
    conn = KeptConnection(get_client("neomutt"), account, device, mode="noop")
    conn.open(set())
    quiet = conn.check(set())
    assert quiet.new_listed == []
    server.deliver_many(server.account.user, raws[2:])
    woken = conn.check({corpus.messages[3].sha256})
    assert sorted(woken.new_listed) == sorted(m.sha256 for m in corpus.messages[2:])
    assert woken.read == [corpus.messages[3].sha256]
    out = conn.close(final_sync=False)
    verbs = [e.command for e in out.result.exchanges]
    # NeoMutt logs in once, by AUTHENTICATE PLAIN with SASL-IR as it does (docs/calibration.md)
    assert verbs.count("NOOP") == 2 and verbs.count("AUTHENTICATE") == 1 and "LOGIN" not in verbs
    assert "IDLE" not in verbs


def test_the_notebook_table_puts_each_client_as_it_ships_beside_the_baseline(tmp_path):
    from mailstudy.study.kept import (KEPT_COLUMNS, KEPT_METRICS, kept_comparison, kept_summary,
                                      kept_wire_per_day)

    table = kept_comparison(["embedded"], clients=("thunderbird", "mbsync"), hours=1, rate=96, seeds=(3, 4),
                            cache_dir=None, results=tmp_path)
    assert list(table.columns) == list(KEPT_COLUMNS) and len(table) == 10  # mbsync never asks for COMPRESS
    assert sorted(set(table["seed"])) == [3, 4]
    rows = {(r["client"], r["variant"]): r for r in table[table.seed == 3].to_dict("records")}
    tb, baseline = rows[("thunderbird", "as shipped")], rows[("thunderbird", "reconnect-and-poll")]
    tbz = rows[("thunderbird", "as shipped + COMPRESS")]
    assert tb["ships_with"] == "keeps its connection; IDLE, checked every 600 s" and tb["way"] == "idle"
    assert tb["compress_default"] == "asks for COMPRESS when offered"
    assert rows[("mbsync", "as shipped")]["compress_default"] == "never asks for COMPRESS"
    assert tb["logins"] == 1 < baseline["logins"] and baseline["way"] == "reconnect"
    assert rows[("mbsync", "as shipped")]["ships_with"] == "connects and logs in every 900 s"
    assert rows[("mbsync", "as shipped")]["logins"] == rows[("mbsync", "reconnect-and-poll")]["logins"]
    # COMPRESS: the same day, the same commands; the wire carries fewer bytes down than the protocol inside
    assert tbz["compressed"] and not tb["compressed"] and tbz["way"] == "idle" and tbz["logins"] == 1
    assert tbz["commands"] == tb["commands"] + 1  # the COMPRESS command itself
    assert tbz["wire_bytes_down"] < tbz["bytes_down"] and tbz["wire_bytes_down"] < tb["wire_bytes_down"]
    for r in (tb, baseline, rows[("mbsync", "as shipped")]):  # clear text, no COMPRESS: the wire is the protocol
        assert (r["wire_bytes_up"], r["wire_bytes_down"]) == (r["bytes_up"], r["bytes_down"])
    # the summary: one row per client and variant, each number a median over both seeds with its interval
    summary = kept_summary(table)
    assert len(summary) == 5 and set(summary["seeds"]) == {2}
    written = pd.read_csv(tmp_path / "devices_kept_connections.csv")
    assert list(written["variant"]) == list(summary["variant"]) and set(written["seeds"]) == {2}
    assert len(pd.read_csv(tmp_path / "devices_kept_connections_seeds.csv")) == 10
    tbs = summary.set_index(["client", "variant"]).loc[("thunderbird", "as shipped")]
    both = table[(table.client == "thunderbird") & (table.variant == "as shipped")]
    for m in KEPT_METRICS:
        assert tbs[f"{m}_lo"] <= tbs[m] <= tbs[f"{m}_hi"]
    assert tbs["bytes_down"] == both["bytes_down"].median() and both["bytes_down"].nunique() == 2  # seeds differ
    assert tbs["ships_with"] == tb["ships_with"]
    # bytes on the wire per day: the ratio is taken within each seed, then summarized
    wide = kept_wire_per_day(table).set_index("client")
    assert wide.loc["thunderbird", "seeds"] == 2
    assert wide.loc["thunderbird", "as shipped + COMPRESS"] == table[
        (table.client == "thunderbird") & (table.variant == "as shipped + COMPRESS")]["wire_bytes_per_day"].median()
    assert 0 < wide.loc["thunderbird", "compress_ratio_lo"] <= wide.loc["thunderbird", "compress_ratio"] < 1
    assert wide["as shipped + COMPRESS"].isna()["mbsync"]