"""COMPRESS=DEFLATE (RFC 4978, issue 18 item 3): both servers offer it, the client counts the deflated wire and
the protocol inside, a capture of it is read to its end, and a server without it gives an uncompressed session
that says why.

Real servers, real sockets, real zlib on both ends; the captures are tcpdump's. Nothing here is mocked.
"""

from __future__ import annotations

import json
import socket
import zlib

import pytest

from cli_run import run as run_cli
from mailstudy.corpus import generate
from mailstudy.live.access import Known, SessionSpec, run_session
from mailstudy.offline.analyze import analyze_pcap
from mailstudy.offline.inflate import Inflater
from mailstudy.protocol import make_parser
from mailstudy.protocol.events import Exchange
from mailstudy.study.experiment import Experiment, run_experiment
from mailstudy.wire import DOWN, UP

#: The counts a compressed and an uncompressed session must share, besides COMPRESS's own exchange.
SHARED = ("headers_fetched", "bodies_fetched", "integrity_ok", "exchanges_failed")


def _commands(exchanges) -> list[str]:
    return [e.command for e in sorted(exchanges, key=lambda e: e.index)]


def _session(server, spec: SessionSpec, raws):
    return run_session(server.host, server.imap_port, server.pop3_port, server.account.user,
                       server.account.password, spec, Known(raws))


@pytest.mark.parametrize("strategy", ["download-all", "header-first"])
def test_a_compressed_session_counts_the_deflated_wire_and_the_protocol_inside(start_server, strategy):
    raws = generate(30, "buchner2009", seed=3).raws()
    server = start_server(raws, compress=True)
    plain = _session(server, SessionSpec(strategy=strategy, read_fraction=0.2, seed=3), raws)
    packed = _session(server, SessionSpec(strategy=strategy, read_fraction=0.2, seed=3, compress=True), raws)
    m, p = packed.metrics, plain.metrics
    assert packed.compressed and packed.compress_refused is None and not plain.compressed
    assert packed.integrity_ok and all(packed.row()[k] == plain.row()[k] for k in SHARED)
    # the same commands, COMPRESS right after LOGIN; the wire is the deflated stream, the parser read it all
    assert _commands(packed.exchanges) == ["CAPABILITY", "LOGIN", "COMPRESS"] + _commands(plain.exchanges)[2:]
    assert (m["wire_bytes_up"], m["wire_bytes_down"]) == (m["compressed_bytes_up"], m["compressed_bytes_down"])
    assert m["tls_bytes_up"] == m["tls_bytes_down"] == 0
    assert m["wire_bytes_down"] < 0.75 * m["bytes_down"]  # mail compresses (measured: 0.69 whole, 0.20 headers)
    assert (plain.metrics["compressed_bytes_down"], plain.metrics["wire_bytes_down"]) == (p["bytes_down"],) * 2
    # the wire is what the socket carried: the traced stream before COMPRESS in clear, then deflate
    wire_down = packed.trace.stream(DOWN, wire=True)
    ok = wire_down.index(b" OK Begin compression") + 1
    start = wire_down.index(b"\r\n", ok) + 2
    inner = packed.trace.stream(DOWN)
    assert wire_down[:start] == inner[:start]
    assert zlib.decompressobj(-15).decompress(wire_down[start:]) == inner[start:]


def test_compress_inside_tls_counts_three_layers(start_server):
    raws = generate(10, "buchner2009", seed=1).raws()
    server = start_server(raws, compress=True, tls=True)
    spec = SessionSpec(strategy="download-all", tls="implicit", compress=True)
    r = run_session(server.host, server.imaps_port, server.pop3s_port, server.account.user,
                    server.account.password, spec, Known(raws), tls_ca=server.tls_ca)
    m = r.metrics
    assert r.compressed and r.integrity_ok
    assert m["compressed_bytes_down"] < m["bytes_down"]
    assert m["wire_bytes_down"] == m["compressed_bytes_down"] + m["tls_bytes_down"] and m["tls_bytes_down"] > 0
    assert m["wire_bytes_up"] == m["compressed_bytes_up"] + m["tls_bytes_up"]


def test_a_server_without_compress_gives_an_uncompressed_session_that_says_why(start_server):
    raws = generate(10, "buchner2009", seed=2).raws()
    # each on a server of its own (a first session clears \Recent, which changes the second's bytes)
    plain = _session(start_server(raws), SessionSpec(strategy="download-all"), raws)
    server = start_server(raws)  # COMPRESS not offered
    asked = _session(server, SessionSpec(strategy="download-all", compress=True), raws)
    assert not asked.compressed and asked.compress_refused == "the server does not offer COMPRESS=DEFLATE"
    assert asked.row()["compress_refused"] == asked.compress_refused and asked.row()["compressed"] is False
    assert _commands(asked.exchanges) == _commands(plain.exchanges) and asked.integrity_ok
    assert asked.metrics["compressed_bytes_down"] == asked.metrics["bytes_down"]
    if server.name == "embedded":  # Dovecot's tagged OKs carry their timing: only the embedded bytes repeat
        assert asked.metrics["bytes_down"] == plain.metrics["bytes_down"]


