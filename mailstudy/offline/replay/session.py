"""Replay one analysed session: check it can be replayed, rebuild its mailbox on a fresh server, rewrite and
send its flights, then measure the replay with the same definitions as the original and compare messages.

Why a module of its own: it is the driver that strings the steps of :mod:`mailstudy.offline.replay` together for a
single session; each step lives in its own module.
"""

from __future__ import annotations

from mailstudy.live.trace import Trace
from mailstudy.offline.replay.captured import captured_exchanges, exchanges_in_order, plain_stream
from mailstudy.offline.replay.flights import apply_edits, client_flights
from mailstudy.offline.replay.imap_fetch import imap_fetched
from mailstudy.offline.replay.mailbox import Mailbox, rebuild_mailbox
from mailstudy.offline.replay.report import SessionReplay, metrics_row
from mailstudy.offline.replay.rewrite import rewrite_client_stream
from mailstudy.offline.replay.run import DEFAULT_TIMEOUT_S, run_flights
from mailstudy.protocol import parse_session
from mailstudy.protocol.events import DOWN, UP, Encrypted, Exchange
from mailstudy.protocol.metrics import session_metrics
from mailstudy.servers import make_server


def _is_encrypted(session) -> str | None:
    for e in session.events:
        if isinstance(e, Encrypted):
            return e.reason
    if getattr(session, "encrypted", False):
        return "the session is encrypted"
    return None


def _check_messages(protocol: str, box: Mailbox, trace: Trace, exchanges: list[Exchange]) -> tuple[int, int]:
    checked = matched = 0
    if protocol == "imap":
        seen, _, _ = imap_fetched(trace.stream(DOWN))
        for seq, s in seen.items():
            if not (1 <= seq <= len(box.messages)) or not box.whole[seq - 1]:
                continue
            data = s.whole if s.whole is not None else (
                s.header + s.text if s.header is not None and s.text is not None else None)
            if data is None:
                continue
            checked += 1
            matched += data == box.messages[seq - 1]
    else:
        for e in exchanges:
            args = e.arguments.split()
            if e.command == "RETR" and e.ok and args and args[0].isdigit():
                n = int(args[0])
                if 1 <= n <= len(box.messages) and box.whole[n - 1]:
                    checked += 1
                    matched += e.data == box.messages[n - 1]
    return checked, matched


def replay_session(session, server: str = "embedded", timeout: float = DEFAULT_TIMEOUT_S) -> SessionReplay:
    """Replay one analysed session (a ``SessionAnalysis``) on a fresh server of kind ``server``.

    Raises ``ServerError`` when the server cannot start; everything the session itself does wrong is a warning.
    """
    original = metrics_row(session.metrics)
    result = SessionReplay(session.index, session.protocol, server, original, None,
                           warnings=list(getattr(session, "warnings", []))[:5])
    why = _is_encrypted(session)
    if why:
        result.warnings.append(f"cannot be replayed: encrypted or compressed ({why})")
        return result
    initial, flights = client_flights(session)
    if not flights:
        result.warnings.append("cannot be replayed: the client sent nothing")
        return result
    box = rebuild_mailbox(session)
    result.warnings.extend(box.warnings)
    result.messages, result.placeholders = len(box.messages), box.placeholders
    srv = make_server(server)
    account = srv.account
    up = plain_stream(session, UP)
    edits, w = rewrite_client_stream(session.protocol, session.connection.chunks, account, box.uid_map())
    result.warnings.extend(dict.fromkeys(w))  # once each
    apply_edits(up, flights, edits)
    exchanges = captured_exchanges(session)
    last = exchanges[-1].command if exchanges else ""
    srv.mailboxes[account.user] = list(box.messages)
    trace = Trace()
    with srv:
        port = srv.imap_port if session.protocol == "imap" else srv.pop3_port
        run_flights(srv.host, port, session.protocol, initial, flights, last, timeout, trace, result.warnings)
    events = parse_session(session.protocol, trace.chunks)
    replayed = exchanges_in_order(events)
    metrics = session_metrics(trace.chunks, replayed, t_start=trace.t_connect_ns, time_scale=1e-9)
    result.replayed = metrics_row(metrics)
    result.exchanges, result.trace = replayed, trace
    if len(replayed) != len(exchanges):
        result.warnings.append(f"{len(exchanges)} commands in the capture, {len(replayed)} in the replay")
    for o, r in zip(exchanges, replayed):
        if o.status != r.status:
            result.warnings.append(f"command {o.index} {o.command}: {o.status} in the capture, "
                                   f"{r.status} in the replay")
    result.messages_checked, result.messages_matched = _check_messages(session.protocol, box, trace, replayed)
    if result.messages_matched != result.messages_checked:
        result.warnings.append(f"{result.messages_checked - result.messages_matched} of "
                               f"{result.messages_checked} messages came back different from the mailbox")
    return result
