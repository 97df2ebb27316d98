"""How an IMAP client opens and leaves a session: its tags, when it asks CAPABILITY, how it logs in, the
housekeeping it sends before SELECT, how it selects INBOX and how it goes.

Why a module of its own: every real client does these differently, and on a sync with nothing new they are most
of what crosses the wire. Measured against Dovecot 2.3 (docs/calibration.md): NeoMutt tags ``a0000``, logs in
with ``AUTHENTICATE PLAIN`` and an initial response (SASL-IR, RFC 4959), asks ``CAPABILITY`` after, sends
``ENABLE UTF8=ACCEPT`` and ``LIST "" ""`` in one flight, ``SELECT "INBOX"``, and leaves with ``CLOSE`` and a
closed socket; mbsync tags ``1``, ``2``..., takes the capabilities from the greeting, sends ``NAMESPACE`` then
``LIST "" "*"``; offlineimap3 asks ``CAPABILITY``, ``ID``, ``AUTHENTICATE PLAIN`` with the response on its own
line, ``CAPABILITY`` again, two ``LIST``\\ s, ``SELECT`` then ``EXAMINE``. :class:`ImapStyle`'s defaults are
imaplib's own (``CAPABILITY`` at connect, ``LOGIN``, ``SELECT INBOX``, ``LOGOUT``), which the abstract strategies
keep; each client's values are in :mod:`mailstudy.live.client_profiles` with their sources.

Commands imaplib does not know (``ID``) or sends otherwise (``SELECT "INBOX"``) are written as the client writes
them, with imaplib's own tag and reply reader (``_new_tag``, ``_command_complete``: the same documented-private
routines :mod:`mailstudy.live.clients` pipelines with), so every reply is still read and checked.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

#: When the client asks CAPABILITY: at connect (imaplib), never (the greeting's ``[CAPABILITY ...]``), after
#: login (the greeting's before), or at connect and again after login.
CAPABILITY_WHEN = ("at-connect", "greeting", "after-login", "both")
#: How it logs in: ``LOGIN``; ``AUTHENTICATE PLAIN`` with the response after the server's ``+`` (empty
#: authorization identity); ``AUTHENTICATE PLAIN <response>`` (SASL-IR, authorization identity = the user) when the
#: server offers SASL-IR, else as ``plain``.
LOGINS = ("login", "plain", "plain-ir")
#: Commands of extensions a client sends only when the server offers them
EXTENSIONS = ("ENABLE", "NAMESPACE", "ID")


@dataclass(frozen=True)
class ImapStyle:
    """An IMAP client's opening and leaving (module docstring); the defaults are imaplib's."""

    tags: str = ""  # the first tag when not imaplib's: "a0000" (prefix "a", 4 digits, from 0) or "1"
    capability: str = "at-connect"  # one of CAPABILITY_WHEN
    client_id: str = ""  # ID's parameter list (RFC 2971), sent before login; "": no ID
    login: str = "login"  # one of LOGINS
    housekeeping: tuple[tuple[str, ...], ...] = ()  # after login, before SELECT: flights of whole commands
    select: tuple[str, ...] = ("SELECT INBOX",)  # the last one's EXISTS is the mailbox's size
    ending: tuple[str, ...] = ("LOGOUT",)  # without LOGOUT the socket is closed after the last

    def __post_init__(self) -> None:
        if self.capability not in CAPABILITY_WHEN:
            raise ValueError(f"capability must be one of {', '.join(CAPABILITY_WHEN)}, not {self.capability!r}")
        if self.login not in LOGINS:
            raise ValueError(f"login must be one of {', '.join(LOGINS)}, not {self.login!r}")
        if not self.select:
            raise ValueError("a session selects INBOX at least once")

    @property
    def greeting_caps(self) -> bool:
        """The capabilities at connect are the greeting's (no CAPABILITY command then)."""
        return self.capability in ("greeting", "after-login")

    def tag_form(self) -> tuple[str, int, int] | None:
        """``(prefix, digits, first number)`` of the tags, or None for imaplib's."""
        if not self.tags:
            return None
        m = re.fullmatch(r"(\D*)(\d+)", self.tags)
        if m is None:
            raise ValueError(f"tags must be a prefix and a number, like a0000 or 1, not {self.tags!r}")
        return m.group(1), len(m.group(2)), int(m.group(2))


def send_line(c, line: str) -> bytes:
    """Write one command ``line`` as the client writes it, under a new tag; the tag (read with ``finish``)."""
    tag = c._new_tag()
    c.send(tag + b" " + line.encode() + b"\r\n")
    return tag


