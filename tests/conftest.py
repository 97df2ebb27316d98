"""Shared fixtures: real servers over real sockets, parametrized over the embedded server and Dovecot."""

from __future__ import annotations

import os

import pytest

from mailstudy.caches import keep_caches_in_project

keep_caches_in_project()  # the suite leaves nothing in ~ either (scapy, matplotlib, notebook kernels)

SERVER_KINDS = ["embedded", "dovecot"]


def dovecot_skip_reason() -> str | None:
    from mailstudy.servers.dovecot import dovecot_available

    why = dovecot_available()
    if why and os.environ.get("CI"):
        # CI installs Dovecot (.ci/run); a missing Dovecot there is a broken setup, not a reason to skip.
        pytest.fail(f"Dovecot must be usable in CI: {why}")
    return why


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request) -> str:
    if request.param == "dovecot":
        why = dovecot_skip_reason()
        if why:
            pytest.skip(f"Dovecot not usable here: {why}")
    return request.param


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
