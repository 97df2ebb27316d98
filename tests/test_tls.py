"""TLS sessions (issue 16 item 1): implicit TLS and STARTTLS/STLS, TLS 1.2 and 1.3, on both servers and both
protocols, through the link and on loopback; what the handshake costs in round trips and bytes, counted apart
from the protocol's; and the ways TLS can fail, each one line, none of them going on in clear text.

Real servers, real sockets, real OpenSSL on both ends: nothing here is mocked. Timing bounds are lower bounds
the link guarantees by construction plus an allowance for the two sides' work on a shared machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from mailstudy.link import BASELINE, predict
from mailstudy.live.access import Known, SessionSpec, run_session
from mailstudy.live.clients import ClientTLS, TLSError
from mailstudy.servers import make_server
from mailstudy.study.experiment import Experiment, run_experiment
from mailstudy.wire import DOWN, UP, flights

PROTOCOL_COUNTS = ("bytes_up", "bytes_down", "commands", "round_trips", "headers_fetched", "bodies_fetched",
                   "integrity_ok", "exchanges_failed")
#: What TLS adds to the client's flights, as measured and explained in mailstudy.link.model's docstring:
#: implicit TLS: the ClientHello and the client's Finished (TLS 1.2: with its key exchange); STARTTLS with
#: TLS 1.3 sends its next command behind its Finished, so only the ClientHello is a flight of its own.
TLS_FLIGHTS = {("implicit", "1.2"): 2, ("implicit", "1.3"): 2, ("starttls", "1.2"): 2, ("starttls", "1.3"): 1}
#: STARTTLS's own commands: IMAP STARTTLS and the CAPABILITY after it; POP3 the CAPA that finds STLS and STLS
#: (the strategy's own CAPA is the one after TLS)
STARTTLS_COMMANDS = 2
#: how far the server's TLS bytes of two runs of one session may lie apart: 5 records of TLS 1.2's 29 B
RECORD_SLACK = 5 * 29


def test_the_metrics_count_tls_apart_from_the_protocol():
    """Pure: the protocol's chunks and the wire's records give bytes_*, wire_bytes_*, tls_* and round trips."""
    from mailstudy.protocol.metrics import session_metrics
    from mailstudy.wire import METRIC_KEYS

    protocol = [(DOWN, 3, 10), (UP, 4, 6), (DOWN, 5, 30)]  # (direction, t, nbytes): wire.Chunk's field order
    wire = [(UP, 1, 200), (DOWN, 2, 2000), (UP, 2.5, 80), (DOWN, 3, 60), (UP, 4, 40), (DOWN, 6, 52)]
    m = session_metrics(protocol, [], t_start=0, time_scale=1.0, wire=wire)
    assert (m.bytes_up, m.bytes_down, m.round_trips) == (6, 40, 1)
    assert (m.wire_bytes_up, m.wire_bytes_down, m.tls_bytes_up, m.tls_bytes_down) == (320, 2112, 314, 2072)
    assert m.tls_round_trips == 2 and m.duration_s == 6
    clear = session_metrics(protocol, [], t_start=0, time_scale=1.0)
    assert (clear.wire_bytes_up, clear.wire_bytes_down, clear.tls_bytes_down, clear.tls_round_trips) == (6, 40, 0, 0)
    assert {"wire_bytes_up", "tls_bytes_down", "tls_round_trips"} <= set(METRIC_KEYS)


def _run(server_kind, protocol, tls="none", version="1.3", profile="loopback", results=None):
    exp = Experiment(server=server_kind, protocol=protocol, messages=4, read_fraction=0.5, seed=3, tls=tls,
                     tls_version=version, profile=profile)
    (row,) = run_experiment(exp, results=results)
    return row


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_tls_sessions_count_the_protocol_alike_and_tls_apart_through_the_link(server_kind, protocol):
    """Every mode and version: the protocol's counts equal clear text's (STARTTLS: plus its two commands), the
    link changes none of them, and TLS's own flights and bytes are counted in tls_* (client bytes exactly; the
    server's records may be cut differently from run to run, by what its writes happened to coalesce)."""
    exact = [k for k in PROTOCOL_COUNTS if k != "bytes_down" or server_kind != "dovecot"]  # Dovecot's timing text
    clear = _run(server_kind, protocol)
    assert (clear["tls_round_trips"], clear["tls_bytes_up"], clear["tls_bytes_down"]) == (0, 0, 0)
    assert (clear["wire_bytes_up"], clear["wire_bytes_down"]) == (clear["bytes_up"], clear["bytes_down"])
    for (mode, version), flights_added in TLS_FLIGHTS.items():
        results: list = []
        lo = _run(server_kind, protocol, mode, version, results=results)
        hi = _run(server_kind, protocol, mode, version, profile="4g", results=results)
        assert {k: hi[k] for k in exact} == {k: lo[k] for k in exact}, (mode, version)
        assert lo["integrity_ok"] is True and lo["tls"] == mode and lo["tls_version"] == version
        assert all(r.trace.tls_version == f"TLSv{version}" for r in results)
        extra = STARTTLS_COMMANDS if mode == "starttls" else 0
        assert lo["commands"] == clear["commands"] + extra and lo["round_trips"] == clear["round_trips"] + extra
        if mode == "implicit":  # the same protocol bytes, now inside TLS
            assert (lo["bytes_up"], lo["bytes_down"] if server_kind != "dovecot" else 0) == \
                (clear["bytes_up"], clear["bytes_down"] if server_kind != "dovecot" else 0)
        assert lo["tls_round_trips"] == hi["tls_round_trips"] == flights_added, (mode, version)
        assert lo["tls_bytes_up"] == hi["tls_bytes_up"] > 300  # ClientHello, key exchange, Finished, records
        assert lo["tls_bytes_down"] > 1500  # the certificate (RSA 2048, ~800 B) with the server's flight
        # the server's answers may go out in a few more or fewer records (each 22 B in TLS 1.3, 29 B in TLS 1.2
        # with AES-GCM: header, nonce, tag), as its writes happened to coalesce; measured up to 2 records apart
        # on the embedded server. Dovecot's record count follows its many small writes and the reader's pace: a
        # STARTTLS 1.2 session through the 4g link once took 13 records more than on loopback, so for Dovecot
        # only the identities below (wire = protocol + TLS) hold exactly.
        if server_kind != "dovecot":
            assert abs(hi["tls_bytes_down"] - lo["tls_bytes_down"]) <= RECORD_SLACK, (mode, version)
        for r in (lo, hi):
            assert r["wire_bytes_up"] == r["bytes_up"] + r["tls_bytes_up"]
            assert r["wire_bytes_down"] == r["bytes_down"] + r["tls_bytes_down"]


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_implicit_tls_greets_three_rtt_after_connect_on_a_600_ms_link(version):
    """Issue 16's done-when: with TLS 1.3 implicit on a 600 ms link the greeting arrives 1.8 s after connect
    (connect 1 RTT, ClientHello and the server's flight 1 RTT, the client's Finished 1 RTT: the server greets once
    the handshake is complete on its side). TLS 1.2 costs the same here, measured: its last handshake message is
    the server's, and the greeting travels right behind it. The model, from the same session through the
    baseline link, predicts the whole session within 5 %."""
    results: list = []
    exp = Experiment(protocol="pop3", messages=2, tls="implicit", tls_version=version)
    (row,) = run_experiment(replace(exp, profile="satellite-geo"), results=results)
    run_experiment(replace(exp, profile=BASELINE), results=results)
    trace = results[0].trace
    greeting = next(c for c in trace.chunks if c.direction == DOWN)
    # upper bounds: half an RTT of slack for work and scheduling on a shared box (one round trip more fails)
    assert 1.8 <= (greeting.t - trace.t_connect_ns) * 1e-9 < 2.1
    first = flights(trace.wire)[0]
    assert first.direction == UP and (first.t_start - trace.t_connect_ns) * 1e-9 < 0.3  # its clock: not blocked
    m = predict(results[1], "satellite-geo")
    assert m["duration_s"] == pytest.approx(row["duration_s"], rel=0.05)
    assert m["duration_s"] >= 0.6 * (row["round_trips"] + row["tls_round_trips"] + 1)


