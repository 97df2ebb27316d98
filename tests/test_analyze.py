"""analyze_pcap and `mailstudy analyze`: real peer captures (with tshark as the oracle), odd and broken captures.

What must hold: every file gives either a result or a one-line error (exit 2), never a traceback; POP3 sessions
captured on a real network have the commands and round trips tshark sees; Redis is not mail; STARTTLS/STLS
sessions are marked encrypted; the fast feeding path gives the same events as the parser's public ``feed``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import badpcaps
from mailstudy.offline.analyze import analyze_connection, analyze_pcap, classify
from mailstudy.cli.analyze import add_parser, run
from mailstudy.protocol.metrics import FRAME_COLUMNS
from mailstudy.net.pcap import PcapError, read_tcp
from mailstudy.net.reassembly import reassemble

import needs
from peers import PEER

PEER_FILES = sorted(PEER.glob("*.pcap")) if PEER.is_dir() else []
PYTHON = sys.executable


_peer = needs.peer


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mailstudy")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["analyze", *argv])


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = run(_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _run_subprocess(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "mailstudy.cli", "analyze", *argv], capture_output=True, text=True,
                          timeout=60)


def _one_line_error(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mailstudy: error: "), err
    assert "Traceback" not in err


_tshark = needs.tshark


# ---- every peer capture, both ways ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", PEER_FILES, ids=[p.name for p in PEER_FILES])
def test_peer_capture_analyzes_in_process(path: Path, capsys) -> None:
    code, out, err = _run([str(path), "--json", "--exchanges"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["file"] == str(path)
    assert doc["packets"] > 0
    for s in doc["sessions"]:
        for key in ("client", "server", "protocol", "bytes_up", "bytes_down", "packets", "commands", "round_trips",
                    "duration_s", "encrypted", "warnings"):
            assert key in s, key
        assert s["protocol"] in ("imap", "pop3")
        assert len(s["exchanges"]) == s["commands"]
    code, out, err = _run([str(path), "--exchanges"], capsys)
    assert code == 0 and err == ""
    assert str(path) in out.splitlines()[0]


@pytest.mark.parametrize("path", PEER_FILES, ids=[p.name for p in PEER_FILES])
def test_peer_capture_analyzes_in_a_subprocess(path: Path) -> None:
    proc = _run_subprocess([str(path)])
    assert proc.returncode in (0, 2), proc.stderr
    assert "Traceback" not in proc.stderr
    if proc.returncode == 2:
        _one_line_error(proc.stderr)
    else:
        assert "mail session" in proc.stdout


def test_peer_captures_are_there() -> None:
    # the parametrized tests above would silently run zero times without them
    assert len(PEER_FILES) >= 6, f"expected the peer captures in {PEER}"


# ---- POP3 on a real network, against tshark ------------------------------------------------------------------
def _tshark_pop_commands(path: Path) -> dict[int, int]:
    """Client commands per tcp.stream as tshark sees them, minus SASL lines (a line answering a "+ " challenge:
    tshark calls it a request, docs/design.md's words do not call it a command)."""
    out = subprocess.run([_tshark(), "-r", str(path), "-Y", "pop", "-T", "fields", "-E", "aggregator=\x1e",
                          "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "pop.request.command",
                          "-e", "tcp.payload"], capture_output=True, text=True, check=True).stdout
    counts: dict[int, int] = defaultdict(int)
    challenged: dict[int, bool] = defaultdict(bool)
    for line in out.splitlines():
        stream, sport, command, payload = (line.split("\t") + ["", "", "", ""])[:4]
        stream = int(stream)
        if int(sport) in (110, 995):  # server: a SASL challenge starts "+ " (hex 2b20)
            challenged[stream] = payload.replace(":", "").startswith("2b20")
        elif command:
            for _ in command.split("\x1e"):
                if challenged[stream]:
                    challenged[stream] = False  # the SASL response, not a command
                else:
                    counts[stream] += 1
    return dict(counts)


def _tshark_flights(path: Path) -> dict[int, int]:
    """Client flights per tcp.stream from tshark's segment lengths (docs/design.md's round trips)."""
    out = subprocess.run([_tshark(), "-r", str(path), "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport",
                          "-e", "tcp.dstport", "-e", "tcp.len", "-e", "tcp.analysis.retransmission"],
                         capture_output=True, text=True, check=True).stdout
    flights: dict[int, int] = defaultdict(int)
    in_flight: dict[int, bool] = defaultdict(bool)
    for line in out.splitlines():
        stream, sport, dport, length, retrans = (line.split("\t") + [""] * 5)[:5]
        if not length or int(length) == 0 or retrans:
            flights[int(stream)] += 0
            continue
        stream = int(stream)
        if int(dport) in (110, 143, 993, 995):  # client -> server
            if not in_flight[stream]:
                flights[stream] += 1
                in_flight[stream] = True
        else:
            in_flight[stream] = False
    return dict(flights)


def test_pop3_pcap_commands_and_round_trips_match_tshark() -> None:
    path = _peer("pop3.pcap")
    analysis = analyze_pcap(path)
    ours_commands = {s.connection.index: s.metrics["commands"] for s in analysis.sessions}
    ours_flights = {s.connection.index: s.metrics["round_trips"] for s in analysis.sessions}
    theirs_commands = _tshark_pop_commands(path)
    theirs_flights = _tshark_flights(path)
    assert len(analysis.sessions) == 7  # 2 connections that never carried a byte, 5 real sessions
    assert sum(ours_commands.values()) == 21
    for stream in set(ours_commands) | set(theirs_commands):
        assert ours_commands.get(stream, 0) == theirs_commands.get(stream, 0), stream
    for stream in ours_flights:
        assert ours_flights[stream] == theirs_flights.get(stream, 0), stream


def test_pop3_pcap_sasl_line_is_part_of_auth_and_redacted() -> None:
    analysis = analyze_pcap(_peer("pop3.pcap"))
    frame = analysis.exchanges_frame()
    assert list(frame.columns) == ["session", *FRAME_COLUMNS]
    auth = frame[(frame.command == "AUTH") & (frame.arguments != "")]
    assert len(auth) == 3
    assert set(auth.arguments) == {"PLAIN"}  # the mechanism is shown, the credential line is not a command
    assert not frame.arguments.str.contains("AGRp").any()  # the base64 credential never appears
    retr = frame[frame.command == "RETR"]
    assert list(retr.bytes_down) == [5574, 8421, 5222]
    assert (frame.latency_s > 0.04).all()  # real internet round trips: every exchange waited for the server
    sessions = analysis.sessions_frame()
    assert list(sessions.bytes_down) == [0, 0, 175, 205, 175, 297, 19651]
    assert (sessions.duration_s >= 0).all()


def test_durations_run_from_the_syn() -> None:
    analysis = analyze_pcap(_peer("pop3.pcap"))
    s = analysis.sessions[6]
    conn = s.connection
    assert conn.t_syn is not None
    last_payload = max(ch.t for ch in conn.chunks)
    assert s.metrics["duration_s"] == pytest.approx(last_payload - conn.t_syn)
    assert s.metrics["time_to_list_s"] is None


# ---- not mail, encrypted, odd ports --------------------------------------------------------------------------
def test_redis_is_not_mail(capsys) -> None:
    path = _peer("redis-50-pings.pcap")
    analysis = analyze_pcap(path)
    assert analysis.sessions == []
    assert analysis.connections == 1 and analysis.non_mail == 1
    assert any("6379" in w for w in analysis.warnings)
    code, out, err = _run([str(path), "--json"], capsys)
    assert code == 0 and err == ""
    assert json.loads(out)["sessions"] == []
    # naming the port does not make it mail: Redis's first words come from the client
    assert analyze_pcap(path, ports=[6379]).sessions == []


@pytest.mark.parametrize("name, protocol", [("imap-starttls.pcap", "imap"), ("pop3-starttls.pcap", "pop3")])
def test_starttls_sessions_are_encrypted(name: str, protocol: str, capsys) -> None:
    analysis = analyze_pcap(_peer(name))
    assert len(analysis.sessions) == 1
    s = analysis.sessions[0]
    assert s.protocol == protocol and s.encrypted and s.metrics["encrypted"]
    assert s.exchanges[-1].command in ("STARTTLS", "STLS") and s.exchanges[-1].ok
    code, out, _ = _run([str(_peer(name)), "--json"], capsys)
    assert code == 0 and json.loads(out)["sessions"][0]["encrypted"] is True


def _write_segments(path: Path, segs) -> None:
    badpcaps.write_pcap(path, [(s.t_ns, badpcaps.frame(s)) for s in segs])


def test_greeting_tells_the_protocol_on_other_ports(tmp_path: Path) -> None:
    imap = badpcaps.conversation(sport=10143, cport=40001)
    pop = badpcaps.conversation([(b"", b"+OK POP3 ready\r\n"), (b"USER bob\r\n", b"+OK\r\n"),
                                 (b"PASS hunter2\r\n", b"+OK\r\n"), (b"QUIT\r\n", b"+OK bye\r\n")],
                                sport=10110, cport=40002, t0_ns=badpcaps.T0_NS + 10**9)
    client_first = badpcaps.conversation([(b"PING\r\n", b"+OK\r\n")], sport=7000, cport=40003,
                                         t0_ns=badpcaps.T0_NS + 2 * 10**9)
    path = tmp_path / "ports.pcap"
    _write_segments(path, imap + pop + client_first)
    analysis = analyze_pcap(path)
    assert [(s.protocol, s.port) for s in analysis.sessions] == [("imap", 10143), ("pop3", 10110)]
    assert analysis.non_mail == 1
    assert [s.metrics["commands"] for s in analysis.sessions] == [2, 3]
    pop_frame = analysis.sessions[1].exchanges_frame()
    assert list(pop_frame.arguments) == ["***", "***", ""]  # USER and PASS redacted
    assert "hunter2" not in json.dumps(pop_frame.to_dict("records"))


def test_named_port_with_no_greeting_is_reported(tmp_path: Path) -> None:
    segs = badpcaps.conversation([(b"", b"HELLO there\r\n"), (b"x\r\n", b"y\r\n")], sport=9999)
    path = tmp_path / "named.pcap"
    _write_segments(path, segs)
    analysis = analyze_pcap(path, ports=[9999])
    assert analysis.sessions == []
    assert any("9999" in w and "greeting" in w for w in analysis.warnings)


def test_imap_login_is_redacted_and_statuses_kept(tmp_path: Path) -> None:
    segs = badpcaps.conversation([(b"", b"* OK ready\r\n"), (b"a1 LOGIN bob secret\r\n", b"a1 OK hi\r\n"),
                                  (b"a2 SELECT nope\r\n", b"a2 NO no such mailbox\r\n"),
                                  (b"a3 LOGOUT\r\n", b"* BYE\r\na3 OK bye\r\n")])
    path = tmp_path / "login.pcap"
    _write_segments(path, segs)
    s = analyze_pcap(path).sessions[0]
    frame = s.exchanges_frame()
    assert list(frame.command) == ["LOGIN", "SELECT", "LOGOUT"]
    assert list(frame.status) == ["OK", "NO", "OK"]
    assert frame.arguments[0] == "*** ***"
    assert s.metrics["exchanges_failed"] == 1
    assert s.metrics["bytes_up"] == len(b"a1 LOGIN bob secret\r\na2 SELECT nope\r\na3 LOGOUT\r\n")
    assert (frame.t_sent_s > 0).all() and (frame.latency_s > 0).all()


def test_classify_ignores_client_first_plus_ok() -> None:
    conns = reassemble(read_tcp(_peer("redis-50-pings.pcap")))
    assert classify(conns[0]) == (None, "")


# ---- broken and odd captures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(badpcaps.CORPUS))
def test_bad_pcaps_give_one_line_errors_or_warned_results(name: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / f"{name}.pcap"
    badpcaps.CORPUS[name](path)
    code, out, err = _run([str(path), "--json"], capsys)
    assert code in (0, 2)
    if code == 2:
        _one_line_error(err)
        with pytest.raises(PcapError):
            analyze_pcap(path)
        return
    doc = json.loads(out)
    analysis = analyze_pcap(path)
    # whatever the reader or reassembly found wrong is shown, not swallowed
    shown = doc["warnings"] + [w for s in doc["sessions"] for w in s["warnings"]]
    assert all(w in doc["warnings"] for w in analysis.stats.warnings)
    assert all(w in shown for s in analysis.sessions for w in s.connection.warnings)
    assert len(doc["sessions"]) == len(analysis.sessions)


def test_missing_folder_and_junk_files_are_one_line_errors(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture at all\n")
    for argv in ([str(tmp_path / "missing.pcap")], [str(tmp_path)], [str(junk)], [str(junk), "--json"]):
        code, out, err = _run(argv, capsys)
        assert code == 2 and out == ""
        _one_line_error(err)
    proc = _run_subprocess([str(junk)])
    assert proc.returncode == 2
    _one_line_error(proc.stderr)


def test_bad_port_is_a_usage_error() -> None:
    proc = _run_subprocess(["x.pcap", "--port", "70000"])
    assert proc.returncode == 2
    assert "port must be 1-65535" in proc.stderr and "Traceback" not in proc.stderr


# ---- the fast feeding path equals the public feed ------------------------------------------------------------
def _all_connections():
    for path in PEER_FILES:
        for conn in reassemble(read_tcp(path)):
            yield path.name, conn


def test_fast_feed_gives_the_same_events_as_feed(tmp_path: Path) -> None:
    checked = Counter()
    big = badpcaps.conversation([(b"", b"* OK ready\r\n")] + [
        (b"a%d FETCH %d BODY[]\r\n" % (i, i), b"* %d FETCH (BODY[] {3000}\r\n" % i + b"x" * 3000 + b")\r\na%d OK\r\n" % i)
        for i in range(1, 6)], mss=700)
    path = tmp_path / "big.pcap"
    _write_segments(path, big)
    conns = [(n, c) for n, c in _all_connections()] + [("big", c) for c in reassemble(read_tcp(path))]
    for name, conn in conns:
        for protocol in ("imap", "pop3"):
            fast = analyze_connection(conn, protocol, keep_payloads=True, fast=True)
            slow = analyze_connection(conn, protocol, keep_payloads=True, fast=False)
            assert fast.events == slow.events, (name, conn.index, protocol)
            assert fast.metrics == slow.metrics
            checked[protocol] += 1
    assert checked["imap"] >= 10
    big_session = analyze_pcap(path, keep_payloads=True).sessions[0]
    assert [len(e.literals[0]) for e in big_session.exchanges] == [3000] * 5
    assert all(not e.literals for e in analyze_pcap(path).sessions[0].exchanges)


def test_progress_bar_does_not_change_results() -> None:
    path = _peer("pop3.pcap")
    a, b = analyze_pcap(path), analyze_pcap(path, progress=True)
    assert [s.metrics for s in a.sessions] == [s.metrics for s in b.sessions]
