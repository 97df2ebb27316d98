"""Sans-IO IMAP and POP3 parsers that also count continuation requests / SASL challenges and completed
exchanges, through the parsers' hooks.

Why a module of its own: the same progress measure is taken once over the capture (where the server had
got before each flight) and once live during the replay (whether it got as far again).
"""

from __future__ import annotations

from typing import Any

from mailstudy.protocol.events import Exchange
from mailstudy.protocol.imap import ImapParser
from mailstudy.protocol.pop3 import Pop3Parser, _status_of


class _ImapProgress(ImapParser):
    """An IMAP parser that also counts continuation requests (``+ ...``) and completed exchanges."""

    def __init__(self) -> None:
        super().__init__()
        self.continuations = 0
        self.completed = 0

    def _finish_response(self, t_end: Any) -> None:
        if self._greeted and self._resp is not None and self._resp.first.startswith(b"+"):
            self.continuations += 1
        super()._finish_response(t_end)

    def _emit(self, event) -> None:
        if isinstance(event, Exchange):
            self.completed += 1
        super()._emit(event)

    def settled(self) -> bool:
        """Every command sent so far has its tagged status and no response is half read."""
        return not self._outstanding and self._resp is None and not self._down_literal and self._cur is None


class _Pop3Progress(Pop3Parser):
    """A POP3 parser that also counts SASL challenges (``+ ...``) and completed exchanges."""

    def __init__(self) -> None:
        super().__init__()
        self.continuations = 0
        self.completed = 0

    def _reply_line(self, seg) -> None:
        if self._greeted and self._fifo and _status_of(seg.data) is None and seg.data.startswith(b"+"):
            self.continuations += 1
        super()._reply_line(seg)

    def _emit(self, event) -> None:
        if isinstance(event, Exchange):
            self.completed += 1
        super()._emit(event)

    def settled(self) -> bool:
        """Every command sent so far has its complete reply."""
        return not self._fifo and self._multi is None


def _progress_parser(protocol: str):
    return _ImapProgress() if protocol == "imap" else _Pop3Progress()
