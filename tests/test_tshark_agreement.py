"""analyze_pcap agrees with tshark, and with the live session's own metrics, on captures of real sessions.

Per server (embedded and Dovecot), eight small sessions run with Python's imaplib/poplib under one tcpdump
capture: IMAP and POP3, header-first and download-all, batched and per-message, pipelined and not. Then, per
session, the independent oracle (tshark 4.0: ``-d tcp.port==P,imap`` / ``-d tcp.port==P,pop``) must agree with
``analyze`` on the number of client commands, the status of every IMAP command (taken from tshark's tagged
``imap.response`` lines), the payload bytes each way (sum of ``tcp.len``) and the reassembled streams
(``-z follow,tcp,raw``); and the analysis must give exactly the live row's bytes, commands and round trips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import needs

from mailstudy.live.access import Known, SessionSpec, run_session
from mailstudy.offline.analyze import Analysis, analyze_pcap
from mailstudy.capture import Capture, check_capture
from mailstudy.corpus import generate

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.usefixtures("tshark", "tcpdump")  # skipped where missing, failed under CI

SPECS = [  # small on purpose: 8 sessions per server, 12 messages
    SessionSpec(protocol="imap", strategy="header-first", read_fraction=0.25, seed=1),
    SessionSpec(protocol="imap", strategy="download-all"),
    SessionSpec(protocol="imap", strategy="header-first", batch=False, read_fraction=0.25, seed=2),
    SessionSpec(protocol="imap", strategy="download-all", batch=False, pipelining=True),
    SessionSpec(protocol="pop3", strategy="header-first", read_fraction=0.25, seed=3),
    SessionSpec(protocol="pop3", strategy="download-all"),
    SessionSpec(protocol="pop3", strategy="header-first", pipelining=True, read_fraction=0.5, seed=4),
    SessionSpec(protocol="pop3", strategy="download-all", pipelining=True, pop3_mode="delete"),  # last: deletes
]


@dataclass
class Captured:
    path: Path
    imap_port: int
    pop3_port: int
    results: list  # SessionResult per spec, in order
    analysis: Analysis
    tshark: dict = field(default_factory=dict)  # stream -> per-stream facts from tshark


_CACHE: dict[str, Captured] = {}


def _tshark(*args: str) -> str:
    proc = subprocess.run([TSHARK, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    return proc.stdout


def _tshark_facts(path: Path, imap_port: int, pop3_port: int) -> dict:
    out = _tshark("-r", str(path), "-d", f"tcp.port=={imap_port},imap", "-d", f"tcp.port=={pop3_port},pop",
                  "-T", "json", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.len",
                  "-e", "imap.request_tag", "-e", "imap.response", "-e", "pop.request.command")
    facts: dict = defaultdict(lambda: {"up": 0, "down": 0, "imap_tags": [], "imap_responses": [], "pop": []})
    for packet in json.loads(out):
        layers = packet["_source"]["layers"]
        f = facts[int(layers["tcp.stream"][0])]
        server_side = int(layers["tcp.srcport"][0]) in (imap_port, pop3_port)
        f["down" if server_side else "up"] += int(layers.get("tcp.len", ["0"])[0])
        f["imap_tags"] += layers.get("imap.request_tag", [])
        f["imap_responses"] += layers.get("imap.response", [])
        f["pop"] += layers.get("pop.request.command", [])
    streams = sorted(facts)
    follow = _tshark("-r", str(path), "-q", *[a for s in streams for a in ("-z", f"follow,tcp,raw,{s}")])
    current = None
    for line in follow.splitlines():
        if line.startswith("Filter: tcp.stream eq "):
            current = facts[int(line.rsplit(" ", 1)[1])]
            current["raw"] = {0: bytearray(), 1: bytearray()}
        elif line.startswith("Node 0: "):
            current["node0"] = line[len("Node 0: "):]
        elif current is not None and line.strip() and all(c in "0123456789abcdef\t" for c in line):
            node = 1 if line.startswith("\t") else 0
            current["raw"][node] += bytes.fromhex(line.strip())
    return dict(facts)


@pytest.fixture
def captured(server_kind, start_server, tmp_path_factory) -> Captured:
    needs.tcpdump_capture()  # the agreement needs a real capture (root or CAP_NET_RAW)
    if server_kind in _CACHE:
        return _CACHE[server_kind]
    corpus = generate(12, "fixed-5k", 0)
    server = start_server(corpus.raws())
    path = tmp_path_factory.mktemp(f"agree-{server_kind}") / f"{server_kind}.pcap"
    results = []
    with Capture(path, [server.imap_port, server.pop3_port], backend="tcpdump", host=server.host):
        for spec in SPECS:
            results.append(run_session(server.host, server.imap_port, server.pop3_port, server.account.user,
                                       server.account.password, spec, Known(corpus.raws())))
    for r in results:  # the capture holds every byte each client saw, or nothing below can be trusted
        report = check_capture(path, r.trace)
        assert report.complete, report.warnings
    analysis = analyze_pcap(path)
    cap = Captured(path, server.imap_port, server.pop3_port, results, analysis,
                   _tshark_facts(path, server.imap_port, server.pop3_port))
    _CACHE[server_kind] = cap
    return cap


def _pairs(cap: Captured):
    """(live result, session analysis, tshark facts) per session, matched by the client's port."""
    by_port = {s.connection.client[1]: s for s in cap.analysis.sessions}
    for r in cap.results:
        s = by_port[r.trace.local[1]]
        yield r, s, cap.tshark[s.connection.index]


