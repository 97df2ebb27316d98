"""The pcap explorer behind notebook ``05-pcap-explorer`` and ``mailstudy explore``: pick a capture, pick a session,
see its exchanges, its ladder and its bytes per exchange; or run a live session and see it the same way.

Why a module of its own: a student who has never used Jupyter gets the explorer as a web page (Voilà), and a
notebook must stay a few lines long, so everything the widgets do lives here. The module has two halves:

* plain functions (:func:`open_capture`, :func:`open_upload`, :func:`session_options`, :func:`exchanges_html`,
  :func:`ladder_png`, :func:`bytes_png`, :func:`live_capture`), testable without a browser; they raise
  :class:`ExplorerError` (or the library's own errors) and never print;
* :class:`Explorer`, the ipywidgets face over them. Every callback goes through :meth:`Explorer._guarded`, which
  turns any exception into one line in the widget's error label: a student sees "not a pcap file: ..." and
  never a traceback.

Widgets carry CSS classes (``ms-capture``, ``ms-session``, ``ms-exchanges``, ``ms-ladder``, ``ms-bytes``,
``ms-upload``, ``ms-error``, ``ms-live-*``, ``ms-radio-*``) so the browser tests and a curious student can find them.
No protocol logic here: sessions, exchanges and metrics come from :mod:`mailstudy.offline.analyze`.
"""

from __future__ import annotations

import html
import io
import os
import tempfile
from pathlib import Path

from mailstudy.errors import MailstudyError
from mailstudy.faces import explorer_views as views
from mailstudy.faces.explorer_views import busiest_session, session_label, short_path
from mailstudy.net.pcap import PcapError
from mailstudy.offline.analyze import Analysis, SessionAnalysis, analyze_pcap
from mailstudy.outputs import project_root
from mailstudy.processes import owned_tempdir
from mailstudy.study.parameters import known_profiles


def radio_names() -> list[str]:
    """The built-in radio models' names, for the radio view's picker."""
    from mailstudy.energy.radios import MODELS

    return list(MODELS)

__all__ = ["Explorer", "ExplorerError", "example_captures", "open_capture", "open_upload", "session_options",
           "exchanges_html", "ladder_png", "bytes_png", "live_capture", "one_line",
           "examples_summary", "save_example_bytes", "short_path", "compare_png", "busiest_session", "shown_from_root", "on_network",
           "radio_view"]

#: Columns of the exchanges table a student sees (credentials are already ``***`` in ``arguments``).
TABLE_COLUMNS = ["index", "command", "arguments", "status", "t_sent_s", "latency_s", "bytes_up", "bytes_down"]
NO_EXAMPLE = "(pick an example capture)"
UPLOAD_LIMIT = 64 * 1024 * 1024  # bytes: a browser upload beyond this is refused before it is analyzed


