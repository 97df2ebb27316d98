"""Process entry point of the embedded server: pymap IMAP + our POP3 in one asyncio loop over one store.

Why: the embedded server must run in its own process (an in-process server shares the GIL with the client and
distorts timings). ``EmbeddedServer`` starts ``python -m mailstudy.servers.embedded_main SPEC`` where SPEC is a
pickle written by the parent (accounts, initial INBOX messages, ports, disabled capabilities). This process:

1. builds pymap's dict backend with those users (hashed passwords, no demo data) and appends each user's
   messages to INBOX in list order (UIDs 1..n in that order, as Dovecot numbers them), before any listener
   exists;
2. binds IMAP and POP3 on 127.0.0.1, then prints ``READY <imap_port> <pop3_port>`` on stdout;
3. runs until SIGTERM/SIGINT, or until its stdin reaches EOF (the parent died or closed it): no orphans.

Any start failure is one line on stderr and exit status 2.

Speed (issue 2: within 2x of Dovecot), without touching pymap's files, by replacing pieces from here:

- Lazy MIME parsing: at start only each message's header is parsed (what APPEND needs: thread keys, size); the
  body's MIME structure is parsed the first time something asks for it (BODYSTRUCTURE, BODY[1], SEARCH TEXT).
  Start-up drops from ~4 s to ~0.5 s for 80 MB. pymap's own parser does the work, so results are the same;
  messages whose header runs to the end (pymap's edge cases) are parsed in full at once.
- Batched writes: pymap writes each FETCH response as many small ``writer.write`` calls, each a ``send()`` on an
  idle socket, and renders every response a second time just for its debug log. Here the pieces of a response
  are gathered and written in chunks of ``WRITE_CHUNK`` bytes with flow control (``drain``) between chunks.
- A fast FETCH renderer for the common items (UID, FLAGS, RFC822.SIZE, whole-message and whole-header
  BODY[]/BODY.PEEK[]/RFC822/RFC822.HEADER): the literal goes out as a view of the stored bytes (no copies) and
  FLAGS renderings are cached per flag set. Anything else, and any FETCH response merged with an update, takes
  pymap's own path (FETCH responses still merge with flag updates as pymap merges them). The bytes are the
  same either way: the conformance tests compare them with Dovecot's, and the fast path was checked against
  pymap's own path byte for byte over many FETCH forms (partial, MIME parts, BINARY, merges, APPEND, EXPUNGE).
- POP3 wire forms of the initial messages are computed before READY, so the first session pays nothing extra.
- ``MAILSTUDY_EMBEDDED_PROFILE=FILE`` writes a cProfile of the whole child run to FILE (for speed work).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import pickle
import signal
import sys
import time
import threading
from argparse import Namespace
from contextlib import AsyncExitStack, closing
from datetime import datetime, timezone

from pymap import fetch as _fetch
from pymap.__about__ import __version__ as PYMAP_VERSION
from pymap.backend.dict import Config, DictBackend, Login
from pymap.backend.dict import mailbox as _dict_mailbox
from pymap.backend.dict.filter import FilterSet
from pymap.backend.dict.mailbox import MailboxSet
from pymap.context import connection_exit
from pymap.imap import IMAPConnection, IMAPServer
from pymap.imap.state import ConnectionState
from pymap.mime import MessageContent, MessageHeader
from pymap.parsing.message import AppendMessage
from pymap.parsing.primitives import List
from pymap.parsing.response import CommandResponse, Response, ResponseCode, ResponseOk
from pymap.parsing.response.specials import FetchResponse
from pymap.user import Passwords, UserMetadata
from proxyprotocol.reader import ProxyProtocolReader
from pysasl.hashing import BuiltinHash

from .embedded import EMBEDDED_VERSION
from .pop3d import Pop3Server

_imap_log = logging.getLogger("pymap.imap")

#: Password hash for the in-memory users. pymap's default (PBKDF2, 500,000 rounds) costs ~0.3 s per login,
#: which would dominate every session's timing; 1,000 rounds keeps a real hash at well under a millisecond.
HASH_ROUNDS = 1000
#: Pause before answering a failed login (IMAP unknown user, POP3 any failure): small but present.
FAIL_DELAY = 0.05

#: A response is handed to the socket in pieces of about this size, with flow control between them.
WRITE_CHUNK = 256 * 1024
_WS = b" \t\n\r\x0b\f"  # pymap.mime._util.whitespace: a header line made only of these ends the header


# -- lazy MIME parsing -------------------------------------------------------------------------------------------
_BODY_SLOT = MessageContent.__dict__["body"]    # pymap's slot descriptors, filled on first use
_LINES_SLOT = MessageContent.__dict__["lines"]


def _header_lines(data: bytes) -> list[tuple[int, int, int]] | None:
    """The header's ``(start, end, next)`` lines exactly as pymap's ``_find_lines`` + ``_split_lines`` give them,
    or None when the message needs pymap's full parse (no blank line before the last line: pymap's edge cases)."""
    lines = []
    start = 0
    while True:
        idx = data.find(b"\n", start)
        if idx < 0:
            return None
        nxt = idx + 1
        if idx > start and data[idx - 1] == 0x0D:
            idx -= 1
        lines.append((start, idx, nxt))
        if not data[start:idx].strip(_WS):
            return lines
        start = nxt


class LazyMessageContent(MessageContent):
    """A :class:`MessageContent` whose header is parsed now and whose body (MIME structure, line count) is parsed
    by pymap the first time it is asked for. The raw bytes, the header and its length are what pymap's parse
    gives: only messages with a blank line and at least one line after it take this path."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes, header: MessageHeader) -> None:  # not super().__init__: it would parse
        self._data = data
        self._raw = memoryview(data)
        self.header = header  # type: ignore[misc]

    def _load(self) -> None:
        full = MessageContent.parse(self._data)
        _BODY_SLOT.__set__(self, full.body)
        _LINES_SLOT.__set__(self, full.lines)

    @property  # type: ignore[override]
    def body(self):
        try:
            return _BODY_SLOT.__get__(self, MessageContent)
        except AttributeError:
            self._load()
            return _BODY_SLOT.__get__(self, MessageContent)

    @property  # type: ignore[override]
    def lines(self) -> int:
        try:
            return _LINES_SLOT.__get__(self, MessageContent)
        except AttributeError:
            self._load()
            return _LINES_SLOT.__get__(self, MessageContent)


