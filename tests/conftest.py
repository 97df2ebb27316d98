"""Shared fixtures: real servers over real sockets, parametrized over the embedded server and Dovecot, and what a
test needs from the machine (tshark, Dovecot, peer captures: skipped with the reason, failed under CI; see
``tests/needs.py``)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

import needs
from mailstudy.caches import keep_caches_in_project

keep_caches_in_project()  # the suite leaves nothing in ~ either (scapy, matplotlib, notebook kernels)

# Under CI the property tests draw the same examples on every run (a fresh clone has no example database, so a
# rare input found once could not be found again); on a developer's machine they explore anew each time
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# the Dovecot case carries the ``dovecot`` marker, so ``-m "not dovecot"`` leaves it out
SERVER_KINDS = ["embedded", pytest.param("dovecot", marks=pytest.mark.dovecot)]
#: with Cyrus too (issue 20): for the tests that hold for every server (test_conformance), which opt in by
#: overriding ``server_kind`` with :func:`every_server_kind`
ALL_SERVER_KINDS = [*SERVER_KINDS, pytest.param("cyrus", marks=pytest.mark.cyrus)]


@pytest.fixture(scope="session")
def tshark() -> str:
    """The tshark binary (skip where missing; fail under CI)."""
    return needs.tshark()


@pytest.fixture(scope="session")
def tcpdump() -> str:
    """The tcpdump binary (skip where missing; fail under CI)."""
    return needs.program("tcpdump", "tcpdump")


@pytest.fixture(scope="session")
def dovecot_usable() -> None:
    """Dovecot can run here (skip where not; fail under CI)."""
    needs.dovecot()


@pytest.fixture(scope="session")
def cyrus_usable() -> None:
    """Cyrus can run here (skip where not; fail under CI)."""
    needs.cyrus()


@pytest.fixture(scope="session")
def peer_captures():
    """The folder of peer captures (skip where empty; fail under CI)."""
    return needs.peer_folder()


@pytest.fixture
def peer_capture():
    """``peer_capture(name)``: the path of a peer capture (skip where missing; fail under CI)."""
    return needs.peer


def every_server_kind(request) -> str:
    """The ``server_kind`` of a parametrized fixture, after skipping (failing under CI) where it cannot run."""
    if request.param == "dovecot":
        needs.dovecot()
    elif request.param == "cyrus":
        needs.cyrus()
    return request.param


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request) -> str:
    return every_server_kind(request)


@pytest.fixture
def start_server(server_kind):
    """A factory: ``start_server(raws, **kwargs)`` starts a server of this kind holding ``raws`` in INBOX."""
    from mailstudy.servers import make_server

    started = []

    def factory(raws: list[bytes], **kwargs):
        server = make_server(server_kind, **kwargs)
        server.mailboxes[server.account.user] = list(raws)
        server.start()
        started.append(server)
        return server

    yield factory
    for s in started:
        s.stop()