def finish(c, line: str, tag: bytes) -> tuple[str, list]:
    """The tagged reply to ``line`` (its untagged responses gathered as imaplib gathers them); a ``BAD`` is
    returned as ``("BAD", [reason])`` so the replies after it are still read (a lost connection still raises)."""
    try:
        return c._command_complete(line.split(" ", 1)[0].upper(), tag)
    except c.abort:
        raise
    except c.error as exc:
        return "BAD", [str(exc).encode()]


def flight(c, lines: tuple[str, ...]) -> list[tuple[str, list]]:
    """Send ``lines`` together, then read each reply in order."""
    with c.one_write():
        tags = [send_line(c, line) for line in lines]
    return [finish(c, line, tag) for line, tag in zip(lines, tags)]


def one(c, line: str) -> tuple[str, list]:
    return flight(c, (line,))[0]


def log_in(c, style: ImapStyle, user: str, password: str) -> tuple[str, list]:
    """ID (if the client sends it), then the login as ``style`` says; imaplib's ``(typ, data)`` of the login."""
    if style.client_id and "ID" in c.capabilities:
        one(c, f"ID {style.client_id}")
    if style.login == "login":
        return c.login(user, password)
    if style.login == "plain-ir" and "SASL-IR" in c.capabilities:
        response = base64.b64encode(f"{user}\0{user}\0{password}".encode()).decode()
        typ, dat = one(c, f"AUTHENTICATE PLAIN {response}")
        if typ != "OK":
            raise c.error(f"AUTHENTICATE PLAIN refused: {dat!r:.200}")
        c.state = "AUTH"
        return typ, dat
    authzid = user if style.login == "plain-ir" else ""
    return c.authenticate("PLAIN", lambda _challenge: f"{authzid}\0{user}\0{password}".encode())


def after_login(c, style: ImapStyle, caps: set[str]) -> bytes | None:
    """CAPABILITY again where the client asks it, then the housekeeping flights; the capabilities it learned.

    A housekeeping command of an extension (ENABLE, NAMESPACE, ID) is sent only when ``caps`` (or the
    capabilities asked here) offer it, as the clients do (NeoMutt: ``adata->capabilities & IMAP_CAP_ENABLE``)."""
    asked = None
    if style.capability in ("after-login", "both"):
        typ, dat = c.capability()
        asked = dat[-1] if typ == "OK" and dat and dat[-1] else None
    offered = {x.upper() for x in asked.decode().split()} if asked else caps
    for lines in style.housekeeping:
        lines = tuple(line for line in lines if _offered(line, offered))
        if lines:
            flight(c, lines)  # a refusal is an answer: the client goes on
    return asked


def _offered(line: str, caps: set[str]) -> bool:
    verb = line.split(" ", 1)[0].upper()
    return verb not in EXTENSIONS or verb in caps


def select(c, style: ImapStyle, condstore: bool, qresync: tuple[int, int] | None = None) -> tuple[str, list]:
    """Each of the style's SELECT/EXAMINE commands (``(CONDSTORE)`` added to a SELECT when asked, or
    ``(QRESYNC (uidvalidity modseq))`` with ``qresync``, RFC 7162); the last one's ``(typ, EXISTS data)``."""
    typ, data = "NO", [None]
    for line in style.select:
        c.untagged_responses = {}
        if qresync is not None and line.upper().startswith("SELECT "):
            line += " (QRESYNC ({} {}))".format(*qresync)
        elif condstore and line.upper().startswith("SELECT "):
            line += " (CONDSTORE)"
        typ, data = one(c, line)
        if typ != "OK":
            c.state = "AUTH"
            return typ, data
        c.state = "SELECTED"
        c.is_readonly = line.upper().startswith("EXAMINE ")
        data = c.untagged_responses.get("EXISTS", [None])
    return typ, data


def leave(c, style: ImapStyle) -> None:
    """The style's last commands; LOGOUT as imaplib sends it (reading to the server's close), else the socket is
    closed after the others, as NeoMutt does after CLOSE."""
    for line in style.ending:
        if line.upper() == "LOGOUT":
            c.logout()
            return
        one(c, line)
        if line.upper() == "CLOSE":
            c.state = "AUTH"
    c.shutdown()


__all__ = ["CAPABILITY_WHEN", "LOGINS", "ImapStyle", "after_login", "flight", "leave", "log_in", "select"]
