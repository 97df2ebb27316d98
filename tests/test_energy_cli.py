"""``mailstudy energy`` on real captures, on a capture of several devices, on a live session through a link, and
on bad input (one line, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from badpcaps import conversation, frame, streams, write_pcap
from cli_run import one_line_error, run
from mailstudy.energy import get_model
from mailstudy.energy.pcap import client_timelines
from mailstudy.net.pcap_write import T0_NS

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
P_PRO, T_PRO = 1.2107, 0.2601  # Huang et al. 2012, Table 3


def test_an_example_capture_on_lte_is_one_promotion_one_transfer_and_a_whole_tail():
    out = run("energy", CAPTURES / "imap-header-first.pcap", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["radio"] == "lte" and len(doc["clients"]) == 1
    c = doc["clients"][0]
    assert c["address"] == "127.0.0.1" and c["sessions"] == 1 and not c["overlapping"] and c["note"] is None
    assert c["promotions"] == 1 and c["transfers"] == 1
    assert c["promotion_j"] == pytest.approx(P_PRO * T_PRO)
    assert c["tail_s"] == pytest.approx(11.576)
    # the bytes are the session's payload bytes, as `mailstudy analyze` counts them
    analyzed = json.loads(run("analyze", CAPTURES / "imap-header-first.pcap", "--json").stdout)
    (session,) = analyzed["sessions"]
    assert (c["bytes_up"], c["bytes_down"]) == (session["bytes_up"], session["bytes_down"])
    assert c["packets"] == session["packets"]
    assert c["tail_share"] > 0.95


@pytest.mark.parametrize("radio, tail_s", [("3g", 17.0), ("wifi", 0.2381)])
def test_other_radios_and_the_table(radio, tail_s):
    out = run("energy", CAPTURES / "pop3-keep.pcap", "--radio", radio)
    assert out.returncode == 0, out.stderr
    assert "client 127.0.0.1: 1 mail session(s)" in out.stdout
    for state in ("promotion", "transfer", "tail", "idle", "total"):
        assert f"\n  {state} " in out.stdout
    tail_line = next(line for line in out.stdout.splitlines() if line.startswith("  tail "))
    assert float(tail_line.split()[1]) == pytest.approx(tail_s, abs=0.001)


def test_a_capture_of_two_devices_is_a_ledger_per_address_and_says_what_it_cannot_separate(tmp_path):
    a, b = "10.0.0.2", "10.0.0.3"
    segs = (conversation(client=a, cport=40000)
            + conversation(client=a, cport=40001, t0_ns=T0_NS + 3_000_000)  # overlaps a's first session
            + conversation(client=b, cport=40002, t0_ns=T0_NS + 60_000_000_000))  # a minute later
    path = tmp_path / "two.pcap"
    write_pcap(path, [(s.t_ns, frame(s)) for s in sorted(segs, key=lambda s: s.t_ns)])
    timelines, _ = client_timelines(path)
    assert [tl.address for tl in timelines] == [a, b]
    up, down = streams()
    ta, tb = timelines
    assert len(ta.sessions) == 2 and ta.overlapping and "cannot tell them apart" in ta.note()
    assert len(tb.sessions) == 1 and not tb.overlapping and tb.note() is None
    assert sum(x.bytes_up for x in tb.activities) == len(up) and sum(x.bytes_down for x in tb.activities) == len(down)
    assert ta.packets == 2 * tb.packets
    out = run("energy", path, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [c["address"] for c in doc["clients"]] == [a, b]
    assert doc["clients"][0]["overlapping"] and doc["clients"][0]["note"]
    assert doc["clients"][1]["bytes_up"] == len(up)
    text = run("energy", path).stdout
    assert "note: 10.0.0.2: 2 sessions overlap in time" in text


def test_plot_draws_the_states_under_the_ladder(tmp_path):
    png = tmp_path / "radio.png"
    out = run("energy", CAPTURES / "pop3-keep.pcap", "--plot", png)
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert not list(tmp_path.glob(".*.part"))


def test_a_live_session_through_a_link(tmp_path):
    """A real session against the embedded server through the lan link: the ledger of the client's trace."""
    png = tmp_path / "session.png"
    out = run("energy", "--session", "--profile", "lan", "--messages", "5", "--json", "--plot", png, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["profile"] == "lan" and doc["radio"] == "lte"
    assert doc["promotions"] == 1 and doc["promotion_j"] == pytest.approx(P_PRO * T_PRO)
    assert doc["bytes_up"] > 0 and doc["bytes_down"] > doc["bytes_up"]
    # some of the session is transfer; not a share of it: the session lasts tens of ms, so one scheduling stall of
    # the shared box longer than the burst gap would count as tail and decide the share
    assert 0 < doc["transfer_s"] <= doc["duration_s"]
    assert png.stat().st_size > 20_000


def test_bad_input_is_one_line(tmp_path):
    one_line_error(run("energy", CAPTURES / "pop3-keep.pcap", "--radio", "5g"), "unknown radio model '5g'")
    model = get_model("lte").as_dict()
    del model["tail_s"]
    bad = tmp_path / "mine.json"
    bad.write_text(json.dumps(model))
    one_line_error(run("energy", CAPTURES / "pop3-keep.pcap", "--radio-file", bad), "missing field 'tail_s'")
    notpcap = tmp_path / "notes.txt"
    notpcap.write_text("hello\n" * 20)
    one_line_error(run("energy", notpcap), "notes.txt")
    one_line_error(run("energy"), "give a capture FILE.pcap, or --session")
    one_line_error(run("energy", "--session", "--read-fraction", "3"), "--read-fraction: must be at least 0 and at most 1")
    one_line_error(run("energy", "--session", "--profile", "mars"), "unknown profile 'mars'")
    one_line_error(run("energy", CAPTURES / "pop3-keep.pcap", "--plot", tmp_path), "is a folder")


def test_show_model_prints_a_file_a_custom_model_can_start_from(tmp_path):
    out = run("energy", "--show-model", "--json", "--radio", "3g")
    assert out.returncode == 0, out.stderr
    mine = tmp_path / "mine.json"
    mine.write_text(out.stdout)
    again = run("energy", CAPTURES / "pop3-keep.pcap", "--radio-file", mine, "--json")
    base = run("energy", CAPTURES / "pop3-keep.pcap", "--radio", "3g", "--json")
    assert json.loads(again.stdout)["clients"] == json.loads(base.stdout)["clients"]
    text = run("energy", "--show-model").stdout
    assert "Table 3: LTE promotion, Tpro 260.1" in text


def test_a_fleet_day_on_a_real_server_is_priced_per_device():
    """Two hours of one K-9 device polling every 15 minutes against the embedded server, every session real."""
    from mailstudy.energy import MODELS
    from mailstudy.energy.day import fleet_energy_rows
    from mailstudy.study.fleet import FleetCell, run_fleet_rows

    cell = FleetCell(devices=1, clients=("k9",), hours=2, rate=24, poll_s=900.0, seed=1)
    fleet = run_fleet_rows(cell)
    lte, wifi = fleet_energy_rows(cell, [MODELS["lte"], MODELS["wifi"]], rows=fleet)
    assert (lte["radio"], wifi["radio"]) == ("lte", "wifi")
    assert lte["promotions"] == 8 == lte["sessions"] - 1  # 8 polls in 2 h; the closing sync belongs to the next
    assert lte["end_s"] - lte["start_s"] == pytest.approx(7200.0)
    assert lte["joules_per_day"] == pytest.approx(lte["total_j"] * 12)
    assert lte["total_j"] > 8 * 12.5 and wifi["total_j"] < lte["total_j"] / 5
    closing = [s for s in fleet["sessions"] if s["final_round"]]
    assert len(closing) == 1
    assert lte["radio_bytes_down"] == lte["bytes_down"] - closing[0]["bytes_down"] > 0
    assert lte["staleness_median_s"] is not None  # the device row's own columns stay beside the joules


def test_energy_fleet_prices_each_device_of_a_real_fleet_day():
    out = run("energy", "--fleet", "--client", "k9", "--poll", "15m", "--hours", "1", "--rate", "48", "--json",
              timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (dev,) = doc["devices"]
    assert doc["radio"] == "lte" and dev["client"] == "k9" and dev["poll_s"] == 900.0
    assert dev["promotions"] == 4 and dev["joules_per_day"] == pytest.approx(dev["total_j"] * 24)
    text = run("energy", "--fleet", "--idle", "--hours", "1", "--rate", "48", "--radio", "wifi", timeout=300)
    assert text.returncode == 0, text.stderr
    assert "device 0 (thunderbird, IDLE): 1 session(s)" in text.stdout
    one_line_error(run("energy", "--fleet", "--poll", "5x"), "cannot read the interval '5x'")
    one_line_error(run("energy", "--fleet", "--session"), "one of them")


def test_all_tcp_charges_a_tls_session_the_classifier_cannot_read(tmp_path):
    """The IMAPS example runs on a port no classifier knows and its greeting is encrypted: mail-only finds
    nothing; --all-tcp charges the connection, with the bytes its capture sidecar recorded."""
    none = run("energy", CAPTURES / "imaps.pcap", "--json")
    assert none.returncode == 0 and json.loads(none.stdout)["clients"] == []
    out = run("energy", CAPTURES / "imaps.pcap", "--all-tcp", "--json", "--plot", tmp_path / "tls.png")
    assert out.returncode == 0, out.stderr
    (client,) = json.loads(out.stdout)["clients"]
    sidecar = json.loads((CAPTURES / "imaps.pcap.json").read_text())
    assert (client["bytes_up"], client["bytes_down"]) == (sidecar["bytes_up"], sidecar["bytes_down"])
    assert client["promotions"] == 1 and (tmp_path / "tls.png").stat().st_size > 10_000
