"""Replay a whole capture file: analyse it, pick its mail sessions (or one), replay each on the chosen
server kind and collect the results in one report.

Why a module of its own: it is the entry point of the CLI; it turns a bad file, server kind or session
index into one-line errors and keeps one odd session from hiding the others' results.
"""

from __future__ import annotations

from mailstudy.offline.replay.report import (
    ReplayError,
    ReplayReport,
    SessionReplay,
    metrics_row,
)
from mailstudy.offline.replay.run import DEFAULT_TIMEOUT_S
from mailstudy.offline.replay.session import replay_session
from mailstudy.servers.base import ServerError

SERVER_KINDS = ("embedded", "dovecot")


def replay_pcap(path: str, server: str = "embedded", session: int | None = None,
                timeout: float = DEFAULT_TIMEOUT_S) -> ReplayReport:
    """Analyse ``path`` and replay each mail session (or only session ``session``) on ``server``.

    Raises ``PcapError`` for an unreadable file and :class:`ReplayError` when there is no mail session to
    replay (or no session with that index).
    """
    from mailstudy.offline.analyze import analyze_pcap

    if server not in SERVER_KINDS:
        raise ReplayError(f"unknown server {server!r}; choose one of {', '.join(SERVER_KINDS)}")
    analysis = analyze_pcap(path)
    sessions = list(analysis.sessions)
    if not sessions:
        raise ReplayError(f"{path}: no IMAP or POP3 session found")
    if session is not None:
        chosen = [s for s in sessions if s.index == session]
        if not chosen:
            have = ", ".join(str(s.index) for s in sessions)
            raise ReplayError(f"{path}: no mail session {session} (sessions: {have})")
        sessions = chosen
    results = []
    for s in sessions:
        try:
            results.append(replay_session(s, server, timeout))
        except ServerError:
            raise
        except Exception as exc:  # noqa: BLE001 - one odd session must not hide the others' results
            failed = SessionReplay(s.index, s.protocol, server, metrics_row(s.metrics), None, failed=True)
            failed.warnings.append(f"replay failed: {type(exc).__name__}: {exc}")
            results.append(failed)
    return ReplayReport(str(path), results)
