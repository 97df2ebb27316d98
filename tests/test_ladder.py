"""The ladder diagram: one arrow per flight, from a live session and from a pcap, and never a password."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from mailstudy.live.access import Known, SessionSpec, run_session  # noqa: E402
from mailstudy.corpus import generate  # noqa: E402
from mailstudy.faces.ladder import LadderError, flights, ladder, save_ladder  # noqa: E402
from mailstudy.servers import make_server  # noqa: E402

CORPUS = generate(6, "fixed-5k", 1)


def live(spec: SessionSpec):
    server = make_server("embedded")
    server.mailboxes[server.account.user] = CORPUS.raws()
    with server:
        result = run_session(server.host, server.imap_port, server.pop3_port, server.account.user,
                             server.account.password, spec, Known(CORPUS.raws()))
    return result, server.account.password


def arrows(fig) -> list[Annotation]:
    return [a for ax in fig.axes for a in ax.texts if isinstance(a, Annotation)]


def all_text(fig) -> list[str]:
    out = []
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts]
        out += [t.get_text() for t in ax.get_yticklabels()]
        out.append(ax.get_title(loc="left"))
    return out


def direction_runs(pairs) -> int:
    """Flights counted independently of ladder.flights: changes of direction among non-empty chunks."""
    runs, last = 0, None
    for direction, n in pairs:
        if n and direction != last:
            runs, last = runs + 1, direction
    return runs


@pytest.fixture(scope="module")
def imap_live():
    return live(SessionSpec("imap", "header-first", read_fraction=0.4, seed=1))


@pytest.fixture(scope="module")
def pop3_pipelined_live():
    return live(SessionSpec("pop3", "header-first", read_fraction=0.4, seed=1, pipelining=True))


def test_live_imap_one_arrow_per_flight_and_no_password(imap_live):
    result, password = imap_live
    fig = ladder(result)
    try:
        # No pipelining: greeting + one command flight and one reply flight per command.
        assert len(arrows(fig)) == 1 + 2 * result.metrics["commands"]
        assert len(arrows(fig)) == direction_runs((c.direction, len(c.data)) for c in result.trace.chunks)
        texts = all_text(fig)
        assert not any(password in t for t in texts)
        assert any("LOGIN *** ***" in t for t in texts)
        assert any("UID FETCH 1:*" in t for t in texts)
        assert any(t.startswith("greeting") for t in texts)
        assert any(t.startswith("OK (UID FETCH) · ") for t in texts)
    finally:
        plt.close(fig)


def test_live_pop3_pipelined_flight_holds_all_tops(pop3_pipelined_live):
    result, password = pop3_pipelined_live
    fig = ladder(result)
    try:
        assert len(arrows(fig)) == 1 + 2 * result.metrics["round_trips"]
        texts = all_text(fig)
        assert any("TOP 1 0 … TOP 6 0 · 6 commands in one flight" in t for t in texts)
        assert any(t.startswith("6× +OK (TOP)") for t in texts)
        assert any(t.startswith("PASS *** ·") for t in texts)
        assert not any(password in t for t in texts)
    finally:
        plt.close(fig)


def test_flight_bytes_add_up_to_the_session(imap_live):
    result, _ = imap_live
    fl = flights(result)
    assert sum(f.nbytes for f in fl if f.direction == "up") == result.metrics["bytes_up"]
    assert sum(f.nbytes for f in fl if f.direction == "down") == result.metrics["bytes_down"]
    assert sum(len(f.starts) for f in fl) == result.metrics["commands"]
    assert sum(len(f.completes) for f in fl) == result.metrics["commands"]


def test_ladder_of_an_analyzed_pcap_matches_the_live_one(tmp_path):
    from mailstudy.offline.analyze import analyze_pcap
    from mailstudy.study.experiment import Experiment, run_captured_session

    exp = Experiment(protocol="pop3", strategy="download-all", pop3_mode="delete", messages=6,
                     sizes="fixed-5k", seed=1)
    row, report = run_captured_session(exp, tmp_path / "s.pcap", backend="rebuilt")
    assert report.complete
    (session,) = analyze_pcap(tmp_path / "s.pcap").sessions
    fig = ladder(session)
    try:
        # POP3 without pipelining: greeting + 2 per command; the same count the trace gave.
        assert len(arrows(fig)) == 1 + 2 * row["commands"]
        assert len(arrows(fig)) == direction_runs((c.direction, len(c.data)) for c in session.connection.chunks)
        texts = all_text(fig)
        assert any(t.startswith("DELE 6 · 8 B") for t in texts)
        assert any(t.startswith("USER *** ·") for t in texts)
        assert not any("wonderland-42" in t for t in texts)
        assert not any("alice" in t for t in texts)
    finally:
        plt.close(fig)


def test_long_sessions_are_elided_with_a_count(pop3_pipelined_live):
    result, _ = pop3_pipelined_live
    total = len(flights(result))
    fig = ladder(result, max_rows=8)
    try:
        shown = len(arrows(fig))
        assert shown <= 8 - 1
        notes = [t for t in all_text(fig) if "exchanges …" in t]
        assert len(notes) == 1
        labels = [t for t in all_text(fig) if " · " in t]
        up = [t for t in labels if not t.startswith(("greeting", "+OK", "6× +OK", "response data"))]
        visible_cmds = sum(int(re.search(r"(\d+) commands in one flight", t).group(1))
                           if "commands in one flight" in t else 1 for t in up)
        hidden = int(re.search(r"… (\d+) exchanges …", notes[0]).group(1))
        assert hidden > 0
        assert hidden + visible_cmds == result.metrics["commands"]
        elided_flights = int(notes[0].split("(")[1].split(" flights")[0])
        assert elided_flights + shown == total
    finally:
        plt.close(fig)


def test_save_ladder_writes_a_png(imap_live, tmp_path):
    result, _ = imap_live
    out = save_ladder(result, tmp_path / "l.png")
    assert (tmp_path / "l.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.endswith("l.png")


def test_bad_input_is_one_clear_error():
    with pytest.raises(LadderError, match="SessionResult .* or a SessionAnalysis"):
        ladder(42)
    with pytest.raises(LadderError, match="max_rows"):
        ladder(object(), max_rows=1)