def test_pop3_has_no_compress_and_says_so(start_server):
    raws = generate(3, "buchner2009", seed=2).raws()
    server = start_server(raws, compress=True)
    r = _session(server, SessionSpec(protocol="pop3", strategy="download-all", compress=True), raws)
    assert r.compress_refused == "POP3 has no COMPRESS" and not r.compressed and r.integrity_ok


def test_client_profiles_that_ask_for_compress_use_it_where_offered(start_server):
    from mailstudy.live.client_profiles import PROFILES
    from mailstudy.live.devices import Device
    from mailstudy.live.engine import Catalog, Destination

    assert {n for n, p in PROFILES.items() if p.compression} >= {"thunderbird", "neomutt"}
    assert not PROFILES["mbsync"].compression
    raws = generate(5, "buchner2009", seed=4).raws()
    for offered in (True, False):
        server = start_server(raws, compress=offered)
        account = Destination(server.host, server.imap_port, server.pop3_port, server.account.user,
                              server.account.password, Catalog(raws))
        out = PROFILES["neomutt"].run(account, Device(), set())
        assert out.result.compressed is offered and out.result.integrity_ok
        assert (out.result.compress_refused is None) is offered
        assert ("COMPRESS" in _commands(out.result.exchanges)) is offered


def test_a_capture_of_a_compressed_session_is_read_to_its_end(server_kind, tmp_path, tcpdump):
    """tcpdump's payload bytes are the deflated wire the socket saw, byte for byte; the analyzer inflates the
    capture after the tagged OK and finds the commands and protocol bytes the live trace has."""
    exp = Experiment(server=server_kind, strategy="download-all", messages=30, compress=True)
    results: list = []
    (row,) = run_experiment(exp, capture=tmp_path / "c.pcap", capture_backend="tcpdump", results=results)
    assert row["capture_complete"] and row["integrity_ok"] and row["compressed"]
    (s,) = analyze_pcap(tmp_path / "c.pcap").sessions
    live = results[0]
    for k in ("bytes_up", "bytes_down", "wire_bytes_up", "wire_bytes_down", "compressed_bytes_up",
              "compressed_bytes_down", "commands"):
        assert s.metrics[k] == row[k], k
    assert s.metrics["wire_bytes_down"] < 0.75 * s.metrics["bytes_down"] and not s.warnings
    assert [(e.command, e.bytes_up, e.bytes_down) for e in s.exchanges] == \
        [(e.command, e.bytes_up, e.bytes_down) for e in sorted(live.exchanges, key=lambda e: e.index)]


