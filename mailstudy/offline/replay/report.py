"""The results of a replay: one session's original and replayed numbers, a whole file's report, and the
one-line error for a capture that cannot be replayed at all.

Why a module of its own: the CLI, the notebooks and the tests read these types and their ``to_dict``; they
depend on nothing of how the replay runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailstudy.errors import MailstudyError
from mailstudy.live.trace import Trace
from mailstudy.protocol.events import Exchange
from mailstudy.wire import METRIC_KEYS, SessionMetrics


class ReplayError(MailstudyError, ValueError):
    """A capture cannot be replayed at all (no mail session, no such session); the message is one line."""


@dataclass
class SessionReplay:
    """One session's original numbers beside its replay's (``replayed`` is None when it could not run)."""

    index: int
    protocol: str
    server: str
    original: dict
    replayed: dict | None
    warnings: list[str] = field(default_factory=list)
    messages: int = 0  # in the rebuilt mailbox
    placeholders: int = 0
    messages_checked: int = 0  # whole messages fetched whole in the replay, compared byte for byte
    messages_matched: int = 0
    exchanges: list[Exchange] = field(default_factory=list)  # the replay's, in the order sent
    trace: Trace | None = None
    failed: bool = False  # the replay itself broke down (a warning says how); not replayable is not failed

    def to_dict(self) -> dict:
        return {"index": self.index, "protocol": self.protocol, "server": self.server, "failed": self.failed,
                "original": self.original, "replayed": self.replayed, "messages": self.messages,
                "placeholders": self.placeholders, "messages_checked": self.messages_checked,
                "messages_matched": self.messages_matched, "warnings": list(self.warnings)}


def metrics_row(m: dict | SessionMetrics) -> dict:
    """The session's numbers as a row (:data:`~mailstudy.wire.METRIC_KEYS`), from metrics or an analysis row."""
    return m.as_row() if isinstance(m, SessionMetrics) else {k: m.get(k) for k in METRIC_KEYS}


@dataclass
class ReplayReport:
    file: str
    sessions: list[SessionReplay]

    def to_dict(self) -> dict:
        return {"file": self.file, "sessions": [s.to_dict() for s in self.sessions]}