def parse_lazily(data: bytes) -> MessageContent:
    """``MessageContent.parse(data)``, deferring the body's parse when that cannot change any result."""
    data = bytes(data)
    lines = _header_lines(data)
    if lines is None:
        return MessageContent.parse(data)
    return LazyMessageContent(data, MessageHeader._parse(data, memoryview(data), lines))


class _LazyParser:
    """Stands in for ``MessageContent`` where pymap's dict backend parses appended messages."""

    parse = staticmethod(parse_lazily)


def use_lazy_parsing() -> None:
    """Make the dict backend's APPEND (at start and over IMAP) parse lazily."""
    _dict_mailbox.MessageContent = _LazyParser  # type: ignore[misc,assignment]


# -- fast FETCH rendering --------------------------------------------------------------------------------------
_FLAGS_CACHE: dict[frozenset, bytes] = {}


def _flags_bytes(flags: frozenset) -> bytes:
    out = _FLAGS_CACHE.get(flags)
    if out is None:
        if len(_FLAGS_CACHE) > 4096:
            _FLAGS_CACHE.clear()
        out = _FLAGS_CACHE[flags] = bytes(List(flags, sort=True))
    return out


def fetch_plan(attributes) -> list[tuple[str, bytes]] | None:
    """How :class:`FastFetchResponse` renders a FETCH command's items: ``(kind, name)`` for each item
    pymap would send (duplicates folded as pymap folds them), or None when some item needs pymap's renderer."""
    plan = []
    for attr in {attr: attr for attr in attributes}.values():
        value = attr.value
        name = bytes(attr.for_response)
        cls = _fetch.MessageAttributes._simple_attrs.get(value) or _fetch.MessageAttributes._loaded_attrs.get(value)
        if cls is _fetch._UidFetchValue:
            plan.append(("uid", name))
        elif cls is _fetch._FlagsFetchValue:
            plan.append(("flags", name))
        elif cls is _fetch._RFC822SizeFetchValue:
            plan.append(("size", name))
        elif cls is not None and issubclass(cls, _fetch._BodyFetchValue):
            section = attr.section
            if section is None or attr.partial is not None or section.parts or section.headers:
                return None
            if section.specifier is None:
                plan.append(("body", name))
            elif section.specifier == b"HEADER":
                plan.append(("header", name))
            else:
                return None
        else:
            return None
    return plan