class ExplorerError(MailstudyError, ValueError):
    """Something the explorer was asked cannot be done; the message is one line meant for the student."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line, prefixed with its kind when the message alone would not say it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (ExplorerError, OSError)) or type(exc).__name__.endswith("Error") and ":" in text:
        return text
    return f"{type(exc).__name__}: {text}"


def example_captures(folder: str | os.PathLike | None = None) -> dict[str, Path]:
    """The example captures by name (``imap-header-first`` -> its path), sorted; empty when there are none."""
    folder = Path(folder) if folder else project_root() / "captures"
    return {p.stem: p for p in sorted(folder.glob("*.pcap"))}


def capture_path(typed: str | os.PathLike) -> Path:
    """The file a typed path names: surrounding blanks dropped, ``~`` expanded."""
    return Path(str(typed).strip()).expanduser()


def _student_words(exc: BaseException, path: Path, shown: str) -> str:
    """A reader's error in a student's words, naming the file as the student named it."""
    text = one_line(exc).replace(str(path), shown)
    if path.name and path.name != shown:
        text = text.replace(f"{path.name}:", f"{shown}:", 1)
    if "magic 0x" in text:  # the reader names the first four bytes; a student needs to know what the file is not
        try:
            with open(path, "rb") as fh:
                head = fh.read(8)
        except OSError:
            head = b""
        text = (f"{shown}: not a pcap or pcapng file (what tcpdump and Wireshark save); it starts with "
                f"{head!r}")
    return text


def open_capture(path: str | os.PathLike, keylog: str | os.PathLike | None = None,
                 shown: str | None = None) -> Analysis:
    """Analyze the capture at ``path``; a missing file, a folder or a capture without mail is an ExplorerError.

    ``keylog``: a TLS key log (``SSLKEYLOGFILE`` format) that opens the capture's TLS sessions; without it, a
    ``NAME.keylog`` beside ``NAME.pcap`` is used when there is one. ``shown``: the name errors use (default: the
    path, shortened)."""
    path = capture_path(path)
    if not str(path) or str(path) == ".":
        raise ExplorerError("type the path of a pcap or pcapng file")
    shown = shown or short_path(path)
    if path.is_dir():
        raise ExplorerError(f"{shown} is a folder, not a capture file")
    if not path.exists():
        raise ExplorerError(f"{shown}: no such file")
    if not path.is_file():
        raise ExplorerError(f"{shown}: not a capture file (it is a device, a FIFO or a socket); "
                            f"give a pcap or pcapng file")
    try:
        analysis = analyze_pcap(path)
    except PcapError as exc:
        raise ExplorerError(_student_words(exc, path, shown)) from None
    keylog = Path(keylog) if keylog else path.with_suffix(".keylog")
    before = list(analysis.warnings)
    if keylog.is_file():
        from mailstudy.offline.decrypt import add_decrypted_sessions

        add_decrypted_sessions(analysis, keylog)
    if not analysis.sessions:
        said = [w for w in analysis.warnings if w not in before] + analysis.warnings  # the key log's word first
        why = f"; {said[0]}" if said else ""
        raise ExplorerError(f"{shown}: no IMAP or POP3 session found ({analysis.connections} TCP connections)"
                            f"{why}")
    return analysis


def open_upload(name: str, content: bytes) -> Analysis:
    """Analyze an uploaded file (its name and bytes) through a private temporary copy, removed afterwards."""
    if len(content) > UPLOAD_LIMIT:
        raise ExplorerError(f"{name}: {len(content):,} bytes is more than the explorer takes "
                            f"({UPLOAD_LIMIT:,}); use `mailstudy analyze` for big captures")
    with tempfile.TemporaryDirectory(prefix="mailstudy-upload-") as tmp:
        path = Path(tmp) / (Path(name).name or "upload.pcap")
        path.write_bytes(bytes(content))
        try:
            analysis = open_capture(path, shown=name)
        except Exception as exc:  # the temporary path means nothing to the student: name the upload instead
            raise ExplorerError(one_line(exc).replace(str(path), name)) from None
    analysis.path = name
    return analysis


def session_options(analysis: Analysis) -> list[tuple[str, int]]:
    """``(label, index)`` for each session: what a session dropdown shows (marks such as [empty] included)."""
    return [(session_label(s, analysis), s.index) for s in analysis.sessions]


def exchanges_frame(session: SessionAnalysis):
    """The session's exchanges with the columns a student reads first."""
    frame = session.exchanges_frame()
    return frame[[c for c in TABLE_COLUMNS if c in frame.columns]]


def exchanges_html(session: SessionAnalysis, max_rows: int = 2000, analysis: Analysis | None = None) -> str:
    """The exchanges table as HTML (:func:`mailstudy.faces.explorer_views.exchanges_html`)."""
    return views.exchanges_html(session, analysis, max_rows=max_rows)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=90)
    finally:
        plt.close(fig)
    return buf.getvalue()


def ladder_png(session: SessionAnalysis, title: str = "") -> bytes:
    """The session's ladder diagram as PNG bytes."""
    from mailstudy.faces.ladder import ladder

    return _png(ladder(session, max_rows=40, title=title or None))


GROUP_ABOVE = 40  # exchanges: a longer session's bytes chart has one bar pair per command instead


