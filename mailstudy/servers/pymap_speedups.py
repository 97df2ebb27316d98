"""Speed-ups layered over pymap 0.36's IMAP server, without touching pymap's files.

Why: the embedded server must be within 2x of Dovecot (issue 2). Out of the box pymap parses every message's
MIME structure at APPEND (a 1000-message, 80 MB mailbox took ~4 s to start), writes each FETCH response as many
small ``writer.write`` calls (each a ``send()`` on an idle socket) and renders every response a second time just
for its debug log. This module replaces those pieces; the bytes on the wire stay the same.
``EmbeddedServer(speedups=False)`` runs plain pymap instead, and ``tests/test_embedded_speedups.py`` checks that
both answer the same IMAP commands with the same bytes.

- Lazy MIME parsing (:func:`use_lazy_parsing`): at APPEND only the message's header is parsed (what APPEND needs:
  thread keys, size); the body's MIME structure is parsed by pymap's own parser the first time something asks
  for it (BODYSTRUCTURE, BODY[1], SEARCH TEXT). Messages whose header runs to the end (pymap's edge cases) are
  parsed in full at once, and keep all their bytes (pymap alone drops the last one). Start-up drops from ~4 s to ~0.5 s for 80 MB.
- Batched writes (:class:`BatchedIMAPConnection`): the pieces of a response are gathered and written in chunks
  of :data:`WRITE_CHUNK` bytes with flow control (``drain``) between chunks; the debug rendering is made only
  when debug logging is on.
- A fast FETCH renderer (:class:`FastConnectionState`) for the common items (UID, FLAGS, RFC822.SIZE, whole
  message and whole header as BODY[]/BODY.PEEK[]/RFC822/RFC822.HEADER): the literal goes out as a view of the
  stored bytes (no copies) and FLAGS renderings are cached per flag set. Anything else, and any FETCH response
  merged with an update, takes pymap's own path (FETCH responses still merge with flag updates as pymap merges
  them).

pymap internals relied on (pymap is pinned ``>=0.36,<0.37``; re-run the equivalence test when that moves):

- ``pymap.mime.MessageContent``: its ``body``/``lines`` slot descriptors, ``_raw``, ``header``, and
  ``MessageHeader._parse(data, view, lines)`` with the ``(start, end, next)`` line tuples of ``_find_lines`` /
  ``_split_lines``; what ends a header is ``pymap.mime._util.whitespace`` (copied here as ``_WS``).
- ``pymap.backend.dict.mailbox.MessageContent``: the name the dict backend parses appended messages with
  (replaced by :func:`use_lazy_parsing`); the dict backend's ``Message._content``, ``uid``, ``get_flags``.
- ``pymap.fetch``: ``MessageAttributes`` with its ``_simple_attrs``/``_loaded_attrs`` tables, ``load_hook()``,
  and the value classes ``_UidFetchValue``, ``_FlagsFetchValue``, ``_RFC822SizeFetchValue``, ``_BodyFetchValue``.
- ``FetchResponse`` (``data``, ``writing_hook``, ``merge_key``, ``merge``), ``ResponseOk``'s ``_untagged``,
  ``_mergeable`` and ``_raw``, ``CommandResponse.async_write`` (untagged responses, then ``Response.write``).
- ``ConnectionState.do_fetch`` (copied with the fast response swapped in), ``IMAPConnection.write_response``,
  ``IMAPConnection._print`` and ``IMAPServer.__call__`` (copied with the subclasses swapped in), and
  ``IMAPService.start`` (what :func:`start_imap` does, minus inherited sockets).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import AsyncExitStack, closing

from proxyprotocol.reader import ProxyProtocolReader
from pymap import fetch as _fetch
from pymap.backend.dict import DictBackend
from pymap.backend.dict import mailbox as _dict_mailbox
from pymap.config import IMAPConfig
from pymap.context import connection_exit
from pymap.imap import IMAPConnection, IMAPServer
from pymap.imap.state import ConnectionState
from pymap.mime import MessageContent, MessageHeader
from pymap.parsing.primitives import List
from pymap.parsing.response import CommandResponse, Response, ResponseCode, ResponseOk
from pymap.parsing.response.specials import FetchResponse

__all__ = ["WRITE_CHUNK", "LazyMessageContent", "parse_lazily", "parse_whole", "use_lazy_parsing", "keep_every_byte", "fetch_plan",
           "FastFetchResponse", "FastConnectionState", "BatchedIMAPConnection", "FastIMAPServer", "start_imap"]

_imap_log = logging.getLogger("pymap.imap")

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
        return parse_whole(data)
    return LazyMessageContent(data, MessageHeader._parse(data, memoryview(data), lines))


def parse_whole(data: bytes) -> MessageContent:
    """``MessageContent.parse(data)`` keeping every byte of ``data``.

    A fix, not a speed-up (so plain pymap gets it too): pymap 0.36 drops the last byte of a message whose header
    runs to its end (no empty line), so BODY[], RFC822.SIZE and POP3 would serve 23 of ``b"Subject: x\\r\\n"``'s
    24 bytes, where Dovecot serves them all."""
    data = bytes(data)
    full = MessageContent.parse(data)
    if len(full._raw) != len(data):
        full._raw = memoryview(data)
    return full


class _LazyParser:
    """Stands in for ``MessageContent`` where pymap's dict backend parses appended messages."""

    parse = staticmethod(parse_lazily)


