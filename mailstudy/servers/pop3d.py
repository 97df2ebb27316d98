"""A small asyncio POP3 server (RFC 1939 + RFC 2449) over pymap's in-memory dict backend.

Why: pymap serves IMAP only. The embedded server needs POP3 on the SAME store, so that one account is one
account on both protocols: a message deleted over POP3 is gone from IMAP, and RETR marks it \\Seen. This module
is that front-end; it runs in the same asyncio loop as pymap's IMAP server (see ``embedded_main``).

Rules, modelled on Dovecot's pop3 where RFC 1939 leaves a choice:

- States AUTHORIZATION -> TRANSACTION -> UPDATE. Commands are case-insensitive; unknown commands, bad arguments,
  commands in the wrong state and deleted or missing messages answer ``-ERR``. A failed login answers
  ``-ERR [AUTH] ...`` (RESP-CODES) after a short delay.
- At PASS the INBOX is snapshotted: messages 1..n in UID order; the list does not change during the session.
- Sizes (STAT, LIST, the RETR status line) are the message's bytes with CRLF line ends, before dot-stuffing and
  before the CRLF that is added when a message does not end with one (as Dovecot reports them).
- UIDL is ``%08x%08x`` of (UID, UIDVALIDITY): what Dovecot's default ``pop3_uidl_format = %08Xu%08Xv`` gives
  (Dovecot's ``%X`` is lower-case hex). Status texts copy Dovecot 2.3's, so byte counts stay comparable.
- DELE only marks; RSET unmarks; only QUIT in TRANSACTION expunges, from the shared pymap mailbox. A dropped
  connection deletes nothing.
- RETR marks the message \\Seen (TOP does not). Like Dovecot, flags are written when the session ends (QUIT or
  drop); the answer to QUIT leaves after the deletions and flags are in the store.
- PIPELINING: input is read in chunks and every complete command line in a chunk is answered in order; the
  answers to one chunk leave in one write (Dovecot corks its output the same way), flushed early when large.
- TLS (RFC 2595): with an ``ssl_context`` the server offers STLS in AUTHORIZATION on clear-text connections
  (listed in CAPA; ``+OK Begin TLS negotiation now.`` as Dovecot answers, then the handshake), and
  :meth:`Pop3Server.implicit` serves a port that is TLS from the first byte (POP3S), where STLS is not offered.
- Capabilities named in ``disabled`` (TOP, UIDL, USER, PIPELINING, RESP-CODES) are not listed in CAPA and their
  commands answer ``-ERR``. PIPELINING is only advertised or not; without RESP-CODES, no ``[AUTH]`` code.

The wire form of each message (CRLF-normalised, dot-stuffed) is computed once per message content, on first use
or ahead of time with :meth:`Pop3Server.warm` (the embedded server warms its initial messages before it is
ready, so no measured session pays for them), and cached weakly by pymap's ``MessageContent`` object (it reads
pymap's private ``Message._content``: the dict backend has no public raw-bytes accessor that avoids a per-fetch
copy).
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from pymap.backend.dict import Login
from pymap.backend.dict.mailbox import MailboxData, Message
from pymap.exceptions import ResponseError
from pymap.flags import FlagOp
from pymap.parsing.specials.flag import Seen
from pysasl.creds.plain import PlainCredentials

from mailstudy.corpus.sections import header_end, pop3_form

__all__ = ["Pop3Server", "POP3_CAPABILITIES", "WireMessage", "wire_form"]

_log = logging.getLogger(__name__)

#: Capabilities this server can advertise, in CAPA order. IMPLEMENTATION is always listed.
POP3_CAPABILITIES = ("TOP", "UIDL", "RESP-CODES", "PIPELINING", "USER")

MAX_LINE = 4096          # RFC 2449 allows 255 octets per command line; be generous, never unbounded
FLUSH_AT = 256 * 1024    # write pending answers once this many bytes are queued
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass
class WireMessage:
    """One message as POP3 sends it: ``data`` has CRLF line ends; ``stuffed`` is ``data`` dot-stuffed with a
    final CRLF guaranteed, ready to be followed by ``.\\r\\n``; ``size`` is ``len(data)``."""

    data: bytes
    size: int
    _stuffed: bytes | None = None
    _header_end: int | None = None

    @property
    def stuffed(self) -> bytes:
        if self._stuffed is None:
            s = self.data
            if s.startswith(b".") or b"\r\n." in s:
                s = (b"." if s.startswith(b".") else b"") + s.replace(b"\r\n.", b"\r\n..")
            self._stuffed = pop3_form(s)
        return self._stuffed

    @property
    def header_end(self) -> int:
        """Offset just past the blank line ending the header (or the end of data if there is none)."""
        if self._header_end is None:
            self._header_end = header_end(self.data)
        return self._header_end

    def top(self, lines: int) -> bytes:
        """Header, blank line and the first ``lines`` body lines, dot-stuffed, ending with CRLF."""
        d = self.data
        end = self.header_end
        for _ in range(lines):
            if end >= len(d):
                break
            i = d.find(b"\r\n", end)
            end = len(d) if i < 0 else i + 2
        part = d[:end]
        if part.startswith(b"."):
            part = b"." + part
        return pop3_form(part.replace(b"\r\n.", b"\r\n.."))


def wire_form(raw: bytes) -> WireMessage:
    """The POP3 wire form of raw message bytes (bare LF become CRLF)."""
    if raw.count(b"\n") != raw.count(b"\r\n"):
        raw = _BARE_LF.sub(b"\r\n", raw)
    return WireMessage(raw, len(raw))


def _raw_bytes(msg: Message) -> bytes:
    content = msg._content  # pymap private: see module docstring
    if content is None:
        return b""
    view = content._raw
    obj = view.obj
    if isinstance(obj, bytes) and view.nbytes == len(obj):
        return obj  # the whole original literal: no copy
    return bytes(view)


class _Session:
    """One POP3 connection: its state, its snapshot and its marks."""

    def __init__(self, server: Pop3Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.out: list[bytes] = []
        self.out_len = 0
        self.user: str | None = None
        self.stack = AsyncExitStack()
        self.mailbox: MailboxData | None = None
        self.msgs: list[Message] = []
        self.sizes: list[int] = []
        self.deleted: set[int] = set()   # 0-based indexes
        self.seen: set[int] = set()
        self.done = False
        self.tls = False  # the connection is TLS (implicit, or after STLS)

    # -- output --------------------------------------------------------------------------------------------
    def send(self, *parts: bytes) -> None:
        for p in parts:
            self.out.append(p)
            self.out_len += len(p)

    async def flush(self) -> None:
        if self.out:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out.clear()
            self.out_len = 0
            self.writer.write(data)
            await self.writer.drain()

    # -- main loop -----------------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            self.send(b"+OK " + self.server.greeting + b"\r\n")
            await self.flush()
            buf = b""
            while not self.done:
                chunk = await self.reader.read(65536)
                if not chunk:
                    break
                buf += chunk
                pos = 0
                while not self.done:
                    nl = buf.find(b"\n", pos)
                    if nl < 0:
                        break
                    line = buf[pos:nl]
                    pos = nl + 1
                    if len(line) > MAX_LINE:
                        self.send(b"-ERR Input line too long.\r\n")
                        self.done = True
                        break
                    try:
                        await self.command(line.rstrip(b"\r"))
                    except (ConnectionError, asyncio.CancelledError):
                        raise
                    except Exception:
                        _log.exception("POP3 command failed: %r", line[:40])
                        self.send(b"-ERR Internal error.\r\n")
                    if self.out_len >= FLUSH_AT:
                        await self.flush()
                buf = buf[pos:]
                if len(buf) > MAX_LINE and not self.done:
                    self.send(b"-ERR Input line too long.\r\n")
                    self.done = True
                await self.flush()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.finish()

    async def update(self, expunge: bool) -> bool:
        """Write the session's effects to the shared mailbox: \\Seen for retrieved messages and, when
        ``expunge`` (QUIT in TRANSACTION: the UPDATE state), remove the messages marked deleted. Runs once."""
        mbx, self.mailbox = self.mailbox, None
        if mbx is None:
            return True
        try:
            deleted = self.deleted if expunge else set()
            for i in sorted(self.seen - deleted):
                msg = self.msgs[i]
                if Seen not in msg.permanent_flags:
                    await mbx.update(msg.uid, msg, frozenset({Seen}), FlagOp.ADD)
            if deleted:
                await mbx.delete([self.msgs[i].uid for i in sorted(deleted)])
        except Exception:  # never let one client's exit take the server down
            _log.exception("POP3 update failed for %s", self.user)
            return False
        return True

    async def finish(self) -> None:
        try:
            await self.update(expunge=False)   # a dropped connection deletes nothing
        finally:
            await self.stack.aclose()
            self.writer.close()

    # -- dispatch ------------------------------------------------------------------------------------------
    async def command(self, line: bytes) -> None:
        word, _, arg = line.partition(b" ")
        name = word.upper().decode("ascii", "replace")
        disabled = self.server.disabled
        if name in ("TOP", "UIDL", "USER") and name in disabled:
            self.send(b"-ERR Unknown command.\r\n" if self.mailbox is None
                      else b"-ERR Unknown command: " + name.encode() + b"\r\n")
            return
        if self.mailbox is None:
            handler = _AUTH_COMMANDS.get(name)
        else:
            handler = _TRANS_COMMANDS.get(name)
        if handler is None:  # unknown, or not allowed in this state: Dovecot's answers
            if self.mailbox is None:
                self.send(b"-ERR Unknown command.\r\n")
            else:
                self.send(b"-ERR Unknown command: " + word.upper()[:40] + b"\r\n")
            return
        await handler(self, arg)

    # -- AUTHORIZATION ---------------------------------------------------------------------------------------
    async def cmd_user(self, arg: bytes) -> None:
        if not arg.strip():
            self.send(b"-ERR No username given.\r\n")
            return
        self.user = arg.strip().decode("utf-8", "surrogateescape")
        self.send(b"+OK\r\n")

    async def cmd_pass(self, arg: bytes) -> None:
        if self.user is None:
            self.send(b"-ERR No username given.\r\n")
            return
        user, self.user = self.user, None
        password = arg.decode("utf-8", "surrogateescape")
        mbx = await self.server.login_inbox(user, password, self.stack)
        if mbx is None:
            await asyncio.sleep(self.server.fail_delay)
            code = b"" if "RESP-CODES" in self.server.disabled else b"[AUTH] "
            self.send(b"-ERR " + code + b"Authentication failed.\r\n")
            return
        self.user = user
        msgs = [m async for m in mbx.messages()]
        msgs.sort(key=lambda m: m.uid)
        self.msgs = msgs
        wire = self.server.wire
        self.sizes = [wire(m).size for m in msgs]
        self.mailbox = mbx
        self.send(b"+OK Logged in.\r\n")

    async def cmd_quit(self, arg: bytes) -> None:
        self.done = True
        if self.mailbox is None:
            self.send(b"+OK Logging out.\r\n")
        elif await self.update(expunge=True):
            self.send(b"+OK Logging out.\r\n" if not self.deleted else b"+OK Logging out, messages deleted.\r\n")
        else:
            self.send(b"-ERR Some deleted messages were not removed.\r\n")

    async def cmd_stls(self, arg: bytes) -> None:
        """RFC 2595 4: STLS in AUTHORIZATION, answered ``+OK``, then the TLS handshake; the session starts over
        (the client asks CAPA again). Offered only when the server has TLS and the connection is not TLS yet."""
        if not self.stls_offered:
            self.send(b"-ERR Unknown command.\r\n" if self.mailbox is None
                      else b"-ERR Unknown command: STLS\r\n")
            return
        self.send(b"+OK Begin TLS negotiation now.\r\n")
        await self.flush()
        self.tls = True
        await self.writer.start_tls(self.server.ssl_context)

    @property
    def stls_offered(self) -> bool:
        return self.server.ssl_context is not None and not self.tls and self.mailbox is None

    async def cmd_capa(self, arg: bytes) -> None:
        caps = [c for c in POP3_CAPABILITIES if c not in self.server.disabled]
        if self.stls_offered:
            caps.append("STLS")
        caps.append("IMPLEMENTATION " + self.server.implementation)
        self.send(b"+OK\r\n" + "".join(c + "\r\n" for c in caps).encode("ascii") + b".\r\n")

    # -- TRANSACTION -----------------------------------------------------------------------------------------
    def _msg_index(self, token: bytes) -> int | None:
        """0-based index of a live message named by ``token``, or None after queuing the -ERR answer."""
        if not token.isdigit() or len(token) > 10:
            self.send(b"-ERR Invalid message number: " + token[:20] + b"\r\n")
            return None
        n = int(token)
        if n < 1 or n > len(self.msgs):
            self.send(b"-ERR There's no message %d.\r\n" % n)
            return None
        if n - 1 in self.deleted:
            self.send(b"-ERR Message is deleted.\r\n")
            return None
        return n - 1

    def _args(self, arg: bytes, lo: int, hi: int) -> list[bytes] | None:
        args = arg.split()
        if not lo <= len(args) <= hi:
            self.send(b"-ERR Invalid message number: " + arg.strip()[:20] + b"\r\n" if len(args) < lo
                      else b"-ERR Too many arguments.\r\n")
            return None
        return args

    async def cmd_stat(self, arg: bytes) -> None:
        if arg.strip():
            self.send(b"-ERR Invalid arguments.\r\n")
            return
        live = [s for i, s in enumerate(self.sizes) if i not in self.deleted] if self.deleted else self.sizes
        self.send(b"+OK %d %d\r\n" % (len(live), sum(live)))

    def _listing(self, arg: bytes, entry: Callable[[int], bytes], head: bytes) -> None:
        """LIST and UIDL: ``+OK`` and one message's entry, or ``head`` and the entry of every message not deleted."""
        args = self._args(arg, 0, 1)
        if args is None:
            return
        if args:
            i = self._msg_index(args[0])
            if i is not None:
                self.send(b"+OK " + entry(i))
            return
        deleted = self.deleted
        self.send(head, b"".join(entry(i) for i in range(len(self.msgs)) if i not in deleted), b".\r\n")

    async def cmd_list(self, arg: bytes) -> None:
        sizes = self.sizes
        self._listing(arg, lambda i: b"%d %d\r\n" % (i + 1, sizes[i]),
                      b"+OK %d messages:\r\n" % (len(sizes) - len(self.deleted)))

    def _uidl(self, i: int) -> bytes:
        assert self.mailbox is not None
        return b"%08x%08x" % (self.msgs[i].uid, self.mailbox.uid_validity)

    async def cmd_uidl(self, arg: bytes) -> None:
        self._listing(arg, lambda i: b"%d %s\r\n" % (i + 1, self._uidl(i)), b"+OK\r\n")

    async def cmd_retr(self, arg: bytes) -> None:
        args = self._args(arg, 1, 1)
        if args is None:
            return
        i = self._msg_index(args[0])
        if i is None:
            return
        w = self.server.wire(self.msgs[i])
        self.seen.add(i)
        self.send(b"+OK %d octets\r\n" % w.size, w.stuffed, b".\r\n")

    async def cmd_top(self, arg: bytes) -> None:
        args = self._args(arg, 2, 2)
        if args is None:
            return
        if not args[1].isdigit():
            self.send(b"-ERR Invalid number of lines: " + args[1][:20] + b"\r\n")
            return
        i = self._msg_index(args[0])
        if i is None:
            return
        w = self.server.wire(self.msgs[i])
        self.send(b"+OK\r\n", w.top(int(args[1])), b".\r\n")

    async def cmd_dele(self, arg: bytes) -> None:
        args = self._args(arg, 1, 1)
        if args is None:
            return
        i = self._msg_index(args[0])
        if i is not None:
            self.deleted.add(i)
            self.send(b"+OK Marked to be deleted.\r\n")

    async def cmd_rset(self, arg: bytes) -> None:
        self.deleted.clear()
        self.send(b"+OK\r\n")

    async def cmd_noop(self, arg: bytes) -> None:
        self.send(b"+OK\r\n")


