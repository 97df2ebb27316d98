"""Read captures the way capture rotation writes them: gzip, zstd or xz compressed, told by their first bytes.

Why a module of its own: the pcap reader (:mod:`mailstudy.net.pcap`) reads blocks from a file object and
should not care whether the bytes were compressed; this module hands it one. The format is told by its magic
number, never by the file name (a renamed ``.pcap.gz`` is still gzip). gzip and xz come with Python
(``gzip``, ``lzma``: multi-member and multi-stream files included); zstd is the ``zstandard`` package, read
frame after frame with a decompression object, because its ``stream_reader`` returns nothing at all for a
frame cut short instead of saying so.

A compressed file that ends too early or holds corrupt data is an error (``error``, the caller's one-line
exception class) naming the file, the format and the offset: how many bytes of capture were read, and where
in the compressed file the reading stopped.
"""

from __future__ import annotations

import gzip
import lzma
import zlib
from typing import BinaryIO

__all__ = ["sniff", "Decompressed", "MAGICS"]

MAGICS = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ\x00": "xz"}
_RAW_BLOCK = 1 << 20


def sniff(head: bytes) -> str | None:
    """``"gzip"``, ``"zstd"`` or ``"xz"`` when ``head`` (a file's first bytes) starts with that magic."""
    for magic, kind in MAGICS.items():
        if head.startswith(magic):
            return kind
    return None


class _Zstd:
    """zstd frames one after another, as a file object that raises EOFError when the last frame is cut."""

    def __init__(self, raw: BinaryIO) -> None:
        import zstandard

        self._zstd = zstandard
        self.raw = raw
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._buf = bytearray()
        self._eof = False
        self._started = False  # a frame has begun (its bytes fed) and not ended

    def read(self, n: int = -1) -> bytes:
        buf = self._buf
        while (n < 0 or len(buf) < n) and not self._eof:
            chunk = self.raw.read(_RAW_BLOCK)
            if not chunk:
                self._eof = True
                if self._started:
                    raise EOFError("the zstd data ends inside a frame")
                break
            while chunk:
                self._started = True
                buf += self._d.decompress(chunk)
                if not self._d.eof:
                    break
                chunk = self._d.unused_data  # the next frame, if any
                self._d = self._zstd.ZstdDecompressor().decompressobj()
                self._started = False
        if n < 0 or n >= len(buf):
            out = bytes(buf)
            buf.clear()
        else:
            out = bytes(buf[:n])
            del buf[:n]
        return out

    def close(self) -> None:
        self.raw.close()


class Decompressed:
    """A read-only file object over the decompressed bytes of ``raw`` (a compressed file of ``kind``).

    ``read`` turns every decompression failure into ``error(message)``: one line naming the file (``name``),
    the format, how many capture bytes came out before it and the byte of the compressed file reached.
    """

    def __init__(self, raw: BinaryIO, kind: str, name: str, error: type[Exception]) -> None:
        self.raw = raw
        self.kind = kind
        self.name = name
        self.error = error
        self.pos = 0  # decompressed bytes handed out
        if kind == "gzip":
            self._f = gzip.GzipFile(fileobj=raw, mode="rb")
        elif kind == "xz":
            self._f = lzma.LZMAFile(raw, mode="rb")
        elif kind == "zstd":
            self._f = _Zstd(raw)
        else:
            raise ValueError(f"unknown compression {kind!r}")

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._f.read(n)
        except (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
            raise self._fail(exc) from None
        except Exception as exc:  # zstandard.ZstdError, without importing zstandard for gzip/xz files
            if type(exc).__name__ != "ZstdError":
                raise
            raise self._fail(exc) from None
        self.pos += len(data)
        return data

    def _fail(self, exc: Exception) -> Exception:
        try:
            where = f", byte {self.raw.tell():,} of the file"
        except (OSError, ValueError):
            where = ""
        reason = str(exc) or type(exc).__name__
        what = "truncated" if isinstance(exc, EOFError) else "corrupt"
        return self.error(f"{self.name}: {what} {self.kind} data after {self.pos:,} bytes of capture{where} "
                          f"({reason})")

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            self.raw.close()