def bytes_png(session: SessionAnalysis, title: str = "") -> bytes:
    """Bytes up and down per exchange as PNG bytes; beyond :data:`GROUP_ABOVE` exchanges, per command (summed,
    with the count in the label), so a 200-message session stays readable."""
    from mailstudy.faces.plots import bytes_per_exchange

    frame = session.exchanges_frame()
    if len(frame) <= GROUP_ABOVE:
        return _png(bytes_per_exchange(frame, title=title or "Bytes per exchange"))
    grouped = frame.groupby("command", sort=False).agg(n=("index", "size"), bytes_up=("bytes_up", "sum"),
                                                       bytes_down=("bytes_down", "sum")).reset_index()
    grouped["command"] = [f"{c} ×{n}" for c, n in zip(grouped["command"], grouped["n"])]
    fig = bytes_per_exchange(grouped, title=(title or "Bytes") + f" (grouped by command: {len(frame):,} exchanges)")
    fig.axes[-1].set_xlabel("command (× how many times; bytes summed), in the order first sent")
    return _png(fig)


def compare_png(a: SessionAnalysis, b: SessionAnalysis, name_a: str, name_b: str) -> bytes:
    """Two sessions' ladders side by side, drawn to scale on one time axis (ms since connect)."""
    from mailstudy.faces.ladder import ladder_to_scale

    return _png(ladder_to_scale([a, b], [f"A: {name_a}", f"B: {name_b}"]))


def on_network(session: SessionAnalysis, profile: str, title: str = "") -> tuple[str, bytes]:
    """(one line of HTML, PNG): the session's time as captured and on ``profile`` (its flights replayed through
    the model, :func:`mailstudy.faces.ladder.replayed`), and both ladders to scale on one time axis."""
    from mailstudy.faces.ladder import ladder_on, replayed
    from mailstudy.link.profiles import get_profile

    p = get_profile(profile)
    arrows = replayed(session, p)
    modelled = max((a.t_end for a in arrows), default=0.0)
    trips = session.metrics["round_trips"]
    line = (f"<p><b>on {html.escape(p.name)}</b> (round trip {p.rtt_s * 1000:,.0f} ms; the model replays this "
            f"session's flights): <b>{views.fmt_ms(modelled)} ms</b>, against "
            f"{views.fmt_ms(session.metrics['duration_s'])} ms as captured. Its {trips:,} round trips alone wait "
            f"{trips * p.rtt_s * 1000:,.0f} ms there (plus the greeting's). The profile's source: "
            f"{html.escape(p.source or 'mailstudy')}</p>")
    return line, _png(ladder_on(session, [p], title, replays=[arrows]))


def radio_view(session: SessionAnalysis, radio: str = "lte", path: str | os.PathLike | None = None,
               title: str = "") -> tuple[str, bytes]:
    """(HTML table, PNG): what the session cost a phone's radio on ``radio`` (``lte``, ``3g``, ``wifi``): each
    state's seconds and joules (:func:`mailstudy.energy.ledger.ledger` over every packet of the session,
    :func:`mailstudy.energy.pcap.session_activities`), and the states drawn under the session's ladder
    (:func:`mailstudy.faces.radio.radio_figure`). ``path``: the capture (default: the session's file)."""
    from mailstudy.energy.ledger import CATEGORIES, ledger
    from mailstudy.energy.pcap import session_activities
    from mailstudy.energy.radios import get_model
    from mailstudy.faces.radio import COLORS, radio_figure

    model = get_model(radio)
    acts = session_activities(path or session.file, session)
    if not acts:
        raise ExplorerError(f"session #{session.index} has no packets to put on a radio")
    led = ledger(model, acts)
    total = led.total_j
    rows = "".join(
        f'<tr><td><span style="color:{COLORS[c]}">■</span> {c}</td><td>{led.seconds[c]:,.3f}</td>'
        f"<td>{led.joules[c]:,.3f}</td><td>{(led.joules[c] / total if total else 0):.0%}</td></tr>"
        for c in CATEGORIES)
    table = (f"<p><b>On {html.escape(model.title)}</b>: this session's {len(acts):,} packets cost the radio "
             f"<b>{total:,.3f} J</b> in {led.end - led.start:,.3f} s, {led.tail_share:.0%} of it in the tail "
             f"after the last packet ({led.promotions} promotion(s)). Each figure's source: "
             f"<code>mailstudy energy --show-model --radio {html.escape(model.name)}</code>.</p>"
             f'<table class="ms-radio-states"><tr><th>state</th><th>seconds</th><th>joules</th><th>share</th></tr>'
             f"{rows}<tr><td><b>total</b></td><td>{led.end - led.start:,.3f}</td><td><b>{total:,.3f}</b></td>"
             f"<td>100%</td></tr></table>")
    fig = radio_figure(led, session, title=f"{title + ': ' if title else ''}{model.name}, {total:.3g} J, tail "
                                           f"{led.tail_share:.0%} of it")
    return table, _png(fig)