class FastFetchResponse(FetchResponse):
    """pymap's FETCH response for one message, written from a :func:`fetch_plan` without per-item objects and
    without copying the message. pymap's item objects (``data``) and load hook are made only if pymap asks for
    them: when an update for the same message is merged in, pymap's plain :class:`FetchResponse` results."""

    def __init__(self, seq: int, message, selected, attributes, plan) -> None:
        Response.__init__(self, b"*")  # not FetchResponse.__init__: that builds the item objects
        self.seq = seq
        self._message = message
        self._selected = selected
        self._attributes = attributes
        self._plan = plan
        self._data: dict | None = None
        self._hook = None

    def _build(self) -> None:
        attrs = _fetch.MessageAttributes(self._message, self._selected, self._attributes)
        self._data = {value.attribute: value for value in attrs}
        self._hook = attrs.load_hook()

    @property  # type: ignore[override]
    def data(self) -> dict:
        if self._data is None:
            self._build()
        return self._data

    @property  # type: ignore[override]
    def writing_hook(self):
        if self._data is None:
            self._build()
        return self._hook

    async def async_write(self, writer) -> None:
        msg = self._message
        content = msg._content
        if content is None:  # no content: pymap writes its empty values
            await super().async_write(writer)
            return
        out = writer.write
        sep = b"* %d FETCH (" % self.seq
        for kind, name in self._plan:
            if kind == "uid":
                out(b"%b%b %d" % (sep, name, msg.uid))
            elif kind == "flags":
                out(sep + name + b" " + _flags_bytes(msg.get_flags(self._selected.session_flags)))
            elif kind == "size":
                out(b"%b%b %d" % (sep, name, len(content)))
            else:
                raw = content._raw if kind == "body" else content.header._raw
                out(b"%b%b {%d}\r\n" % (sep, name, len(raw)))
                out(raw)
            sep = b" "
        out(b")\r\n" if self._plan else sep + b")\r\n")


class _FetchOk(ResponseOk):
    """The tagged OK of a FETCH, merging later untagged responses (flag updates) into a
    :class:`FastFetchResponse` exactly as pymap merges them into its own :class:`FetchResponse`."""

    def add_untagged(self, *responses) -> None:
        for resp in responses:
            try:
                merge_key = resp.merge_key
            except TypeError:
                self._untagged.append(resp)
                continue
            kind = FetchResponse if isinstance(resp, FetchResponse) else type(resp)
            key = (kind, merge_key)
            idx = self._mergeable.get(key)
            if idx is None:
                self._mergeable[key] = len(self._untagged)
                self._untagged.append(resp)
            else:
                self._untagged[idx] = self._untagged[idx].merge(resp)
        self._raw = None


class FastConnectionState(ConnectionState):
    """pymap's connection state with FETCH answered by :class:`FastFetchResponse` (same logic otherwise)."""

    async def do_fetch(self, cmd):
        if not cmd.uid:
            self.selected.hide_expunged = True
        set_seen = not self.selected.readonly and any(attr.set_seen for attr in cmd.attributes)
        messages, updates = await self.session.fetch_messages(self.selected, cmd.sequence_set, set_seen)
        resp = _FetchOk(cmd.tag, cmd.command + b" completed.")
        plan = fetch_plan(cmd.attributes)
        selected, attributes = self.selected, cmd.attributes
        for msg_seq, msg in messages:
            if msg.expunged:
                resp.code = ResponseCode.of(b"EXPUNGEISSUED")
            if plan is None or getattr(msg, "_content", None) is None:
                msg_attrs = _fetch.MessageAttributes(msg, selected, attributes)
                resp.add_untagged(FetchResponse(msg_seq, msg_attrs, writing_hook=msg_attrs.load_hook()))
            else:
                resp.add_untagged(FastFetchResponse(msg_seq, msg, selected, attributes, plan))
        return resp, updates


class _Pieces:
    """A write stream that keeps the pieces it is given (bytes or memoryviews) until they are taken."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list = []
        self.size = 0

    def write(self, data) -> None:
        self.parts.append(data)
        self.size += len(data)

    def take(self) -> bytes:
        parts = self.parts
        data = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)
        self.parts = []
        self.size = 0
        return data


class BatchedIMAPConnection(IMAPConnection):
    """pymap's connection, writing each response in a few large chunks instead of many small ``send()`` calls,
    and rendering it for the debug log only when debug logging is on."""

    __slots__ = ()

    async def _write_chunked(self, resp: Response) -> None:
        writer = self.writer
        out = _Pieces()
        if isinstance(resp, CommandResponse) and type(resp).async_write is CommandResponse.async_write:
            for untagged in resp._untagged:
                await untagged.async_write(out)
                if out.size >= WRITE_CHUNK:
                    writer.write(out.take())
                    await writer.drain()
            Response.write(resp, out)  # what CommandResponse.async_write ends with: the tagged line
        else:
            await resp.async_write(out)
        if out.parts:
            writer.write(out.take())
        await writer.drain()

    async def write_response(self, resp: Response) -> None:
        try:
            await self._write_chunked(resp)
        except ConnectionError:
            pass
        else:
            if _imap_log.isEnabledFor(logging.DEBUG):
                self._print("%s <--| %s", bytes(resp))


class FastIMAPServer(IMAPServer):
    """:class:`IMAPServer` that runs :class:`BatchedIMAPConnection` with :class:`FastConnectionState`."""

    __slots__ = ()

    async def __call__(self, reader, writer, sock_info) -> None:
        conn = BatchedIMAPConnection(self.commands, self._config, reader, writer, sock_info)
        state = FastConnectionState(self._login, self._config)
        async with AsyncExitStack() as stack:
            connection_exit.set(stack)
            stack.enter_context(closing(conn))
            await conn.run(state)


async def start_imap(backend: DictBackend, config: EmbeddedConfig, stack: AsyncExitStack) -> None:
    """Listen for IMAP as ``IMAPService.start`` does, with :class:`FastIMAPServer`."""
    callback = ProxyProtocolReader(config.proxy_protocol).get_callback(FastIMAPServer(backend.login, config))
    server = await asyncio.start_server(callback, host=config.host, port=config.port)
    await stack.enter_async_context(server)
    task = asyncio.create_task(server.serve_forever())
    stack.callback(task.cancel)


class EmbeddedConfig(Config):
    """pymap's dict-backend config with a fixed greeting (the default calls ``socket.getfqdn()``)."""

    @property
    def greeting(self) -> bytes:
        return b"mailstudy-embedded IMAP ready (pymap " + PYMAP_VERSION.encode() + b")"


