"""JMAP devices in the fleet, on a real Cyrus over real sockets: the read state is shared through the server, later
syncs are one ``Email/changes`` request, and a fleet's counts repeat exactly for a seed.

Why: issue 20 asks for the devices view with JMAP beside IMAP and POP3 (:mod:`mailstudy.live.fleet_jmap`). What a
chart of bytes per day shows rests on these: a second device adds its polls, not the bodies the first one read; a
message read on one device is read on the other after its next sync.
"""

from __future__ import annotations

import json

import cli_run
import pytest

from mailstudy.corpus import generate
from mailstudy.live.devices import Device
from mailstudy.live.engine import Catalog, Destination
from mailstudy.live.fleet import FleetError, FleetSpec, run_fleet
from mailstudy.live.fleet_jmap import JMAP_CLIENTS
from mailstudy.servers.base import DEFAULT_ACCOUNT
from mailstudy.servers.cyrus import CyrusServer
from mailstudy.servers.embedded import EmbeddedServer
from mailstudy.study.fleet import FleetCell, counts_only, run_fleet_rows

USER, PASSWORD = DEFAULT_ACCOUNT.user, DEFAULT_ACCOUNT.password
N = 4
#: a small day: 2 simulated hours, 100 messages a day, polls every 15 minutes (Cyrus waits ~40 ms per large answer)
SMALL = dict(server="cyrus", hours=2, rate=100, poll_s=900, read_fraction=0.5, seed=1)



@pytest.mark.cyrus
@pytest.mark.usefixtures("cyrus_usable")
def test_a_message_read_on_one_device_is_read_on_the_other_after_its_next_sync():
    raws = generate(N, "buchner2009", seed=3).raws()
    catalog = Catalog(raws)
    jmap = JMAP_CLIENTS["jmap"]
    a, b = Device(name="a"), Device(name="b")
    with CyrusServer(mailboxes={USER: raws}) as server:
        account = Destination(server.host, server.imap_port, server.pop3_port, USER, PASSWORD, catalog)
        prof = jmap.at(server.host, server.http_port)
        first_a, first_b = prof.run(account, a, set()), prof.run(account, b, set())
        assert len(first_a.new_listed) == len(first_b.new_listed) == first_a.headers == N
        assert not a.seen and not b.seen and a.jmap_state == b.jmap_state != ""
        # discovery (redirect, session resource) and one Email/query + Email/get
        assert first_a.result.metrics["round_trips"] == 3 and first_a.bodies == 0
        target = sorted(a.listed)[0]
        read = prof.run(account, a, {target})
        assert read.read == [target] and read.bodies == 1 and target in a.store and target in a.seen
        # Email/changes (nothing new), the blob, one Email/set of $seen; the session resource was kept
        assert [x.command for x in read.result.exchanges] == ["POST", "GET", "POST"]
        assert target not in b.seen
        seen_there = prof.run(account, b, set())
        assert target in b.seen and seen_there.headers == 0 and not seen_there.new_listed
        assert seen_there.result.metrics["round_trips"] == 1 and seen_there.bodies == 0
        # a's own change is not fetched back (it took Email/set's newState); b's next poll finds nothing either:
        # the same empty poll, byte for byte
        quiet_a, quiet_b = prof.run(account, a, set()), prof.run(account, b, set())
        assert quiet_a.result.metrics["bytes_down"] == quiet_b.result.metrics["bytes_down"]
        assert quiet_a.result.metrics["bytes_down"] < seen_there.result.metrics["bytes_down"]


@pytest.fixture(scope="module")
def fleets(request):
    """One, two and two again (the same seed) header-first JMAP devices, and two offline ones."""
    request.getfixturevalue("cyrus_usable")
    return {name: run_fleet_rows(FleetCell(devices=n, clients=(client,), **SMALL))
            for name, client, n in (("one", "jmap", 1), ("two", "jmap", 2), ("two_again", "jmap", 2),
                                    ("offline", "jmap-offline", 2))}


@pytest.mark.cyrus
def test_a_second_jmap_device_adds_its_polls_not_the_bodies_read(fleets):
    one, two = fleets["one"]["fleet"][0], fleets["two"]["fleet"][0]
    assert one["delivered"] == two["delivered"] > 0 and two["sessions"] == 2 * one["sessions"]
    # header-first: each message read is downloaded once, on the device that reads it (which device reads a
    # message is drawn among the devices, so the reads the day holds differ a little with the count)
    for f in (one, two):
        assert 0 < f["body_downloads"] == f["reads"] <= f["reads_planned"] and f["duplicate_downloads"] == 0
    assert one["bytes_down"] < two["bytes_down"] < 1.5 * one["bytes_down"]
    assert two["read_agreement"] == 1.0 and two["availability_min"] == 1.0 and two["messages_lost"] == 0
    sessions = fleets["two"]["sessions"]
    assert all(s["protocol"] == "jmap" and s["exchanges_failed"] == 0 for s in sessions)
    firsts = {d: next(i for i, s in enumerate(sessions) if s["device"] == d) for d in (0, 1)}
    assert all(sessions[i]["round_trips"] == 3 for i in firsts.values())  # discovery, then the list
    polls = [s for i, s in enumerate(sessions) if i not in firsts.values()]
    quiet = [s for s in polls if not s["new_listed"] and not s["read"]]
    assert quiet and all(s["round_trips"] == 1 for s in quiet)  # Email/changes alone, the session resource kept


@pytest.mark.cyrus
def test_offline_jmap_devices_each_download_every_message(fleets):
    off = fleets["offline"]["fleet"][0]
    assert off["body_downloads"] == 2 * off["delivered"] and off["duplicate_downloads"] == off["delivered"]
    assert off["read_agreement"] == 1.0
    assert off["bytes_down"] > fleets["two"]["fleet"][0]["bytes_down"]


@pytest.mark.cyrus
def test_a_jmap_fleet_repeats_exactly_for_its_seed(fleets):
    for kind in ("fleet", "devices", "sessions"):
        assert counts_only(fleets["two"][kind]) == counts_only(fleets["two_again"][kind])


def test_a_jmap_fleet_on_a_server_without_jmap_says_so():
    spec = FleetSpec(devices=1, clients=("jmap",), hours=1, rate=0, poll_s=900)
    with EmbeddedServer() as server, pytest.raises(FleetError, match="speaks JMAP.*--server cyrus"):
        run_fleet(server, spec)


@pytest.mark.cyrus
@pytest.mark.usefixtures("cyrus_usable")
def test_the_fleet_command_mixes_jmap_and_imap_devices_on_cyrus(tmp_path):
    out = cli_run.run("fleet", "--server", "cyrus", "--client", "jmap", "--client", "neomutt", "--devices", 2,
                      "--hours", 1, "--poll", "15m", "--seed", 2, "--cache-dir", tmp_path, "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert [d["protocol"] for d in got["devices"]] == ["jmap", "imap"]
    # the read state is the server's under both protocols: every device shows what was read anywhere as read
    assert got["fleet"]["read_agreement"] == 1.0 and got["fleet"]["messages_lost"] == 0


def test_the_fleet_command_refuses_jmap_on_a_server_without_it(tmp_path):
    cli_run.one_line_error(cli_run.run("fleet", "--client", "jmap", "--devices", 1, "--hours", 1, "--cache-dir",
                                       tmp_path), "speaks JMAP")
