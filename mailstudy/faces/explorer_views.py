"""What the pcap explorer shows of one session, as HTML and text: the table, the marks, the warnings, one
exchange's text and the compare table.

Why a module of its own: :mod:`mailstudy.faces.explorer` holds the widgets and the ways a capture is opened;
the views are plain functions of a :class:`~mailstudy.offline.analyze.SessionAnalysis`, testable without a
browser, and small enough to read. Every number a student sees carries its unit (ms, bytes with separators as
in the ladder), a value that does not exist is a dash with a word, never ``NaN``.

No protocol logic: exchanges, credential spans and the switch to TLS are the parsers' events. The text of one
exchange is cut from the reassembled streams by the exchanges' own byte counts (the greeting, then each
exchange's ``bytes_up``/``bytes_down`` in the order sent), which is exact when the server answers in order, as
IMAP and POP3 servers do for commands that are not pipelined; a pipelined command says so beside its text.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from mailstudy.protocol.events import Compressed, Encrypted, Greeting, Span
from mailstudy.protocol.metrics import exchange_rows
from mailstudy.wire import DOWN, UP

__all__ = ["short_path", "session_marks", "busiest_session", "session_label", "exchanges_html", "warnings_html",
           "exchange_text", "exchange_choices", "compare_html", "fmt_ms", "fmt_bytes"]

PATH_LIMIT = 60  # characters of a path shown before its middle gives way to "…"
TEXT_LINES_UP, TEXT_LINES_DOWN = 6, 10  # lines of a command and of its reply shown as text
LINE_LIMIT = 160  # characters of one shown line
NO_VALUE = "—"

#: The table's columns: (frame column, heading in words with its unit).
COLUMNS = (("index", "#"), ("command", "command"), ("arguments", "arguments (credentials hidden)"),
           ("status", "reply"), ("t_sent_s", "sent at (ms after connect)"),
           ("latency_s", "waited for the reply (ms)"), ("bytes_up", "bytes up (client → server)"),
           ("bytes_down", "bytes down (server → client)"))

MARK_WORDS = {
    "empty": "empty: no command was sent",
    "partial": "partial: the capture missed part of this session",
    "cut": "cut: the capture ends before the session does",
    "encrypted": "encrypted: TLS hides the commands (a key log would show them)",
    "decrypted": "decrypted with a TLS key log",
}


def short_path(path: str | os.PathLike, limit: int = PATH_LIMIT) -> str:
    """``path`` as a student reads it: the home folder as ``~``, and a long path cut in the middle."""
    text = os.fspath(path)
    home = str(Path.home())
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        text = "~" + text[len(home):]
    if len(text) <= limit:
        return text
    parts = Path(text).parts
    tail = parts[-1]
    for part in reversed(parts[:-1]):
        if len(part) + len(tail) + 3 > limit:
            break
        tail = f"{part}{os.sep}{tail}"
    return f"…{os.sep}{tail}" if len(tail) + 2 <= limit else "…" + tail[-(limit - 1):]


def fmt_ms(seconds) -> str:
    """Seconds as milliseconds with three decimals; a missing value as a dash."""
    if seconds is None or seconds != seconds:  # None or NaN
        return NO_VALUE
    return f"{seconds * 1000:,.3f}"


def fmt_bytes(n) -> str:
    return NO_VALUE if n is None or n != n else f"{int(n):,}"


# ---- marks ---------------------------------------------------------------------------------------------------
def session_marks(session, analysis=None) -> list[str]:
    """The marks of a session (keys of :data:`MARK_WORDS`): empty, partial, cut, encrypted, decrypted."""
    conn = session.connection
    marks = []
    if not session.exchanges:
        marks.append("empty")
    if conn.mid_stream or conn.gaps:
        marks.append("partial")
    truncated = analysis is not None and any("truncated" in w for w in analysis.warnings)
    if any(e.status is None for e in session.exchanges) or (truncated and not conn.closed):
        marks.append("cut")
    if getattr(session, "decrypted", False):
        marks.append("decrypted")
    elif session.encrypted:
        marks.append("encrypted")
    return marks


def busiest_session(analysis) -> int:
    """The index of the session a student should see first: most commands, then most bytes (never an empty
    session when another has exchanges)."""
    if not analysis.sessions:
        raise ValueError("no sessions")
    best = max(analysis.sessions, key=lambda s: (s.metrics["commands"], s.metrics["bytes_up"] + s.metrics["bytes_down"],
                                                 -s.index))
    return best.index


def session_label(session, analysis=None) -> str:
    """One line per session for the session list: protocol, endpoints, commands, bytes down, marks."""
    m = session.metrics
    marks = session_marks(session, analysis)
    tail = f" [{', '.join(marks)}]" if marks else ""
    return (f"#{session.index} {session.protocol.upper()} {m['client']} -> {m['server']}: {m['commands']} commands, "
            f"{m['bytes_down']:,} B down{tail}")


# ---- the table -----------------------------------------------------------------------------------------------
def _encrypted_at(session):
    """The time the session switched to TLS (the parser's Encrypted event, not a Compressed one), or None."""
    return next((e.t for e in session.events if isinstance(e, Encrypted) and not isinstance(e, Compressed)), None)


def _compressed_at(session):
    """The time COMPRESS=DEFLATE began, read inflated (the parser's Compressed event), or None."""
    return next((e.t for e in session.events if isinstance(e, Compressed)), None)


#: The row that marks where COMPRESS began: the exchanges below it crossed the wire deflated.
COMPRESSED_ROW = "🗜 compressed from here (COMPRESS=DEFLATE): the rows below were read inflated from the deflate streams"


def _row_cells(row) -> list[str]:
    cells = []
    for col, _ in COLUMNS:
        v = row.get(col)
        if col in ("t_sent_s", "latency_s"):
            text = fmt_ms(v)
        elif col in ("bytes_up", "bytes_down", "index"):
            text = fmt_bytes(v)
        elif col == "status":
            text = NO_VALUE + " no reply in the capture" if v is None or v != v else str(v)
        else:
            text = NO_VALUE if v is None or v != v else str(v)
        cells.append(html.escape(text))
    return cells


def exchanges_html(session, analysis=None, max_rows: int = 2000, scroll_px: int = 420) -> str:
    """The session's summary line and its exchanges table (scrolled when long), with a row that marks where the
    session became encrypted."""
    m = session.metrics
    records = exchange_rows(session.exchanges, time_scale=1.0, t_start=session.t_start)
    head = (f"<p><b>{html.escape(session.protocol.upper())}</b> session #{session.index}: "
            f"{m['commands']:,} commands, {m['round_trips']:,} round trips, {m['bytes_up']:,} B up, "
            f"{m['bytes_down']:,} B down, {fmt_ms(m['duration_s'])} ms</p>")
    marks = session_marks(session, analysis)
    if marks:
        head += "".join(f'<p class="ms-mark ms-mark-{k}">▲ {html.escape(MARK_WORDS[k])}</p>' for k in marks)
    heading = "".join(f"<th>{html.escape(h)}</th>" for _, h in COLUMNS)
    rows = []
    t_tls = None if getattr(session, "decrypted", False) else _encrypted_at(session)
    marked = t_tls is None
    t_zip = _compressed_at(session)
    for r in records[:max_rows]:
        if t_zip is not None and r["t_sent_s"] is not None and r["t_sent_s"] + (session.t_start or 0) > t_zip:
            rows.append(f'<tr class="ms-encrypted-row"><td colspan="{len(COLUMNS)}">{COMPRESSED_ROW}</td></tr>')
            t_zip = None
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in _row_cells(r)) + "</tr>")
    if not marked:
        rows.append(f'<tr class="ms-encrypted-row"><td colspan="{len(COLUMNS)}">🔒 encrypted from here: the rest '
                    f'of the session is TLS records; their commands cannot be read without a key log</td></tr>')
    more = (f"<p>… {len(records) - max_rows:,} more exchanges not shown</p>" if len(records) > max_rows else "")
    if not records:
        rows.append(f'<tr><td colspan="{len(COLUMNS)}">no exchange: nothing was asked in this session</td></tr>')
    table = (f'<div class="ms-table-scroll" style="max-height:{scroll_px}px;overflow:auto">'
             f'<table class="ms-table"><thead><tr>{heading}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
             f'</div><style>.ms-table th{{position:sticky;top:0;background:#fff}}'
             f'.ms-table td,.ms-table th{{padding:2px 8px;text-align:right}}'
             f'.ms-table td:nth-child(2),.ms-table td:nth-child(3),.ms-table th:nth-child(2),'
             f'.ms-table th:nth-child(3){{text-align:left}}'
             f'.ms-encrypted-row td{{text-align:left;background:#eeeeee}}</style>')
    return head + table + more


