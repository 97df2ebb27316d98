"""How both servers choose their loopback ports, against the real servers.

Why: a server picks two free ports and binds them a moment later; in between, another process or a client's
outgoing connection can take one. A CI run once failed because both ports came out the same. These tests take a
port away on purpose and check that the server picks again, while a port the user asked for is never swapped.
"""

from __future__ import annotations

import imaplib
import poplib
import socket

import pytest

from mailstudy.servers import base
from mailstudy.servers.base import PortInUseError, free_ports


def test_free_ports_are_distinct():
    # each socket stays bound until all are chosen, so the kernel cannot hand the same port out twice
    for _ in range(20):
        ports = free_ports(8)
        assert len(set(ports)) == 8


def test_ports_taken_after_they_were_chosen_are_chosen_again(start_server, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        real, calls = base.free_ports, []

        def first_pick_is_taken(n: int, host: str = base.HOST) -> list[int]:
            calls.append(n)
            ports = real(n, host)
            return [taken, ports[1]] if len(calls) == 1 else ports

        monkeypatch.setattr(base, "free_ports", first_pick_is_taken)
        server = start_server([])
        assert len(calls) == 2  # the first start failed on the taken port, the second pick worked
        assert taken not in (server.imap_port, server.pop3_port)
        assert server.imap_port != server.pop3_port
        with imaplib.IMAP4(server.host, server.imap_port, timeout=10) as c:
            assert c.login(server.account.user, server.account.password)[0] == "OK"
            c.logout()
        pop = poplib.POP3(server.host, server.pop3_port, timeout=10)
        assert pop.getwelcome().startswith(b"+OK")
        pop.quit()


def test_a_port_the_user_asked_for_is_not_swapped(server_kind, monkeypatch):
    from mailstudy.servers import make_server

    # past the early check (taken between the check and the server's bind): the server itself fails on it
    monkeypatch.setattr(base, "check_port_free", lambda port, host=base.HOST: None)
    real, calls = base.free_ports, []
    monkeypatch.setattr(base, "free_ports", lambda n, host=base.HOST: calls.append(n) or real(n, host))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = make_server(server_kind, pop3_port=port)
        with pytest.raises(PortInUseError, match=f"port.* {port}|{port}.*in use"):
            server.start()
        assert not server.running
        assert len(calls) == 1  # no second set of ports was tried


def test_a_chosen_port_is_never_the_one_the_user_asked_for(server_kind, monkeypatch):
    from mailstudy.servers import make_server

    with socket.socket() as s:  # a free port the user asks for POP3
        s.bind(("127.0.0.1", 0))
        asked = s.getsockname()[1]
    real = base.free_ports
    # the kernel may hand the just-released port out again: make it do so
    monkeypatch.setattr(base, "free_ports", lambda n, host=base.HOST: [asked] + real(n - 1, host))
    server = make_server(server_kind, pop3_port=asked)
    try:
        server.start()
        assert server.pop3_port == asked and server.imap_port != asked
    finally:
        server.stop()
