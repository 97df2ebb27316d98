"""A captured JMAP session (tcpdump on loopback, HTTP/1.1 in clear text) is split into the same exchanges the live
client's trace gives: each request with its method calls, bytes and timing; and ``mailstudy analyze`` shows it.

Why: issue 20, item 3. Live traces and pcaps meet at the protocol parsers (docs/design.md): one definition of an
exchange for JMAP too. Also the parser's own rules (pipelining, chunked bodies, method errors) on fed bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import needs
from mailstudy.corpus import generate
from mailstudy.live.access import Known
from mailstudy.live.jmap import JmapSpec, run_jmap_session
from mailstudy.protocol import make_parser, parse_session
from mailstudy.protocol.classify import classify
from mailstudy.protocol.events import DOWN, UP, Exchange
from mailstudy.servers.base import DEFAULT_ACCOUNT

USER, PASSWORD = DEFAULT_ACCOUNT.user, DEFAULT_ACCOUNT.password
N = 12


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    needs.cyrus()
    needs.tcpdump_capture()
    from mailstudy.capture import Capture, check_capture
    from mailstudy.servers.cyrus import CyrusServer

    corpus = generate(N, "buchner2009", seed=8)
    path = tmp_path_factory.mktemp("jmap") / "jmap.pcap"
    with CyrusServer(mailboxes={USER: corpus.raws()}) as s:
        with Capture(path, [s.http_port], backend="tcpdump", host=s.host):
            result = run_jmap_session(s.host, s.http_port, USER, PASSWORD,
                                      JmapSpec(read_fraction=0.5, seed=8), Known(corpus.raws()))
        port = s.http_port
    assert check_capture(path, result.trace).complete
    return path, port, result


def test_the_capture_gives_the_live_sessions_exchanges(captured):
    from mailstudy.offline.analyze import analyze_pcap

    path, port, live = captured
    analysis = analyze_pcap(path, ports=[port])
    (session,) = analysis.sessions
    assert session.protocol == "jmap" and session.port == port
    key = [(x.index, x.command, x.arguments, x.status, x.status_text, x.bytes_up, x.bytes_down)
           for x in session.exchanges]
    assert key == [(x.index, x.command, x.arguments, x.status, x.status_text, x.bytes_up, x.bytes_down)
                   for x in sorted(live.exchanges, key=lambda e: e.index)]
    assert [x.arguments for x in session.exchanges[:3]] == ["/.well-known/jmap", "/jmap",
                                                             "/jmap/ Email/query+Email/get"]
    for name in ("bytes_up", "bytes_down", "commands"):
        assert session.metrics[name] == live.metrics[name], name
    assert live.metrics["round_trips"] <= session.metrics["round_trips"] <= session.metrics["commands"]
    assert all(x.t_sent <= x.t_first_response <= x.t_done for x in session.exchanges)


def test_analyze_on_the_command_line_shows_the_jmap_session(captured):
    from cli_run import run

    path, port, live = captured
    out = run("analyze", str(path), "--port", port, "--json", "--exchanges")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    text = json.dumps(doc)
    assert '"jmap"' in text and "Email/query+Email/get" in text


# -- the parser on bytes it is fed ------------------------------------------------------------------------------
REQ = (b"POST /jmap/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s")
CALLS = b'{"using":[],"methodCalls":[["Email/get",{"accountId":"a"},"g"],["Email/query",{},"q"]]}'
ERR = b'{"methodResponses":[["error",{"type":"accountNotFound"},"g"],["Email/query",{},"q"]]}'


def _response(body: bytes, chunked: bool = False) -> bytes:
    if not chunked:
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body), body)
    half = len(body) // 2
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:]))


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("step", [1, 7, 10_000])
def test_pipelined_requests_pair_with_responses_in_order_whatever_the_chunking(chunked, step):
    up = REQ % (len(CALLS), CALLS) + b"GET /jmap/download/a/b/m.eml HTTP/1.1\r\nHost: x\r\n\r\n"
    down = _response(ERR, chunked) + b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n"
    chunks = [(UP, i, up[i:i + step]) for i in range(0, len(up), step)]
    chunks += [(DOWN, 1000 + i, down[i:i + step]) for i in range(0, len(down), step)]
    ex = sorted((e for e in parse_session("jmap", chunks) if isinstance(e, Exchange)), key=lambda e: e.index)
    assert [(e.command, e.arguments, e.status) for e in ex] == [
        ("POST", "/jmap/ Email/get+Email/query", "NO"), ("GET", "/jmap/download/a/b/m.eml", "NO")]
    assert ex[0].status_text == "200 OK; method Email/get: accountNotFound" and ex[1].status_text == "404 Not Found"
    assert sum(e.bytes_up for e in ex) == len(up) and sum(e.bytes_down for e in ex) == len(down)
    assert ex[0].t_first_response == 1000 and ex[1].t_done == 1000 + ((len(down) - 1) // step) * step


def test_a_body_to_the_close_and_a_response_nobody_asked_for():
    p = make_parser("jmap")
    p.feed(UP, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    p.feed(DOWN, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nevent: ping\n\n", 2)
    p.feed(DOWN, b"event: state\ndata: {}\n\n", 3)
    p.close(4)
    (ex,) = [e for e in p.events() if isinstance(e, Exchange)]
    assert ex.status == "OK" and ex.t_done == 3 and ex.bytes_down > 60
    q = make_parser("jmap")
    q.feed(DOWN, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1)
    q.close(2)
    assert q.unattributed[DOWN] > 0 and not [e for e in q.events() if isinstance(e, Exchange)]


def test_classify_tells_jmap_on_a_named_port_only():
    chunks = [(UP, 0, b"GET / HTTP/1.1\r\n\r\n"), (DOWN, 1, b"HTTP/1.1 200 OK\r\n")]
    assert classify(8080, chunks, ports=[8080]) == ("jmap", "")
    assert classify(8080, chunks)[0] is None
    assert classify(8080, [(DOWN, 0, b"HTTP/1.1 200 OK\r\n")], ports=[8080])[0] is None  # server spoke first


def test_the_ladder_draws_a_captured_jmap_session_with_its_method_calls(captured):
    import matplotlib

    matplotlib.use("Agg")
    from mailstudy.faces.ladder import flights, ladder
    from mailstudy.offline.analyze import analyze_pcap

    path, port, _live = captured
    (session,) = analyze_pcap(path, ports=[port]).sessions
    arrows = flights(session)
    started = [e.arguments for a in arrows for e in a.starts]
    assert "/jmap/ Email/query+Email/get" in started and arrows[0].direction == "up"  # the client speaks first
    fig = ladder(session)
    assert any("Email/query" in t.get_text() for ax in fig.axes for t in ax.texts)



@settings(max_examples=200, deadline=None)
@given(up=st.binary(max_size=400), down=st.binary(max_size=400))
def test_any_bytes_give_events_never_a_traceback(up, down):
    p = make_parser("jmap")
    p.feed(UP, b"POST /jmap/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n" + up, 1)
    p.feed(DOWN, down, 2)
    p.close(3)
    events = p.events()
    got = sum(e.bytes_up for e in events if isinstance(e, Exchange)) + p.unattributed[UP] + p.tls.bytes_up
    assert got <= p.total[UP]


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=20))
def test_any_split_of_a_session_gives_the_same_exchanges(cuts):
    up = REQ % (len(CALLS), CALLS) + b"GET /a HTTP/1.1\r\n\r\n"
    down = _response(ERR, chunked=True) + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"

    def split(data: bytes) -> list[bytes]:
        out, i = [], 0
        for n in cuts * (1 + len(data) // max(1, sum(cuts))):
            if i >= len(data):
                break
            out.append(data[i:i + n])
            i += n
        return out + ([data[i:]] if i < len(data) else [])

    whole = [(e.command, e.arguments, e.status, e.bytes_up, e.bytes_down)
             for e in parse_session("jmap", [(UP, 0, up), (DOWN, 1, down)]) if isinstance(e, Exchange)]
    parts = [(UP, 0, c) for c in split(up)] + [(DOWN, 1, c) for c in split(down)]
    assert [(e.command, e.arguments, e.status, e.bytes_up, e.bytes_down)
            for e in parse_session("jmap", parts) if isinstance(e, Exchange)] == whole


def test_session_command_captures_a_jmap_session_that_analyze_reads(tmp_path):
    needs.cyrus()
    needs.tcpdump_capture()
    from cli_run import run

    pcap = tmp_path / "j.pcap"
    out = run("session", "--server", "cyrus", "--protocol", "jmap", "--messages", 5, "--capture", pcap,
              "--capture-backend", "tcpdump", "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert row["capture_complete"] is True and f"--port {row['capture_port']}" in out.stderr
    assert Path(str(pcap) + ".json").exists() or any(p.suffix == ".json" for p in tmp_path.iterdir())
    from mailstudy.offline.analyze import analyze_pcap

    (session,) = analyze_pcap(pcap, ports=[row["capture_port"]]).sessions
    assert session.protocol == "jmap"
    assert (session.metrics["bytes_up"], session.metrics["bytes_down"]) == (row["bytes_up"], row["bytes_down"])
