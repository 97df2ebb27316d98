"""Read an IMAP capture that used COMPRESS=DEFLATE (RFC 4978): inflate each direction after the tagged OK.

Why: after ``tag OK`` to ``COMPRESS DEFLATE`` both directions are one raw deflate stream each (``wbits=-15``,
every write flushed), so a capture shows no IMAP at all from there on; Wireshark 4.0 only counts it. Inflating is
one ``zlib.decompressobj(-15)`` per direction, fed the TCP payload in order; the IMAP parser then reads the
session to its end as if it had been sent in clear, and the metrics count the protocol's bytes (``bytes_*``) and
the deflated ones on the wire (``compressed_bytes_*``, ``wire_bytes_*``), as a live trace does.

A module of its own so that the analyzer's hot path is not touched: :class:`Inflater` stands between the
analyzer and the parser (it has the parser's ``feed_lists``), passes every run through unchanged until the
parser finds the tagged OK (the parser's one hook, ``parser.inflated``: it hands over the bytes it holds beyond
the OK), and from then on feeds the parser what the deflate streams inflate to. A gap in the capture after that
point, or data that does not inflate, ends the reading: the rest is only counted, and :attr:`Inflater.broken`
says why (deflate cannot resume mid-stream).
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from typing import Any

from mailstudy.wire import DOWN, UP, SessionMetrics

__all__ = ["Inflater"]


class Inflater:
    """Inflates one IMAP connection's streams after COMPRESS DEFLATE, between the analyzer and ``parser``."""

    def __init__(self, parser) -> None:
        self.parser = parser
        self.active = False  # COMPRESS accepted: every byte from here on is deflated
        self.broken: str | None = None  # why the reading stopped (a gap, data that does not inflate)
        self.deflated = {UP: 0, DOWN: 0}  # bytes on the wire after the switch
        self.inner = {UP: 0, DOWN: 0}  # what they inflated to
        self._z: dict[str, Any] = {}  # one decompressor per direction, made at the switch (most sessions never switch)
        self._held: dict[str, bytes] | None = None
        self._t = None
        parser.inflated = self._switch

    def _switch(self, held: dict[str, bytes], t: Any) -> None:
        """The parser's hook: the tagged OK of COMPRESS is read; ``held`` is what it holds beyond it."""
        self.active = True
        self._z = {UP: zlib.decompressobj(-15), DOWN: zlib.decompressobj(-15)}
        self._held, self._t = held, t

    def release(self) -> None:
        """Drop the parser's hook once the session is read. The parser and the inflater hold each other through
        it, and the analyzer runs with the garbage collector off (as ``mailstudy analyze`` does): without this
        every IMAP session's parser and inflater stayed in memory to the end of the file (about 22 KB a session:
        426 MiB peak RSS for the 5 M-packet bench capture)."""
        self.parser.inflated = False

    def feed_lists(self, direction: str, datas: list, ts: list) -> None:
        """The parser's ``feed_lists``, inflating once COMPRESS is on."""
        if not self.active:
            self.parser.feed_lists(direction, datas, ts)
            if self._held is not None:  # the OK was in this run: what came after it is deflated
                self._feed_held()
            return
        self._feed(direction, datas, ts)

    def feed_runs(self, runs: list) -> None:
        """The parser's ``feed_runs`` (``feed_lists`` for each ``(direction, datas, ts)`` of ``runs``), inflating
        once COMPRESS is on: the parser feeds the runs itself up to the one that holds the tagged OK."""
        if not self.active:
            runs = runs[self.parser.feed_runs(runs, self._switched):]
            if self._held is not None:  # the OK was in the last run fed: what came after it is deflated
                self._feed_held()
        for direction, datas, ts in runs:
            self._feed(direction, datas, ts)

    def _switched(self) -> bool:
        return self._held is not None

    def feed(self, direction: str, data: bytes, t: Any = None) -> None:
        """The parser's ``feed`` (the analyzer's reference path), inflating once COMPRESS is on."""
        self.feed_lists(direction, [bytes(data)], [t])

    def gap(self, direction: str, nbytes: int, t: Any = None) -> None:
        """The parser's ``gap``: before the switch the parser's own; after it the deflate stream is lost."""
        if not self.active:
            self.parser.gap(direction, nbytes, t)
        elif self.broken is None:
            self.broken = (f"{nbytes} bytes of the {direction} COMPRESS stream are missing from the capture: the "
                           f"rest of the session cannot be inflated and is only counted")

    def _feed_held(self) -> None:
        held, self._held = self._held, None
        for direction in (DOWN, UP):
            if held[direction]:
                self._feed(direction, [held[direction]], [self._t])

    def _feed(self, direction: str, datas: list, ts: list) -> None:
        self.deflated[direction] += sum(map(len, datas))
        if self.broken is not None:
            return
        z = self._z[direction]
        out, out_ts = [], []
        for data, t in zip(datas, ts):
            try:
                plain = z.decompress(data)
            except zlib.error as exc:
                self.broken = f"the {direction} COMPRESS stream does not inflate ({exc}): the rest is only counted"
                break
            if plain:
                out.append(plain)
                out_ts.append(t)
        if out:
            self.inner[direction] += sum(map(len, out))
            self.parser.feed_lists(direction, out, out_ts)

    def metrics(self, wire: SessionMetrics) -> SessionMetrics:
        """The session's metrics from ``wire`` (computed on the captured payload): the protocol's bytes are the
        wire's before the switch plus what the deflate streams inflated to; the deflated stream is the wire."""
        if not self.active:
            return wire
        up = wire.bytes_up - self.deflated[UP] + self.inner[UP]
        down = wire.bytes_down - self.deflated[DOWN] + self.inner[DOWN]
        return replace(wire, bytes_up=up, bytes_down=down, compressed_bytes_up=wire.bytes_up,
                       compressed_bytes_down=wire.bytes_down)
