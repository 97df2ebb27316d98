"""JMAP sessions against Cyrus's real httpd: discovery, header-first and download-all, integrity, and errors
that name the method.

Why: JMAP's numbers stand beside IMAP's and POP3's only if they are counted the same way (bytes on the client's
socket, a round trip per HTTP request) and every downloaded message is checked byte for byte.
"""

from __future__ import annotations

import pytest

from mailstudy.corpus import generate
from mailstudy.live.access import IntegrityError, Known, SessionError, SessionSpec, run_session
from mailstudy.live.jmap import HttpConnection, JmapClient, JmapSpec, basic, run_jmap_session
from mailstudy.live.trace import Trace
from mailstudy.servers.base import DEFAULT_ACCOUNT
from mailstudy.servers.cyrus import CyrusServer

pytestmark = [pytest.mark.cyrus, pytest.mark.usefixtures("cyrus_usable")]

USER, PASSWORD = DEFAULT_ACCOUNT.user, DEFAULT_ACCOUNT.password
N = 30


@pytest.fixture(scope="module")
def corpus():
    return generate(N, "buchner2009", seed=4)


@pytest.fixture(scope="module")
def server(corpus):
    with CyrusServer(mailboxes={USER: corpus.raws()}) as s:
        yield s


def jmap(server, known, **kw):
    return run_jmap_session(server.host, server.http_port, USER, PASSWORD, JmapSpec(**kw), known)


def test_header_first_lists_everything_in_one_request_and_opens_the_drawn_share(server, corpus):
    known = Known(corpus.raws())
    r = jmap(server, known, strategy="header-first", read_fraction=0.2, seed=4)
    opened = round(0.2 * N)
    assert r.integrity_ok and (r.headers_fetched, r.bodies_fetched) == (N, opened)
    # discovery (/.well-known/jmap redirects to the session resource), one list request, one GET per opened blob
    assert [x.command for x in r.exchanges] == ["GET", "GET", "POST"] + ["GET"] * opened
    assert r.exchanges[0].status_text.startswith("301") and r.exchanges[2].arguments.endswith(
        "Email/query+Email/get")
    assert r.metrics["commands"] == r.metrics["round_trips"] == 3 + opened
    assert r.metrics["exchanges_failed"] == 0 and r.metrics["opens"] == opened
    assert r.metrics["time_to_list_s"] <= r.metrics["duration_s"]
    assert r.metrics["bytes_up"] == sum(x.bytes_up for x in r.exchanges)
    assert r.metrics["bytes_down"] == sum(x.bytes_down for x in r.exchanges)


def test_download_all_fetches_every_blob_byte_exact(server, corpus):
    known = Known(corpus.raws())
    r = jmap(server, known, strategy="download-all")
    assert r.integrity_ok and (r.headers_fetched, r.bodies_fetched) == (0, N)
    assert r.metrics["commands"] == r.metrics["round_trips"] == 3 + N
    assert r.metrics["bytes_down"] > corpus.total_bytes
    hf = jmap(server, known, strategy="header-first")
    assert hf.metrics["bytes_down"] < 0.15 * r.metrics["bytes_down"]
    assert hf.metrics["round_trips"] == 3


def test_counts_repeat_exactly(server, corpus):
    known = Known(corpus.raws())
    runs = [jmap(server, known, strategy="header-first", read_fraction=0.3, seed=1) for _ in range(2)]
    for key in ("bytes_up", "bytes_down", "commands", "round_trips"):
        assert runs[0].metrics[key] == runs[1].metrics[key], key


def test_gzip_is_negotiated_and_counted_compressed(server, corpus):
    known = Known(corpus.raws())
    plain = jmap(server, known, strategy="download-all")
    packed = jmap(server, known, strategy="download-all", compress="gzip")
    assert packed.integrity_ok and packed.bodies_fetched == N  # checked after decompression
    assert b"Accept-Encoding: gzip" in packed.trace.stream("up")
    assert b"Content-Encoding: gzip" in packed.trace.stream("down")
    assert packed.metrics["bytes_down"] < plain.metrics["bytes_down"]


def test_jmap_and_imap_see_the_same_store(server, corpus):
    known = Known(corpus.raws())
    imap = run_session(server.host, server.imap_port, server.pop3_port, USER, PASSWORD,
                       SessionSpec("imap", "download-all"), known)
    jm = jmap(server, known, strategy="download-all")
    assert imap.bodies_fetched == jm.bodies_fetched == N and imap.integrity_ok and jm.integrity_ok


def test_a_different_mailbox_fails_the_integrity_check(server):
    other = Known(generate(N, "buchner2009", seed=99).raws())
    with pytest.raises(IntegrityError, match="matches no delivered message"):
        jmap(server, other, strategy="header-first")
    with pytest.raises(IntegrityError, match="match no delivered message"):
        jmap(server, other, strategy="download-all")