def test_starttls_costs_its_command_the_handshake_and_a_new_capability():
    """STARTTLS on a 600 ms link: greeting at 2 RTT, then CAPABILITY, STARTTLS, the handshake and CAPABILITY
    again before LOGIN; the model, from the baseline session, agrees within 5 %."""
    results: list = []
    exp = Experiment(protocol="imap", messages=2, tls="starttls", tls_version="1.3")
    (row,) = run_experiment(replace(exp, profile="satellite-geo"), results=results)
    run_experiment(replace(exp, profile=BASELINE), results=results)
    trace = results[0].trace
    greeting = next(c for c in trace.chunks if c.direction == DOWN)
    assert 1.2 <= (greeting.t - trace.t_connect_ns) * 1e-9 < 1.5  # half an RTT of slack, as above
    commands = [e.command for e in sorted(results[0].exchanges, key=lambda e: e.index)]
    assert commands[:4] == ["CAPABILITY", "STARTTLS", "CAPABILITY", "LOGIN"]
    login = sorted(results[0].exchanges, key=lambda e: e.index)[3]
    # greeting 2 RTT + CAPABILITY + STARTTLS + ClientHello + (Finished with CAPABILITY): LOGIN leaves at 6 RTT
    assert 3.6 <= (login.t_sent - trace.t_connect_ns) * 1e-9 < 3.9 + 0.2
    m = predict(results[1], "satellite-geo")
    assert m["duration_s"] == pytest.approx(row["duration_s"], rel=0.05)


