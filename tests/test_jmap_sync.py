"""JMAP's change sync and push against IMAP's CONDSTORE resync and IDLE, on one Cyrus store, and the preview
workload; real sessions over real sockets.

Why: issue 20 asks whether JMAP keeps its promises (cheap ``Email/changes``, push without a held IMAP
connection). Each side is measured by its protocol's one parser; the counts asserted here are what a chart shows.
"""

from __future__ import annotations

import pytest

from mailstudy.corpus import generate
from mailstudy.live.access import IntegrityError, Known
from mailstudy.live.engine import Destination
from mailstudy.live.jmap import JmapSpec, first_text, run_jmap_session
from mailstudy.live.jmap_sync import (
    imap_modseq,
    jmap_state,
    run_imap_changes,
    run_imap_idle,
    run_jmap_changes,
    run_jmap_poll,
    run_jmap_push,
)
from mailstudy.servers.base import DEFAULT_ACCOUNT
from mailstudy.servers.cyrus import CyrusServer

pytestmark = [pytest.mark.cyrus, pytest.mark.usefixtures("cyrus_usable")]

USER, PASSWORD = DEFAULT_ACCOUNT.user, DEFAULT_ACCOUNT.password
N, NEW = 20, 3


@pytest.fixture(scope="module")
def corpus():
    return generate(N, "buchner2009", seed=5)


@pytest.fixture(scope="module")
def extra():
    return generate(NEW + 2, "buchner2009", seed=55).raws()


@pytest.fixture(scope="module")
def known(corpus, extra):
    return Known(corpus.raws() + extra)


@pytest.fixture
def server(corpus):
    with CyrusServer(mailboxes={USER: corpus.raws()}, idled=True) as s:
        yield s


def dest(server, known) -> Destination:
    return Destination(server.host, server.imap_port, server.pop3_port, USER, PASSWORD, known)


def test_change_sync_finds_exactly_the_new_mail_on_both_protocols(server, known, extra):
    state, session = jmap_state(server.host, server.http_port, USER, PASSWORD)
    modseq, last_uid = imap_modseq(dest(server, known))
    assert last_uid == N and modseq > 0
    server.deliver_many(USER, extra[:NEW])
    jm, new_state = run_jmap_changes(server.host, server.http_port, USER, PASSWORD, state, known)
    im = run_imap_changes(dest(server, known), modseq, last_uid)
    assert jm.headers_fetched == im.headers_fetched == NEW and new_state != state
    # JMAP: discovery (redirect + session resource) and ONE request for the changes and the new emails
    assert [x.arguments for x in jm.exchanges][-1] == "/jmap/ Email/changes+Email/get+Email/get"
    assert jm.metrics["round_trips"] == 3
    # IMAP: CAPABILITY, LOGIN, SELECT (CONDSTORE), UID FETCH CHANGEDSINCE, UID FETCH headers, LOGOUT
    assert [x.command for x in im.exchanges] == ["CAPABILITY", "LOGIN", "SELECT", "UID FETCH", "UID FETCH", "LOGOUT"]
    assert "CHANGEDSINCE" in im.exchanges[3].arguments and im.metrics["round_trips"] == 6
    # nothing new since: a JMAP poll lists nothing and costs one request after discovery
    poll = run_jmap_poll(server.host, server.http_port, USER, PASSWORD, new_state, known)
    assert poll.headers_fetched == 0 and poll.metrics["round_trips"] == 3
    assert poll.metrics["bytes_down"] < jm.metrics["bytes_down"]
    # a client that kept the session resource polls in one round trip
    kept = run_jmap_poll(server.host, server.http_port, USER, PASSWORD, new_state, known, session=session)
    assert kept.metrics["round_trips"] == kept.metrics["commands"] == 1
    assert [x.arguments for x in kept.exchanges] == ["/jmap/ Email/changes+Email/get+Email/get"]


def test_change_sync_checks_what_it_lists(server, corpus, extra):
    state, _ = jmap_state(server.host, server.http_port, USER, PASSWORD)
    server.deliver_many(USER, extra[:1])
    with pytest.raises(IntegrityError, match="matches no delivered message"):
        run_jmap_changes(server.host, server.http_port, USER, PASSWORD, state, Known(corpus.raws()))


def test_a_bad_state_is_a_method_error_naming_the_method(server, known):
    from mailstudy.live.access import SessionError

    with pytest.raises(SessionError, match=r"^JMAP method Email/changes failed: (invalidArguments|cannotCalculateChanges)"):
        run_jmap_changes(server.host, server.http_port, USER, PASSWORD, "no-such-state", known)


def test_push_idle_hears_at_once_and_cyrus_eventsource_declines(server, known, extra):
    idle = run_imap_idle(dest(server, known), lambda: server.deliver(USER, extra[NEW]), wait_s=0.3)
    assert idle.offered and idle.latency_s is not None and idle.latency_s < 30  # idled: not imapidlepoll's 60 s
    assert idle.waiting_bytes_down == idle.waiting_bytes_up == 0  # an idle connection is silent
    assert [x.command for x in idle.result.exchanges] == ["CAPABILITY", "LOGIN", "SELECT", "IDLE", "LOGOUT"]
    push = run_jmap_push(server.host, server.http_port, USER, PASSWORD,
                         lambda: server.deliver(USER, extra[NEW + 1]), wait_s=0.3)
    # Debian's Cyrus 3.6.1 is built without wslay, so jmap_pushpoll stays 0 and the EventSource answers 204
    assert not push.offered and "204" in push.why and push.latency_s is None
    assert push.result.exchanges[-1].status_text.startswith("204")


def test_preview_reads_the_start_of_each_opened_text(server, corpus, known):
    r = run_jmap_session(server.host, server.http_port, USER, PASSWORD,
                         JmapSpec(preview=300, read_fraction=0.25, seed=5), known)
    opened = round(0.25 * N)
    assert r.integrity_ok and (r.headers_fetched, r.bodies_fetched) == (N, 0)
    assert [x.arguments for x in r.exchanges[3:]] == ["/jmap/ Email/get"] * opened
    assert r.metrics["opens"] == opened and r.metrics["round_trips"] == 3 + opened
    whole = run_jmap_session(server.host, server.http_port, USER, PASSWORD,
                             JmapSpec(read_fraction=0.25, seed=5), known)
    assert whole.metrics["bytes_down"] > r.metrics["bytes_down"]


def test_preview_of_another_mailbox_fails_the_check(server):
    other = Known(generate(N, "buchner2009", seed=99).raws())
    with pytest.raises(IntegrityError):
        run_jmap_session(server.host, server.http_port, USER, PASSWORD, JmapSpec(preview=100), other)


def test_first_text_is_decoded_with_lf():
    raw = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"caf=C3=A9\r\nline two\r\n")
    assert first_text(raw) == "caf\u00e9\nline two\n"


def test_preview_needs_header_first():
    with pytest.raises(ValueError, match="header-first"):
        JmapSpec(strategy="download-all", preview=10)