def _client(server) -> JmapClient:
    return JmapClient(HttpConnection(server.host, server.http_port, 10, Trace()), basic(USER, PASSWORD))


def test_a_method_error_names_the_method(server):
    c = _client(server)
    with pytest.raises(SessionError, match=r"^JMAP method Email/get failed: accountNotFound"):
        c.call([["Email/get", {"accountId": "nobody-here", "ids": []}, "g"]])
    c.conn.close()


def test_an_http_error_is_one_line_naming_the_request(server):
    c = _client(server)
    with pytest.raises(SessionError, match=r"^JMAP Email/query failed: HTTP 4\d\d: ") as info:
        c.api = "/jmap/no-such-endpoint/"
        c.call([["Email/query", {"accountId": USER}, "q"]])
    assert "\n" not in str(info.value)
    c.conn.close()


def test_a_wrong_password_is_an_http_error_naming_discovery(server):
    with pytest.raises(SessionError, match=r"^JMAP session discovery \(GET /\S*jmap\) failed: HTTP 401: \S"):
        run_jmap_session(server.host, server.http_port, USER, PASSWORD + "-wrong", JmapSpec(), Known([]))


def test_nothing_listening_is_a_session_error():
    from mailstudy.servers.base import free_port

    with pytest.raises(SessionError, match="session .*failed"):
        run_jmap_session("127.0.0.1", free_port(), USER, PASSWORD, JmapSpec(), Known([]))


def test_bad_spec_is_refused():
    with pytest.raises(ValueError, match="strategy"):
        JmapSpec(strategy="everything")
    with pytest.raises(ValueError, match="compress"):
        JmapSpec(compress="br")


# -- the command line ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["header-first", "download-all"])
def test_cli_session_with_jmap_on_cyrus(strategy):
    import json

    from cli_run import run

    out = run("session", "--server", "cyrus", "--protocol", "jmap", "--strategy", strategy, "--messages", 12,
              "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert (row["protocol"], row["server"], row["integrity_ok"], row["messages"]) == ("jmap", "cyrus", True, 12)
    assert row["label"] == f"JMAP {strategy}"
    assert row["round_trips"] == (3 if strategy == "header-first" else 3 + 12)
    assert row["batch"] is None and row["pop3_mode"] is None  # IMAP's and POP3's knobs do not apply


def test_cli_jmap_through_an_emulated_link_counts_the_same_round_trips():
    import json

    from cli_run import run

    rows = []
    for profile in ("loopback", "4g"):
        out = run("session", "--server", "cyrus", "--protocol", "jmap", "--messages", 6, "--read-fraction", 0.5,
                  "--profile", profile, "--json")
        assert out.returncode == 0, out.stderr
        rows.append(json.loads(out.stdout))
    loop, g4 = rows
    assert (g4["profile"], g4["integrity_ok"]) == ("4g", True) and g4["rtt_s"] > 0 == loop["rtt_s"]
    for key in ("round_trips", "commands", "bytes_up", "bytes_down"):
        assert g4[key] == loop[key], key  # the link delays bytes; it neither adds nor drops any


@pytest.mark.parametrize("protocol,strategy", [(p, s) for p in ("imap", "pop3")
                                               for s in ("header-first", "download-all")])
def test_cli_session_with_imap_and_pop3_on_cyrus(protocol, strategy):
    import json

    from cli_run import run

    out = run("session", "--server", "cyrus", "--protocol", protocol, "--strategy", strategy, "--messages", 12,
              "--read-fraction", 0.25, "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert (row["protocol"], row["server"], row["integrity_ok"], row["messages"]) == (protocol, "cyrus", True, 12)
    assert (row["headers_fetched"], row["bodies_fetched"]) == ((12, 3) if strategy == "header-first" else (0, 12))


def test_cli_jmap_preview_reads_in_part():
    import json

    from cli_run import run

    out = run("session", "--server", "cyrus", "--protocol", "jmap", "--messages", 8, "--read-fraction", 0.5,
              "--preview", 512, "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert (row["preview"], row["integrity_ok"], row["bodies_fetched"], row["opens"]) == (512, True, 0, 4)
    assert row["round_trips"] == 3 + 4


@pytest.mark.parametrize("args,needle", [
    ((), "JMAP is served by cyrus only, not 'embedded'"),
    (("--server", "cyrus", "--profile", "no-such-net"), "no-such-net"),
    (("--server", "cyrus", "--strategy", "download-all", "--preview", "100"), "needs strategy header-first"),
])
def test_cli_jmap_refusals_are_one_line(args, needle):
    from cli_run import one_line_error, run

    one_line_error(run("session", "--protocol", "jmap", "--messages", 3, *args), needle)