def live_capture(protocol: str = "imap", strategy: str = "header-first", messages: int = 5,
                 profile: str = "loopback", seed: int = 0, folder: str | os.PathLike | None = None,
                 read_fraction: float = 0.4) -> tuple[Analysis, dict]:
    """Run one session against a fresh embedded server, capture it, analyze the capture.

    Returns ``(analysis, row)``: the capture seen through the pcap path and the client's own row. Without
    ``folder`` the pcap goes into a folder of mailstudy's own (``mailstudy-live-PID-…`` in the temporary
    folder): it stays while this process runs, and the next mailstudy start removes it once the process is gone.
    """
    from dataclasses import fields

    from mailstudy.study.experiment import Experiment, run_captured_session

    if not isinstance(messages, int) or not 1 <= messages <= 500:
        raise ExplorerError(f"messages must be a whole number from 1 to 500, not {messages!r}")
    params = dict(protocol=protocol, strategy=strategy, messages=messages, sizes="buchner2009", seed=seed,
                  read_fraction=read_fraction)
    if profile != "loopback":
        if "profile" not in {f.name for f in fields(Experiment)}:
            raise ExplorerError(f"network profile {profile!r} needs the emulated link, not in this build")
        params["profile"] = profile
    exp = Experiment(**params)
    folder = Path(folder) if folder else owned_tempdir("live")
    folder.mkdir(parents=True, exist_ok=True)
    pcap = folder / f"live-{protocol}-{strategy}-{profile}.pcap"
    row, report = run_captured_session(exp, pcap)
    analysis = open_capture(report.path)
    return analysis, row


def examples_summary(folder: str | os.PathLike | None = None):
    """One row per session of every example capture (TLS ones opened with the key log beside them): what the
    notebook's static copy shows, with column names in words and their units."""
    import pandas as pd

    frames = [open_capture(p, shown=name).sessions_frame().assign(capture=name)
              for name, p in example_captures(folder).items()]
    if not frames:
        raise ExplorerError(f"no example captures (*.pcap) in {folder or project_root() / 'captures'}")
    frame = pd.concat(frames, ignore_index=True)
    frame["duration_s"] = (frame["duration_s"] * 1000).round(3)
    words = {"capture": "capture", "session": "session", "protocol": "protocol", "encrypted": "TLS",
             "bytes_up": "bytes up", "bytes_down": "bytes down", "commands": "commands",
             "round_trips": "round trips", "duration_s": "duration (ms)"}
    return frame[list(words)].rename(columns=words)


def shown_from_root(path: str | os.PathLike) -> str:
    """``path`` relative to the project root when it lies under it (what a notebook prints), else shortened."""
    try:
        return str(Path(path).resolve().relative_to(project_root()))
    except ValueError:
        return short_path(path)


def save_example_bytes(folder: str | os.PathLike | None = None, name: str = "imap-header-first",
                       figures: str | os.PathLike | None = None) -> Path:
    """Save the bytes-per-exchange chart of one example capture's first session under ``figures``."""
    from mailstudy.faces.plots import bytes_per_exchange, save_figure

    examples = example_captures(folder)
    if name not in examples:
        raise ExplorerError(f"no example capture named {name!r}; have {', '.join(examples) or 'none'}")
    session = open_capture(examples[name]).sessions[0]
    fig = bytes_per_exchange(session.exchanges_frame(),
                             conditions=f"{name}; {session.protocol.upper()}; embedded server")
    return save_figure(fig, f"bytes-per-exchange-{name}", figures)


