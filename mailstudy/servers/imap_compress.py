"""COMPRESS=DEFLATE (RFC 4978) for the embedded server's IMAP: pymap 0.36 has no COMPRESS, so it is added here.

Why a module of its own: the compression is a layer under IMAP, not an IMAP command pymap's parser could know.
:class:`CompressingConnection` (mixed into pymap's connection classes) looks at each command line before pymap
parses it; ``tag COMPRESS DEFLATE`` in the authenticated or selected state is answered ``tag OK Begin
compression.`` (Dovecot 2.3's words, so both servers send the same bytes), and from the next byte on the
connection's reader and writer are swapped for an inflating reader and a deflating writer. Every other line goes
to pymap as before. A second COMPRESS is ``NO [COMPRESSIONACTIVE]`` (RFC 4978 3), another mechanism ``NO`` and
one before login ``BAD``, each as Dovecot 2.3.19 answers it (measured).

The writer deflates what a response writes and flushes with ``Z_SYNC_FLUSH`` when the connection drains, so each
response (or each :data:`~mailstudy.servers.pymap_speedups.WRITE_CHUNK` of one) leaves as a whole deflate block
ending on a byte boundary, as RFC 4978 4 asks ("the sender MUST flush") and Dovecot does. Level: zlib's default
(6), what Dovecot's imap_zlib uses unless ``imap_zlib_compress_level`` says otherwise (ours: an assumption checked
only by the ratio being close to Dovecot's on the same corpus). The standard library's ``zlib`` does the work:
raw deflate, ``wbits=-15``.
"""

from __future__ import annotations

import asyncio
import re
import zlib

from pymap.imap import IMAPConnection
from pymap.imap.state import ConnectionState
from pymap.parsing.state import ParsingInterrupt, ParsingState

from mailstudy.servers.pymap_speedups import BatchedIMAPConnection, FastIMAPServer

__all__ = ["COMPRESS_CAPABILITY", "DeflateWriter", "CompressingConnection", "compressing_server", "inflating_reader"]

COMPRESS_CAPABILITY = b"COMPRESS=DEFLATE"
_COMPRESS = re.compile(rb"^([^ \r\n]+) COMPRESS ([^ \r\n]+)\r?\n$", re.IGNORECASE)
_READ = 65536


class DeflateWriter:
    """A ``StreamWriter`` stand-in that deflates what is written and flushes at each ``drain``."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._w = writer
        self._z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._pending = False

    def write(self, data) -> None:
        out = self._z.compress(data)
        self._pending = True
        if out:
            self._w.write(out)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    async def drain(self) -> None:
        if self._pending:  # a sync flush with nothing new would still send 5 bytes: only after a write
            self._w.write(self._z.flush(zlib.Z_SYNC_FLUSH))
            self._pending = False
        await self._w.drain()

    def __getattr__(self, name: str):  # close, is_closing, get_extra_info, wait_closed: the writer's own
        return getattr(self._w, name)


def inflating_reader(reader: asyncio.StreamReader) -> tuple[asyncio.StreamReader, asyncio.Task]:
    """A ``StreamReader`` of the inflated bytes of ``reader`` and the task that feeds it; corrupt data ends the
    stream with the ``zlib.error`` (the connection then closes, as a server must on a broken stream)."""
    out = asyncio.StreamReader(limit=getattr(reader, "_limit", 2 ** 16))
    inflate = zlib.decompressobj(-15)

    async def pump() -> None:
        try:
            while True:
                data = await reader.read(_READ)
                if not data:
                    break
                out.feed_data(inflate.decompress(data))
        except (zlib.error, ConnectionError, OSError) as exc:
            out.set_exception(ConnectionResetError(f"COMPRESS stream broken: {exc}"))
            return
        out.feed_eof()

    return out, asyncio.get_running_loop().create_task(pump())


class CompressingConnection:
    """Mixin for pymap's ``IMAPConnection`` (before it in the bases): COMPRESS DEFLATE when the config offers it.

    The config's ``compress`` attribute (True: offered) decides; every other line is parsed as pymap's own
    ``read_command`` parses it."""

    __slots__ = ()

    async def read_command(self, state):
        while True:
            line = await self.readline()
            m = _COMPRESS.match(bytes(line)) if getattr(self.config, "compress", False) else None
            if m is None:
                return await self._parse_line(line, state)
            await self._compress(m.group(1), m.group(2), state)

    async def _parse_line(self, line, state):
        """pymap's ``read_command`` (0.36) from its first ``readline`` on: the line is parsed, and a literal's
        continuation asked for, as pymap does."""
        conts: list = []
        while True:
            params = self.params.copy(ParsingState(continuations=conts))
            try:
                cmd, _ = self.commands.parse(line, params)
            except ParsingInterrupt as interrupt:
                await self._interrupt(state, interrupt, conts)
            else:
                return cmd

    async def _compress(self, tag: bytes, mechanism: bytes, state) -> None:
        if getattr(state, "_session", None) is None:
            reply = b"BAD Command not permitted in this state."
        elif isinstance(self.writer, DeflateWriter):
            reply = b"NO [COMPRESSIONACTIVE] COMPRESSION=DEFLATE already enabled."
        elif mechanism.upper() != b"DEFLATE":
            reply = b"NO Unknown compression mechanism."
        else:
            reply = None
        self.writer.write(tag + b" " + (reply or b"OK Begin compression.") + b"\r\n")
        await self.writer.drain()
        if reply is None:
            self.reader, self._inflate_task = inflating_reader(self.reader)
            self.writer = DeflateWriter(self.writer)


class _FastCompressing(CompressingConnection, BatchedIMAPConnection):
    __slots__ = ("_inflate_task",)


class _PlainCompressing(CompressingConnection, IMAPConnection):
    __slots__ = ("_inflate_task",)


class _CompressingServer(FastIMAPServer):
    """The IMAP server with :class:`CompressingConnection` connections over the batched ones."""

    __slots__ = ()
    connection = _FastCompressing


class _PlainCompressingServer(_CompressingServer):
    __slots__ = ()
    connection = _PlainCompressing
    state = ConnectionState


def compressing_server(speedups: bool) -> type:
    """The server class offering COMPRESS: with the speed-ups of :mod:`~mailstudy.servers.pymap_speedups` or
    plain pymap underneath."""
    return _CompressingServer if speedups else _PlainCompressingServer