def _args(host: str, port: int) -> Namespace:
    return Namespace(host=host, port=port, debug=False, cert=None, key=None, tls=False, passlib_cfg=None,
                     proxy_protocol=None, inherited_sockets=None, demo_data=False, demo_user="",
                     demo_password="")


async def build(spec: dict) -> tuple[DictBackend, EmbeddedConfig]:
    """The backend and config with users and INBOX contents from ``spec``, not yet listening."""
    host = spec["host"]
    disabled = frozenset(spec.get("disabled", ()))
    config = EmbeddedConfig(_args(host, spec["imap_port"]), demo_data=False, demo_user="", demo_password="",
                            host=host, port=spec["imap_port"], tls_enabled=False, invalid_user_sleep=FAIL_DELAY,
                            hash_context=BuiltinHash(rounds=HASH_ROUNDS),
                            disable_idle="IDLE" in disabled)
    config.apply_context()
    use_lazy_parsing()
    login = Login(config)
    passwords = Passwords(config)
    when = datetime.now(timezone.utc)
    for user, password in spec["accounts"]:
        hashed = await passwords.hash_password(password)
        login.users_dict[user] = UserMetadata(config, user, password=hashed)
        mailbox_set, filter_set = MailboxSet(), FilterSet()
        config.set_cache[user] = (mailbox_set, filter_set)
        inbox = await mailbox_set.get_mailbox("INBOX")
        inbox._max_uid = 0  # pymap starts UIDs at 101; Dovecot at 1. Same UIDs -> same bytes on the wire.
        # pymap's UIDVALIDITY mixes time and chance and so varies in digit count (bytes on the wire) from run to
        # run; Dovecot uses the mailbox's creation time, which has 10 digits. Do as Dovecot does.
        inbox._uid_validity = int(time.time())
        for raw in spec["mailboxes"].get(user, ()):
            await inbox.append(AppendMessage(raw, when, frozenset()), recent=True)
    return DictBackend(login, config), config


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(stop.set)


async def serve(spec: dict, ready_out=None) -> None:
    """Build, listen, announce readiness, run until told to stop."""
    backend, config = await build(spec)
    disabled = frozenset(spec.get("disabled", ()))
    pop3 = Pop3Server(backend.login, disabled=disabled, fail_delay=FAIL_DELAY,
                      implementation=f"mailstudy-embedded-{EMBEDDED_VERSION}")
    for mailbox_set, _filters in config.set_cache.values():
        pop3.warm([m async for m in (await mailbox_set.get_mailbox("INBOX")).messages()])
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        await backend.start(stack)
        await start_imap(backend, config, stack)
        pop3_server = await asyncio.start_server(pop3, host=spec["host"], port=spec["pop3_port"])
        await stack.enter_async_context(pop3_server)
        imap_port = spec["imap_port"]
        pop3_port = pop3_server.sockets[0].getsockname()[1]
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if spec.get("watch_stdin", True):
            threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
        out = ready_out or sys.stdout
        out.write(f"READY {imap_port} {pop3_port}\n")
        out.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mailstudy.servers.embedded_main SPEC.pickle", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        with open(argv[0], "rb") as f:
            spec = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        print(f"embedded server: cannot read spec {argv[0]}: {exc}", file=sys.stderr)
        return 2
    profile_path = os.environ.get("MAILSTUDY_EMBEDDED_PROFILE")
    profiler = None
    if profile_path:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    try:
        asyncio.run(serve(spec))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"embedded server: a port is already in use on {spec.get('host')} "
                  f"(IMAP {spec.get('imap_port')}, POP3 {spec.get('pop3_port')}): {exc.strerror}",
                  file=sys.stderr)
        else:
            print(f"embedded server: cannot listen: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the stdin watcher thread may still block in read()