# -- failures --------------------------------------------------------------------------------------------------
def _session(server, protocol, mode, version="1.3", cafile="server"):
    spec = SessionSpec(protocol=protocol, tls=mode, tls_version=version)
    ca = server.tls_ca if cafile == "server" else cafile
    result = {}
    with pytest.raises(TLSError) as info:
        result = run_session(server.host, server.ports_for("imap", mode), server.ports_for("pop3", mode),
                             server.account.user, server.account.password, spec, Known([]), tls_ca=ca)
    assert not result
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    return message


def test_a_version_the_server_does_not_offer_is_one_line_and_nothing_goes_in_clear(server_kind):
    offered = ("1.3",)
    with make_server(server_kind, tls=True, tls_versions=offered) as server:
        for protocol in ("imap", "pop3"):
            for mode in ("implicit", "starttls"):
                assert "TLS 1.2" in _session(server, protocol, mode, "1.2")


def test_tls_1_2_alone_on_the_embedded_server_refuses_a_1_3_client():
    with make_server("embedded", tls=True, tls_versions=("1.2",)) as server:
        assert "TLS 1.3" in _session(server, "imap", "implicit", "1.3")
        ok = run_session(server.host, server.imaps_port, server.pop3s_port, server.account.user,
                         server.account.password, SessionSpec(tls="implicit", tls_version="1.2"), Known([]),
                         tls_ca=server.tls_ca)
        assert ok.trace.tls_version == "TLSv1.2"


def test_a_certificate_that_does_not_verify_is_one_line(server_kind, tmp_path):
    from mailstudy.servers.tls import make_certificate

    other = make_certificate(tmp_path)  # a certificate for the same address, from another "CA"
    with make_server(server_kind, tls=True) as server:
        for mode in ("implicit", "starttls"):
            for protocol in ("imap", "pop3"):
                message = _session(server, protocol, mode, cafile=str(other.cert))
                assert "does not verify" in message and str(other.cert) in message
        assert "does not verify against the system CAs" in _session(server, "imap", "implicit", cafile=None)


def test_starttls_on_a_server_without_tls_stops_before_the_login(server_kind):
    with make_server(server_kind) as server:  # no TLS: no STARTTLS, no STLS
        for protocol, word in (("imap", "STARTTLS"), ("pop3", "STLS")):
            spec = SessionSpec(protocol=protocol, tls="starttls")
            with pytest.raises(TLSError, match=f"does not offer {word}; not going on in clear text"):
                run_session(server.host, server.imap_port, server.pop3_port, server.account.user,
                            server.account.password, spec, Known([]))


def test_implicit_tls_to_a_clear_text_port_says_so():
    with make_server("embedded", tls=True) as server:
        with pytest.raises(TLSError, match="did not answer in TLS .*clear-text port"):
            run_session(server.host, server.imap_port, server.pop3_port, server.account.user,
                        server.account.password, SessionSpec(tls="implicit"), Known([]), tls_ca=server.tls_ca)


def test_client_tls_options_are_checked():
    with pytest.raises(ValueError, match="implicit, starttls"):
        ClientTLS("ssl")
    with pytest.raises(ValueError, match="1.2, 1.3"):
        SessionSpec(tls="implicit", tls_version="1.1")
    with pytest.raises(ValueError, match="TLS versions"):
        make_server("embedded", tls=True, tls_versions=("1.0",))
    with pytest.raises(ValueError, match="cannot stop offering TLS 1.3"):
        make_server("dovecot", tls=True, tls_versions=("1.2",))


def test_the_session_command_takes_tls_and_its_version():
    out = subprocess.run([sys.executable, "-m", "mailstudy.cli", "session", "--protocol", "pop3", "--messages",
                          "2", "--tls", "starttls", "--tls-version", "1.2", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert (row["tls"], row["tls_version"], row["tls_round_trips"]) == ("starttls", "1.2", 2)
    assert row["wire_bytes_up"] == row["bytes_up"] + row["tls_bytes_up"] and row["integrity_ok"] is True


def test_a_capture_of_a_tls_session_holds_its_records(tmp_path, tcpdump):
    """tcpdump sees the TLS records the traced socket saw (not the protocol's bytes inside), byte for byte."""
    from mailstudy.study.experiment import run_captured_session

    row, report = run_captured_session(Experiment(protocol="imap", messages=2, tls="implicit"),
                                       tmp_path / "imaps.pcap", backend="tcpdump")
    assert report.complete, report.warnings
    assert (report.trace_bytes_up, report.trace_bytes_down) == (row["wire_bytes_up"], row["wire_bytes_down"])
    assert report.bytes_up == row["wire_bytes_up"] and report.bytes_down >= row["wire_bytes_down"]