def test_every_session_is_found(captured: Captured) -> None:
    a = captured.analysis
    assert len(a.sessions) == len(SPECS)
    assert [s.protocol for s in a.sessions] == [spec.protocol for spec in SPECS]
    assert all(not s.encrypted for s in a.sessions)
    assert {s.port for s in a.sessions} == {captured.imap_port, captured.pop3_port}  # found by their greetings


def _client_flights(s) -> list[list]:
    """The session's exchanges grouped by the client flight that carried their command line."""
    starts = [ch.t for ch, prev in zip(s.connection.chunks, [None, *s.connection.chunks])
              if ch.direction == "up" and (prev is None or prev.direction == "down")]
    flights: list[list] = [[] for _ in starts]
    for e in s.exchanges:
        i = max(k for k, t0 in enumerate(starts) if t0 <= e.t_sent)
        flights[i].append(e)
    return [f for f in flights if f]


def test_commands_agree_with_tshark(captured: Captured) -> None:
    for r, s, t in _pairs(captured):
        if s.protocol == "imap":
            # tshark's IMAP dissector reads every line of a segment: each tagged command is there
            assert [e.tag for e in s.exchanges] == t["imap_tags"]
        elif not r.spec.pipelining:
            assert [e.command for e in s.exchanges] == [c.upper() for c in t["pop"]]
        else:
            # tshark's POP dissector names only the first command of a segment: compare flight by flight, and
            # count the command lines in tshark's own reassembled client stream
            up = t["raw"][0] if t["node0"].endswith(f":{s.connection.client[1]}") else t["raw"][1]
            assert s.metrics["commands"] == up.count(b"\r\n")
            assert [f[0].command for f in _client_flights(s)] == [c.upper() for c in t["pop"]]
        assert s.metrics["commands"] > 3


def test_imap_statuses_agree_with_tshark(captured: Captured) -> None:
    for r, s, t in _pairs(captured):
        if s.protocol != "imap":
            continue
        theirs = {}
        for line in t["imap_responses"]:
            tag, _, rest = line.partition(" ")
            if tag in t["imap_tags"]:
                theirs[tag] = rest.split(" ", 1)[0].upper()
        assert {e.tag: e.status for e in s.exchanges} == theirs
        assert set(theirs.values()) == {"OK"}


def test_payload_bytes_agree_with_tshark(captured: Captured) -> None:
    for r, s, t in _pairs(captured):
        assert (s.metrics["bytes_up"], s.metrics["bytes_down"]) == (t["up"], t["down"])
        assert s.metrics["bytes_down"] > 12 * 100


def test_reassembled_streams_agree_with_tshark(captured: Captured) -> None:
    for r, s, t in _pairs(captured):
        conn = s.connection
        client_is_node0 = t["node0"].endswith(f":{conn.client[1]}")
        up, down = (t["raw"][0], t["raw"][1]) if client_is_node0 else (t["raw"][1], t["raw"][0])
        assert conn.stream("up") == bytes(up)
        assert conn.stream("down") == bytes(down)


def test_analysis_agrees_with_the_live_metrics(captured: Captured) -> None:
    for r, s, t in _pairs(captured):
        live, ours = r.metrics, s.metrics
        for key in ("bytes_up", "bytes_down", "commands", "exchanges_failed"):
            assert ours[key] == live[key], (r.spec, key)
        if not r.spec.pipelining:
            assert ours["round_trips"] == live["round_trips"] == live["commands"], r.spec
        else:
            # Pipelined, the socket and the wire may disagree: the trace ends a client flight when the client
            # *reads*, the capture when server bytes *cross the wire*. A server answering the first pipelined
            # command before the client has sent the next one splits one socket flight into two on the wire
            # (seen with the embedded server, a race). The wire can split a flight, never join two.
            assert live["round_trips"] <= ours["round_trips"] <= ours["commands"], r.spec
        assert [(e.command, e.status, e.bytes_up, e.bytes_down) for e in s.exchanges] == \
            [(e.command, e.status, e.bytes_up, e.bytes_down) for e in sorted(r.exchanges, key=lambda e: e.index)]
        # the capture's clock starts at the SYN, the trace's just before connect(): durations are close
        assert 0 < ours["duration_s"] < live["duration_s"] + 1.0


def test_pipelining_shows_in_round_trips(captured: Captured) -> None:
    rows = {(spec.protocol, spec.strategy, spec.pipelining, spec.batch): s.metrics
            for spec, (_, s, _) in zip(SPECS, _pairs(captured))}
    piped = rows[("pop3", "download-all", True, True)]
    assert piped["round_trips"] < piped["commands"]
    plain = rows[("pop3", "download-all", False, True)]
    assert plain["round_trips"] == plain["commands"]