def test_the_session_command_takes_compress():
    out = run_cli("session", "--messages", "3", "--strategy", "download-all", "--compress", "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert (row["compress"], row["compressed"], row["compress_refused"]) == (True, True, None)
    assert row["compressed_bytes_down"] < row["bytes_down"] and row["integrity_ok"] is True
    out = run_cli("session", "--messages", "2", "--protocol", "pop3", "--compress", "--json")
    assert out.returncode == 0, out.stderr
    assert "warning: COMPRESS not used, the session ran uncompressed: POP3 has no COMPRESS" in out.stderr
    # with --client the server offers it and the profile asks if its client does
    for client, asks in (("neomutt", True), ("mbsync", False)):
        out = run_cli("session", "--client", client, "--compress", "--messages", "4", "--json")
        assert out.returncode == 0, out.stderr
        first = json.loads(out.stdout)[0]
        assert (first["compressed_bytes_down"] < first["bytes_down"]) is asks, client


def test_compress_must_be_true_or_false():
    with pytest.raises(ValueError, match="compress must be True or False"):
        SessionSpec(compress="yes")


def test_the_servers_answer_compress_alike(start_server):
    """Before login BAD; after it OK, then a second COMPRESS NO [COMPRESSIONACTIVE], as Dovecot answers."""
    server = start_server([], compress=True)
    sock = socket.create_connection((server.host, server.imap_port), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"a COMPRESS DEFLATE\r\n")
    assert f.readline().startswith(b"a BAD ")
    sock.sendall(b"b LOGIN %s %s\r\n" % (server.account.user.encode(), server.account.password.encode()))
    assert b"COMPRESS=DEFLATE" in f.readline()
    sock.sendall(b"c COMPRESS FOO\r\n")
    assert f.readline().startswith(b"c NO Unknown compression mechanism")
    sock.sendall(b"d COMPRESS DEFLATE\r\n")
    assert f.readline().startswith(b"d OK Begin compression")
    z, unz = zlib.compressobj(-1, zlib.DEFLATED, -15), zlib.decompressobj(-15)
    sock.sendall(z.compress(b"e COMPRESS DEFLATE\r\nf LOGOUT\r\n") + z.flush(zlib.Z_SYNC_FLUSH))
    got = b""
    while b"f OK" not in got:
        data = sock.recv(4096)
        assert data, got
        got += unz.decompress(data)
    assert got.startswith(b"e NO [COMPRESSIONACTIVE] ")
    sock.close()


def _deflated(z, text: bytes) -> bytes:
    return z.compress(text) + z.flush(zlib.Z_SYNC_FLUSH)


def _compressed_chunks():
    """A hand-made IMAP session that turns COMPRESS on: the clear start, then each direction deflated."""
    zu, zd = zlib.compressobj(-1, zlib.DEFLATED, -15), zlib.compressobj(-1, zlib.DEFLATED, -15)
    return [(DOWN, 0.0, b"* OK ready\r\n"), (UP, 0.1, b"a LOGIN u p\r\n"), (DOWN, 0.2, b"a OK done\r\n"),
            (UP, 0.3, b"b COMPRESS DEFLATE\r\n"), (DOWN, 0.4, b"b OK Begin compression.\r\n"),
            (UP, 0.5, _deflated(zu, b"c SELECT INBOX\r\n")),
            (DOWN, 0.6, _deflated(zd, b"* 1 EXISTS\r\nc OK selected\r\n")),
            (UP, 0.7, _deflated(zu, b"d LOGOUT\r\n")), (DOWN, 0.8, _deflated(zd, b"* BYE\r\nd OK bye\r\n"))]


def test_the_inflater_reads_on_after_compress_and_stops_at_a_gap():
    chunks = _compressed_chunks()
    parser = make_parser("imap")
    inflater = Inflater(parser)
    for direction, t, data in chunks:
        inflater.feed(direction, data, t)
    parser.close(1.0)
    done = [e for e in parser.events() if isinstance(e, Exchange)]
    assert [e.command for e in done] == ["LOGIN", "COMPRESS", "SELECT", "LOGOUT"] and inflater.broken is None
    assert inflater.inner[DOWN] == len(b"* 1 EXISTS\r\nc OK selected\r\n* BYE\r\nd OK bye\r\n")
    # a gap after the switch: deflate cannot resume, the rest is only counted and the reason given
    parser = make_parser("imap")
    inflater = Inflater(parser)
    for direction, t, data in chunks[:6]:
        inflater.feed(direction, data, t)
    inflater.gap(DOWN, 10, 0.55)
    for direction, t, data in chunks[6:]:
        inflater.feed(direction, data, t)
    assert "cannot be inflated" in inflater.broken
    assert inflater.deflated[DOWN] == sum(len(d) for di, _, d in chunks[6:] if di == DOWN)


def test_the_explorer_marks_where_compression_began(tmp_path, tcpdump):
    from mailstudy.faces.explorer_views import COMPRESSED_ROW, exchanges_html

    run_experiment(Experiment(strategy="download-all", messages=3, compress=True), capture=tmp_path / "c.pcap",
                   capture_backend="tcpdump")
    (s,) = analyze_pcap(tmp_path / "c.pcap").sessions
    table = exchanges_html(s)
    assert not s.encrypted and "encrypted from here" not in table
    assert table.index("COMPRESS") < table.index(COMPRESSED_ROW) < table.index("SELECT")


def test_cyrus_offers_compress_of_its_own(cyrus_usable):
    """Debian's Cyrus is built with zlib: it offers COMPRESS=DEFLATE without being asked (measured)."""
    from mailstudy.servers import make_server

    raws = generate(5, "buchner2009", seed=5).raws()
    server = make_server("cyrus", compress=False)
    server.mailboxes[server.account.user] = raws
    with server:
        r = _session(server, SessionSpec(strategy="download-all", compress=True), raws)
    assert r.compressed and r.integrity_ok and r.metrics["compressed_bytes_down"] < r.metrics["bytes_down"]


def test_a_server_that_offers_compress_but_refuses_it_gives_an_uncompressed_session(dovecot_usable):
    """Dovecot told to announce COMPRESS=DEFLATE without its plugin answers BAD: the session goes on in clear."""
    from mailstudy.servers.dovecot import DovecotServer

    raws = generate(3, "buchner2009", seed=6).raws()
    server = DovecotServer(extra_config="imap_capability = +COMPRESS=DEFLATE\n")
    server.mailboxes[server.account.user] = raws
    with server:
        r = _session(server, SessionSpec(strategy="download-all", compress=True), raws)
    assert not r.compressed and r.integrity_ok and r.compress_refused.startswith("the server refused COMPRESS")
    assert _commands(r.exchanges) == ["CAPABILITY", "LOGIN", "COMPRESS", "SELECT", "UID FETCH", "LOGOUT"]
    assert [e.status for e in r.exchanges if e.command == "COMPRESS"] == ["BAD"]