_AUTH_COMMANDS = {"USER": _Session.cmd_user, "PASS": _Session.cmd_pass, "QUIT": _Session.cmd_quit,
                  "CAPA": _Session.cmd_capa, "STLS": _Session.cmd_stls}
_TRANS_COMMANDS = {"STAT": _Session.cmd_stat, "LIST": _Session.cmd_list, "UIDL": _Session.cmd_uidl,
                   "RETR": _Session.cmd_retr, "TOP": _Session.cmd_top, "DELE": _Session.cmd_dele,
                   "RSET": _Session.cmd_rset, "NOOP": _Session.cmd_noop, "QUIT": _Session.cmd_quit,
                   "CAPA": _Session.cmd_capa}


class Pop3Server:
    """POP3 over the INBOX of pymap dict-backend users. Use as ``asyncio.start_server(Pop3Server(login), ...)``.

    ``disabled`` names capabilities to switch off (see module docstring); ``fail_delay`` is the pause before a
    failed login is answered.
    """

    def __init__(self, login: Login, *, disabled: frozenset[str] = frozenset(),
                 implementation: str = "mailstudy-embedded", greeting: bytes = b"mailstudy-embedded POP3 ready.",
                 fail_delay: float = 0.05, ssl_context=None) -> None:
        self.login = login
        self.ssl_context = ssl_context  # STLS is offered (on clear-text connections) when there is one
        self.disabled = frozenset(c.upper() for c in disabled)
        self.implementation = implementation
        self.greeting = greeting
        self.fail_delay = fail_delay
        self._wire: weakref.WeakKeyDictionary[object, WireMessage] = weakref.WeakKeyDictionary()

    def wire(self, msg: Message) -> WireMessage:
        """The cached wire form of ``msg`` (computed on first use, shared by all sessions)."""
        content = msg._content
        if content is None:
            return wire_form(b"")
        w = self._wire.get(content)
        if w is None:
            w = self._wire[content] = wire_form(_raw_bytes(msg))
        return w

    def warm(self, msgs: list[Message]) -> None:
        """Compute the wire forms of ``msgs`` now (at start), so that no session pays for them."""
        for msg in msgs:
            w = self.wire(msg)
            w.stuffed
            w.header_end

    async def login_inbox(self, user: str, password: str, stack: AsyncExitStack) -> MailboxData | None:
        """The INBOX of ``user`` if ``password`` is right, else None. The pymap session lives on ``stack``."""
        creds = PlainCredentials(user, password)
        try:
            identity = await self.login.authenticate(creds)
            authorized = await self.login.authorize(identity, creds.authzid)
            session = await stack.enter_async_context(authorized.new_session())
        except ResponseError:
            return None
        return await session.mailbox_set.get_mailbox("INBOX")

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Session(self, reader, writer).run()

    async def implicit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A connection on the implicit-TLS port (POP3S): already TLS, so no STLS."""
        session = _Session(self, reader, writer)
        session.tls = True
        await session.run()
