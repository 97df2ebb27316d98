"""Mail servers on free loopback ports, each in its own process: ``embedded`` (pymap + our POP3), ``dovecot``
and ``cyrus`` (IMAP, POP3 and JMAP over one store).

Why the registry lives here: :mod:`mailstudy.servers.base` defines the interface and imports no concrete server;
this package knows them all by name.
"""

from __future__ import annotations

from mailstudy.servers.base import Account, MailServer, ServerError

#: The servers a study can name, in the order a user meets them.
SERVER_KINDS = ("embedded", "dovecot", "cyrus")


def make_server(kind: str, **kwargs) -> MailServer:
    """Build a server by name: ``embedded`` (default), ``dovecot`` or ``cyrus``."""
    if kind == "embedded":
        from mailstudy.servers.embedded import EmbeddedServer
        return EmbeddedServer(**kwargs)
    if kind == "dovecot":
        from mailstudy.servers.dovecot import DovecotServer
        return DovecotServer(**kwargs)
    if kind == "cyrus":
        from mailstudy.servers.cyrus import CyrusServer
        kwargs.pop("compress", None)  # Cyrus decides by itself (it offers COMPRESS when built with zlib)
        return CyrusServer(**kwargs)
    raise ValueError(f"unknown server {kind!r}; choose one of: {', '.join(SERVER_KINDS)}")


def available_servers() -> list[str]:
    """``embedded`` always; ``dovecot`` when its binaries are installed and usable here.

    Not ``cyrus`` (yet): the study's sweeps, claims and benches iterate over this list, and Cyrus's column
    (issue 20 item 4) is not built; ``make_server("cyrus")`` and ``cyrus_available()`` serve who asks for it."""
    from mailstudy.servers.dovecot import dovecot_available

    return ["embedded"] + (["dovecot"] if dovecot_available() is None else [])


__all__ = ["Account", "MailServer", "ServerError", "SERVER_KINDS", "make_server", "available_servers"]