def warnings_html(session, analysis=None) -> str:
    """The analyzer's warnings about the file and about this session, as a short list ("" when there are none)."""
    items = []
    if analysis is not None:
        items += [("capture", w) for w in analysis.warnings]
    items += [(f"session #{session.index}", w) for w in session.warnings]
    if not items:
        return ""
    shown = items[:12]
    lis = "".join(f"<li><b>{html.escape(where)}</b>: {html.escape(w)}</li>" for where, w in shown)
    more = f"<li>… and {len(items) - len(shown)} more</li>" if len(items) > len(shown) else ""
    return f'<div class="ms-warning-list"><b>What the analyzer noticed</b><ul>{lis}{more}</ul></div>'


# ---- one exchange as text ------------------------------------------------------------------------------------
def exchange_choices(session) -> list[tuple[str, int]]:
    """``(label, index)`` for each exchange: what the list a student clicks shows."""
    out = []
    for e in session.exchanges:
        status = e.status or "no reply"
        out.append((f"#{e.index} {e.command} → {status} · {e.bytes_up:,} B up, {e.bytes_down:,} B down", e.index))
    return out


def _masked_up(session) -> bytes:
    """The client stream with every credential span (the parsers' :class:`Span`) overwritten with ``*``."""
    up = bytearray(session.connection.stream(UP))
    for ev in session.events:
        if isinstance(ev, Span) and ev.secret:
            up[ev.start:ev.end] = b"*" * max(0, min(ev.end, len(up)) - ev.start)
    return bytes(up)