class Explorer:
    """The widgets: a capture picker, a session picker, the views, a compare view and a live-session panel.

    ``Explorer().ui`` is the widget to display. Methods named ``pick_*``, ``open_*``, ``keep_for_compare`` and
    ``run_live`` are what the widgets call; a test may call them directly.

    What the screen promises: it always shows one capture or none. An error clears the views and the pickers
    (the example list names only the capture on screen), so nothing under an error belongs to another file. While
    it works, a busy line shows and the controls are disabled; the views are computed first and then set together.
    """

    def __init__(self, captures: str | os.PathLike | None = None) -> None:
        import ipywidgets as w

        self.w = w
        self.examples = example_captures(captures)
        self.analysis: Analysis | None = None
        self.name = ""
        self.kept: tuple[SessionAnalysis, str] | None = None  # the session pinned for the compare view
        self._quiet = False  # set while the code itself changes a picker: no callback runs then
        layout = w.Layout(width="auto")
        self.capture = w.Dropdown(options=[(NO_EXAMPLE, "")] + [(k, k) for k in self.examples],
                                  description="Example", layout=layout)
        # continuous_update off: the value arrives once, on Enter or when the box loses focus (ipywidgets 8's
        # replacement for on_submit)
        self.path = w.Text(placeholder="/path/to/any.pcap", description="Any path", continuous_update=False,
                           layout=w.Layout(width="50%"))
        self.open_button = w.Button(description="Open", icon="folder-open")
        # the counter beside "Upload" is the number of files in its value: kept at 1 only while the uploaded
        # file is the one on screen, reset to 0 when it is refused or another capture opens (so it counts only
        # accepted files, and choosing the same file again is a change the widget reports)
        self.upload = w.FileUpload(accept=".pcap,.pcapng,.cap", multiple=False, description="Upload")
        self.session = w.Dropdown(options=[], description="Session", layout=w.Layout(width="90%"))
        self.busy = w.HTML(value="")
        self.error = w.HTML(value="")
        self.status = w.HTML(value="<i>Pick a capture to begin.</i>")
        self.warnings = w.HTML(value="")
        self.exchanges = w.HTML(value="")
        self.exchange = w.Select(options=[], rows=8, description="Exchange", layout=w.Layout(width="60%"))
        self.exchange_text = w.HTML(value="")
        self.ladder = w.Image(format="png", layout=w.Layout(max_width="900px", display="none"))
        self.bytes = w.Image(format="png", layout=w.Layout(max_width="700px", display="none"))
        networks = [p for p in known_profiles() if p != "loopback"]
        self.network = w.SelectionSlider(options=networks or ["loopback"], value=("4g" if "4g" in networks else
                                                                                  (networks or ["loopback"])[0]),
                                         description="Network", continuous_update=False,
                                         layout=w.Layout(width="60%"))
        self.network_summary = w.HTML(value="")
        self.network_ladder = w.Image(format="png", layout=w.Layout(max_width="1000px", display="none"))
        self.radio_on = w.Checkbox(value=False, description="Show the radio view", indent=False)
        self.radio_model = w.Dropdown(options=radio_names(), value="lte", description="Radio")
        self.radio_table = w.HTML(value="")
        self.radio = w.Image(format="png", layout=w.Layout(max_width="900px", display="none"))
        self.keep_button = w.Button(description="Keep this session for comparison", icon="thumb-tack",
                                    layout=w.Layout(width="auto"), disabled=True)
        self.compare_table = w.HTML(value="")
        self.compare = w.Image(format="png", layout=w.Layout(max_width="1100px", display="none"))
        self.live_protocol = w.Dropdown(options=["imap", "pop3"], value="imap", description="Protocol")
        self.live_strategy = w.Dropdown(options=["header-first", "download-all"], description="Strategy")
        self.live_profile = w.Dropdown(options=known_profiles(), description="Network")
        self.live_messages = w.BoundedIntText(value=5, min=1, max=500, description="Messages")
        self.live_button = w.Button(description="Run a live session", icon="play", button_style="primary",
                                    layout=w.Layout(width="auto"))  # the default width cuts the label off
        for widget, cls in ((self.capture, "ms-capture"), (self.path, "ms-path"), (self.open_button, "ms-open"),
                            (self.upload, "ms-upload"), (self.session, "ms-session"), (self.error, "ms-error"),
                            (self.busy, "ms-busy"), (self.status, "ms-status"), (self.warnings, "ms-warnings"),
                            (self.exchanges, "ms-exchanges"), (self.exchange, "ms-exchange"),
                            (self.exchange_text, "ms-exchange-text"), (self.ladder, "ms-ladder"),
                            (self.bytes, "ms-bytes"), (self.keep_button, "ms-keep"),
                            (self.compare_table, "ms-compare-table"), (self.compare, "ms-compare"),
                            (self.network, "ms-network"), (self.network_summary, "ms-network-summary"),
                            (self.network_ladder, "ms-network-ladder"), (self.radio_on, "ms-radio-toggle"),
                            (self.radio_model, "ms-radio-model"), (self.radio_table, "ms-radio-table"),
                            (self.radio, "ms-radio"),
                            (self.live_protocol, "ms-live-protocol"), (self.live_strategy, "ms-live-strategy"),
                            (self.live_profile, "ms-live-profile"), (self.live_messages, "ms-live-messages"),
                            (self.live_button, "ms-live-run")):
            widget.add_class(cls)
        self._controls = (self.capture, self.path, self.open_button, self.upload, self.session, self.exchange,
                          self.live_button, self.keep_button, self.network, self.radio_on, self.radio_model)
        self.capture.observe(self._guarded(lambda ch: self.pick_example(ch["new"])), names="value")
        self.open_button.on_click(self._guarded(lambda _b: self.open_typed_path(clicked=True)))
        self.path.observe(self._guarded(lambda _ch: self.open_typed_path()), names="value")
        self.upload.observe(self._guarded(lambda ch: self.open_uploaded(ch["new"])), names="value")
        self.session.observe(self._guarded(lambda ch: self.pick_session(ch["new"])), names="value")
        self.exchange.observe(self._guarded(lambda ch: self.pick_exchange(ch["new"]), busy=False), names="value")
        self.keep_button.on_click(self._guarded(lambda _b: self.keep_for_compare()))
        self.network.observe(self._guarded(lambda ch: self.pick_network(ch["new"])), names="value")
        self.radio_on.observe(self._guarded(lambda _ch: self.show_radio()), names="value")
        self.radio_model.observe(self._guarded(lambda _ch: self.show_radio()), names="value")
        self._live_folder: Path | None = None
        self.live_button.on_click(self._guarded(lambda _b: self.run_live()))
        live = w.VBox([w.HTML("<b>Run a live session</b>: a fresh embedded server, one captured session"),
                       w.HBox([self.live_protocol, self.live_strategy]),
                       w.HBox([self.live_profile, self.live_messages]), self.live_button])
        picker = w.VBox([w.HTML("<b>Pick a capture</b>"), self.capture, w.HBox([self.path, self.open_button]),
                         self.upload])
        self.ui = w.VBox([w.HBox([picker, live]), self.busy, self.error, self.status, self.session, self.warnings,
                          self.exchanges,
                          w.HTML("<b>Read an exchange</b>: click one to see what its command and its reply said"),
                          w.HBox([self.exchange, self.exchange_text]),
                          w.HTML("<b>Ladder</b> (client left, server right, time down)"), self.ladder,
                          w.HTML("<b>Bytes per exchange</b>"), self.bytes,
                          w.HTML("<b>On another network</b>: the same flights replayed through the model, drawn to "
                                 "scale in time"), self.network, self.network_summary, self.network_ladder,
                          w.HTML("<b>On a phone's radio</b>: each state's time and energy under the exchanges (LTE "
                                 "and Wi-Fi after Huang et al., MobiSys 2012; 3G after Qian et al., MobiSys 2011)"),
                          w.HBox([self.radio_on, self.radio_model]), self.radio_table, self.radio,
                          w.HTML("<b>Compare two sessions</b>: keep one, then open another (a capture, a "
                                 "session or a live run)"), self.keep_button, self.compare_table, self.compare])
        self.ui.add_class("ms-explorer")

    # ---- error handling and the busy sign ---------------------------------------------------------------------
    def _guarded(self, fn, busy: bool = True):
        """Wrap a widget callback: skip it while the code sets a picker itself; clear the error; show the busy
        sign and disable the controls while it runs; show any exception as one line and clear the screen."""

        def call(*args):
            if self._quiet:
                return
            self.error.value = ""
            was = [c.disabled for c in self._controls]
            if busy:
                self.busy.value = '<span style="color:#8a6d00">⏳ working…</span>'
                for c in self._controls:
                    c.disabled = True
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - a student sees one line, never a traceback
                self.fail(exc)
            finally:
                if busy:
                    self.busy.value = ""
                    for c, d in zip(self._controls, was):
                        c.disabled = d
                    self.keep_button.disabled = self.analysis is None

        return call

    def fail(self, exc: BaseException | str) -> None:
        """Show ``exc`` as one line and clear what is on screen: nothing under an error may belong to another
        capture."""
        text = exc if isinstance(exc, str) else one_line(exc)
        self.clear()
        self.error.value = f'<span style="color:#b00020">⚠ {html.escape(text)}</span>'

    def _set_quietly(self, widget, **values) -> None:
        self._quiet = True
        try:
            for k, v in values.items():
                setattr(widget, k, v)
        finally:
            self._quiet = False

    def clear(self) -> None:
        """No capture on screen: empty views, no session, the example list back to its prompt."""
        self.analysis, self.name = None, ""
        self.status.value = "<i>Pick a capture to begin.</i>"
        for widget in (self.warnings, self.exchanges, self.exchange_text):
            widget.value = ""
        self.network_summary.value = self.radio_table.value = ""
        for img in (self.ladder, self.bytes, self.network_ladder, self.radio):
            img.layout.display = "none"
            img.value = b""
        self._set_quietly(self.session, options=[])
        self._set_quietly(self.exchange, options=[])
        self._set_quietly(self.capture, value="")
        self._set_quietly(self.upload, value=())

    # ---- actions ----------------------------------------------------------------------------------------------
    def pick_example(self, name: str) -> None:
        if name:
            self._set_quietly(self.path, value="")
            self.show(open_capture(self.examples[name], shown=name), name, source="example")

    def open_path(self, path: str) -> None:
        self.show(open_capture(path, shown=short_path(capture_path(path))), capture_path(path).name, source="path")

    def open_typed_path(self, clicked: bool = False) -> None:
        """Open the path in the box, unless it is what is on screen already: typing a path and clicking Open
        sends both the box's new value and the click. An empty box is an error only when Open was clicked."""
        typed = self.path.value.strip()
        if not typed and not clicked:
            return
        if (self.analysis is not None and typed and Path(self.analysis.path).exists()
                and Path(self.analysis.path).resolve() == capture_path(typed).resolve()):
            return
        self.open_path(typed)

    def open_uploaded(self, value) -> None:
        files = list(value or ())
        if not files:
            return
        f = files[0]
        self._set_quietly(self.path, value="")
        try:
            analysis = open_upload(f["name"], bytes(f["content"]))
        except Exception:
            self._set_quietly(self.upload, value=())  # a refused file is not counted
            raise
        self.show(analysis, f["name"], source="upload")

    def run_live(self) -> None:
        self._set_quietly(self.path, value="")
        self.status.value = "<i>running a live session…</i>"
        analysis, row = live_capture(self.live_protocol.value, self.live_strategy.value,
                                     int(self.live_messages.value), self.live_profile.value,
                                     folder=self._live_folder)
        self._live_folder = Path(analysis.path).parent  # the next live run writes beside this one
        self.show(analysis, f"live {self.live_protocol.value} {self.live_strategy.value} "
                            f"({self.live_profile.value}, {row['server']} {row.get('server_version', '')})",
                  source="live")
        self.status.value += (f" · saved as <code>{html.escape(Path(analysis.path).name)}</code> in the "
                              f"temporary folder <code>{html.escape(short_path(Path(analysis.path).parent))}"
                              f"</code> (open it in Wireshark)")

    def show(self, analysis: Analysis, name: str, source: str = "") -> None:
        """Put ``analysis`` on screen with its busiest session; the pickers then name only this capture."""
        self.analysis, self.name = analysis, name
        if source != "example":
            self._set_quietly(self.capture, value="")
        if source != "upload":
            self._set_quietly(self.upload, value=())
        if source != "path":
            self._set_quietly(self.path, value="")  # the box names no other file than the one on screen
        self.status.value = (f"<b>{html.escape(name)}</b>: {len(analysis.sessions)} mail session(s), "
                             f"{analysis.stats.packets_total:,} packets")
        first = busiest_session(analysis)
        self._set_quietly(self.session, options=session_options(analysis), value=first)
        self.pick_session(first)

    def pick_session(self, index) -> None:
        if self.analysis is None or index is None:
            return
        s = self.analysis.sessions[int(index)]
        title = f"{self.name}: session #{s.index}"
        # everything is computed first, then set together: the views never show two different sessions
        warnings = views.warnings_html(s, self.analysis)
        table = exchanges_html(s, analysis=self.analysis)
        ladder, chart = ladder_png(s, title=title), bytes_png(s, title=f"Bytes per exchange: {title}")
        choices = views.exchange_choices(s)
        on_network = self._network_views(s)
        self.warnings.value, self.exchanges.value = warnings, table
        self.ladder.value, self.bytes.value = ladder, chart
        self.network_summary.value, self.network_ladder.value = on_network
        self.ladder.layout.display = self.bytes.layout.display = self.network_ladder.layout.display = None
        self._set_quietly(self.exchange, options=choices, value=None)
        self.exchange_text.value = "<i>click an exchange on the left</i>" if choices else ""
        self.show_radio()
        self._show_compare()

    def show_radio(self) -> None:
        """The radio view of the session on screen, when it is switched on (hidden otherwise)."""
        if self.analysis is None or not self.radio_on.value or self.session.value is None:
            self.radio_table.value, self.radio.value = "", b""
            self.radio.layout.display = "none"
            return
        s = self.analysis.sessions[int(self.session.value)]
        table, picture = radio_view(s, self.radio_model.value, self.analysis.path,
                                    title=f"{self.name}: session #{s.index}")
        self.radio_table.value, self.radio.value = table, picture  # set together, as the other views
        self.radio.layout.display = None

    def _network_views(self, s: SessionAnalysis) -> tuple[str, bytes]:
        return on_network(s, self.network.value, title=f"#{s.index}")

    def pick_network(self, name) -> None:
        if self.analysis is None or name is None:
            return
        s = self.analysis.sessions[int(self.session.value)]
        self.network_summary.value, self.network_ladder.value = self._network_views(s)

    def pick_exchange(self, index) -> None:
        if self.analysis is None or index is None:
            return
        s = self.analysis.sessions[int(self.session.value)]
        self.exchange_text.value = views.exchange_html(s, int(index))

    def keep_for_compare(self) -> None:
        """Pin the session on screen as A; the next session shown is compared with it."""
        if self.analysis is None:
            raise ExplorerError("open a capture first, then keep one of its sessions")
        s = self.analysis.sessions[int(self.session.value)]
        self.kept = (s, f"{self.name} #{s.index}")
        self._show_compare()

    def _show_compare(self) -> None:
        if self.kept is None or self.analysis is None:
            return
        a, name_a = self.kept
        b = self.analysis.sessions[int(self.session.value)]
        if b is a:
            self.compare_table.value = (f"<p>Kept <b>A: {html.escape(name_a)}</b>; now open another session to "
                                        f"compare with it.</p>")
            self.compare.layout.display = "none"
            return
        name_b = f"{self.name} #{b.index}"
        table, picture = views.compare_html(a, b, name_a, name_b), compare_png(a, b, name_a, name_b)
        self.compare_table.value, self.compare.value = table, picture  # set together, as the other views
        self.compare.layout.display = None