class _WholeParser:
    """The same, for plain pymap: the full parse, every byte kept."""

    parse = staticmethod(parse_whole)


def use_lazy_parsing() -> None:
    """Make the dict backend's APPEND (at start and over IMAP) parse lazily, for the rest of this process."""
    _dict_mailbox.MessageContent = _LazyParser  # type: ignore[misc,assignment]


def keep_every_byte() -> None:
    """Plain pymap's parse for the dict backend's APPEND, with :func:`parse_whole`'s fix."""
    _dict_mailbox.MessageContent = _WholeParser  # type: ignore[misc,assignment]


# -- fast FETCH rendering --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _flags_bytes(flags: frozenset) -> bytes:
    return bytes(List(flags, sort=True))


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


# -- batched writes ----------------------------------------------------------------------------------------------
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


# -- the server ------------------------------------------------------------------------------------------------
class FastIMAPServer(IMAPServer):
    """:class:`IMAPServer` that runs :class:`BatchedIMAPConnection` with :class:`FastConnectionState` (a subclass
    may name other classes: :mod:`mailstudy.servers.imap_compress` does)."""

    __slots__ = ()
    connection: type = BatchedIMAPConnection
    state: type = FastConnectionState

    async def __call__(self, reader, writer, sock_info) -> None:
        conn = self.connection(self.commands, self._config, reader, writer, sock_info)
        state = self.state(self._login, self._config)
        async with AsyncExitStack() as stack:
            connection_exit.set(stack)
            stack.enter_context(closing(conn))
            await conn.run(state)


async def start_imap(backend: DictBackend, config: IMAPConfig, stack: AsyncExitStack, *,
                     speedups: bool = True, port: int | None = None, ssl=None, server_cls: type | None = None) -> None:
    """Listen for IMAP as ``IMAPService.start`` does, with :class:`FastIMAPServer` (or pymap's own
    :class:`IMAPServer` when ``speedups`` is false); the listener lives on ``stack``. ``port`` (default: the
    config's) and ``ssl`` (an SSLContext: implicit TLS on that port) serve a second listener; ``server_cls``
    another server class (:mod:`mailstudy.servers.imap_compress`'s)."""
    server_cls = server_cls or (FastIMAPServer if speedups else IMAPServer)
    callback = ProxyProtocolReader(config.proxy_protocol).get_callback(server_cls(backend.login, config))
    server = await asyncio.start_server(callback, host=config.host, port=port or config.port, ssl=ssl)
    await stack.enter_async_context(server)
    task = asyncio.create_task(server.serve_forever())
    stack.callback(task.cancel)