def _first_lines(data: bytes, n_lines: int) -> tuple[str, int, int]:
    """(the first ``n_lines`` lines as text, bytes left, lines left)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    shown = lines[:n_lines]
    used = sum(len(x) + 1 for x in shown)
    text = "\n".join(_printable(x.rstrip(b"\r")) for x in shown)
    return text, max(0, len(data) - used), max(0, len(lines) - len(shown))


def _printable(line: bytes) -> str:
    text = line.decode("utf-8", errors="replace")
    text = "".join(c if c.isprintable() else "·" for c in text)
    return text if len(text) <= LINE_LIMIT else text[:LINE_LIMIT - 1] + "…"


def exchange_text(session, index: int) -> dict:
    """The command and the reply of exchange ``index`` as text: ``command``, ``reply`` (first lines),
    ``command_rest``/``reply_rest`` (bytes not shown), ``note`` (pipelining, gaps)."""
    ex = sorted(session.exchanges, key=lambda e: e.index)
    pos = next((i for i, e in enumerate(ex) if e.index == index), None)
    if pos is None:
        raise ValueError(f"session #{session.index} has no exchange #{index}")
    greeting = next((e.nbytes for e in session.events if isinstance(e, Greeting)), 0)
    up_at = sum(e.bytes_up for e in ex[:pos])
    down_at = greeting + sum(e.bytes_down for e in ex[:pos])
    e = ex[pos]
    up = _masked_up(session)[up_at:up_at + e.bytes_up]
    down = session.connection.stream(DOWN)[down_at:down_at + e.bytes_down]
    command, up_rest, up_lines = _first_lines(up, TEXT_LINES_UP)
    reply, down_rest, down_lines = _first_lines(down, TEXT_LINES_DOWN)
    notes = []
    if pos and ex[pos - 1].t_done is not None and e.t_sent is not None and e.t_sent < ex[pos - 1].t_done:
        notes.append("pipelined: sent before the previous reply was complete; its reply is cut from the stream "
                     "where the earlier replies end, which holds when the server answers in order")
    if session.connection.gaps:
        notes.append(f"the capture missed {session.connection.gap_bytes:,} bytes of this session; text after a "
                     f"gap may belong to a later exchange")
    return {"command": command, "command_rest": up_rest, "command_more_lines": up_lines, "reply": reply,
            "reply_rest": down_rest, "reply_more_lines": down_lines, "note": "; ".join(notes), "exchange": e}


def exchange_html(session, index: int) -> str:
    """:func:`exchange_text` as HTML: two preformatted blocks, client and server."""
    t = exchange_text(session, index)
    e = t["exchange"]

    def rest(nbytes: int, nlines: int) -> str:
        if not nbytes:
            return ""
        return f"<p><i>… and {nbytes:,} more bytes ({nlines:,} more lines) not shown</i></p>"

    note = f"<p><i>{html.escape(t['note'])}</i></p>" if t["note"] else ""
    return (f"<p><b>Exchange #{e.index}</b>: {html.escape(e.command)}, waited "
            f"{fmt_ms(None if e.t_done is None or e.t_sent is None else e.t_done - e.t_sent)} ms</p>"
            f'<p style="color:#1f5fa8"><b>client → server</b> ({e.bytes_up:,} B; credentials shown as ***)</p>'
            f'<pre class="ms-command">{html.escape(t["command"])}</pre>'
            f"{rest(t['command_rest'], t['command_more_lines'])}"
            f'<p style="color:#2e7d32"><b>server → client</b> ({e.bytes_down:,} B)</p>'
            f'<pre class="ms-reply">{html.escape(t["reply"]) or "(nothing)"}</pre>'
            f"{rest(t['reply_rest'], t['reply_more_lines'])}{note}")


# ---- compare -------------------------------------------------------------------------------------------------
def compare_html(a, b, name_a: str, name_b: str) -> str:
    """The totals of two sessions in one table: bytes each way, commands, round trips, time."""
    rows = (("bytes up (client → server)", "bytes_up", fmt_bytes), ("bytes down (server → client)", "bytes_down",
                                                                    fmt_bytes),
            ("commands", "commands", fmt_bytes), ("round trips (client flights)", "round_trips", fmt_bytes),
            ("duration (ms)", "duration_s", fmt_ms))
    body = "".join(f"<tr><td>{html.escape(label)}</td><td>{f(a.metrics.get(key))}</td>"
                   f"<td>{f(b.metrics.get(key))}</td></tr>" for label, key, f in rows)
    return (f'<table class="ms-table ms-compare-totals"><thead><tr><th></th><th>A: {html.escape(name_a)}</th>'
            f"<th>B: {html.escape(name_b)}</th></tr></thead><tbody>{body}</tbody></table>")
