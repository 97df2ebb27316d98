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
``ms-upload``, ``ms-error``, ``ms-live-*``) so the browser tests and a curious student can find them.
No protocol logic here: sessions, exchanges and metrics come from :mod:`mailstudy.offline.analyze`.
"""

from __future__ import annotations

import html
import io
import os
import tempfile
from pathlib import Path

from mailstudy.errors import MailstudyError
from mailstudy.offline.analyze import Analysis, SessionAnalysis, analyze_pcap
from mailstudy.outputs import project_root
from mailstudy.processes import owned_tempdir
from mailstudy.study.parameters import known_profiles

__all__ = ["Explorer", "ExplorerError", "example_captures", "open_capture", "open_upload", "session_options",
           "exchanges_html", "ladder_png", "bytes_png", "live_capture", "one_line",
           "examples_summary", "save_example_bytes"]

#: Columns of the exchanges table a student sees (credentials are already ``***`` in ``arguments``).
TABLE_COLUMNS = ["index", "command", "arguments", "status", "t_sent_s", "latency_s", "bytes_up", "bytes_down"]
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


def open_capture(path: str | os.PathLike) -> Analysis:
    """Analyze the capture at ``path``; a missing file, a folder or a capture without mail is an ExplorerError."""
    path = capture_path(path)
    if not str(path) or str(path) == ".":
        raise ExplorerError("type the path of a pcap or pcapng file")
    if path.is_dir():
        raise ExplorerError(f"{path} is a folder, not a capture file")
    if not path.exists():
        raise ExplorerError(f"{path}: no such file")
    analysis = analyze_pcap(path)  # PcapError: a one-line message of its own
    if not analysis.sessions:
        raise ExplorerError(f"{path.name}: no IMAP or POP3 session found ({analysis.connections} TCP connections)")
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
            analysis = open_capture(path)
        except Exception as exc:  # the temporary path means nothing to the student: name the upload instead
            raise ExplorerError(one_line(exc).replace(str(path), name)) from None
    analysis.path = name
    return analysis


def session_options(analysis: Analysis) -> list[tuple[str, int]]:
    """``(label, index)`` for each session: what a session dropdown shows."""
    out = []
    for s in analysis.sessions:
        m = s.metrics
        out.append((f"#{s.index} {s.protocol.upper()} {m['client']} -> {m['server']}: {m['commands']} commands, "
                    f"{m['bytes_down']:,} B down", s.index))
    return out


def exchanges_frame(session: SessionAnalysis):
    """The session's exchanges with the columns a student reads first."""
    frame = session.exchanges_frame()
    return frame[[c for c in TABLE_COLUMNS if c in frame.columns]]


def exchanges_html(session: SessionAnalysis, max_rows: int = 200) -> str:
    """The exchanges table as HTML, with one summary line above it."""
    m = session.metrics
    frame = exchanges_frame(session)
    head = (f"<p><b>{html.escape(session.protocol.upper())}</b> session #{session.index}: "
            f"{m['commands']} commands, {m['round_trips']} round trips, {m['bytes_up']:,} B up, "
            f"{m['bytes_down']:,} B down, {m['duration_s'] * 1000:.1f} ms</p>")
    more = f"<p>… {len(frame) - max_rows} more exchanges not shown</p>" if len(frame) > max_rows else ""
    table = frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.6f}", classes="ms-table")
    return head + table + more


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


def bytes_png(session: SessionAnalysis, title: str = "") -> bytes:
    """Bytes up and down per exchange as PNG bytes."""
    from mailstudy.faces.plots import bytes_per_exchange

    return _png(bytes_per_exchange(session.exchanges_frame(), title=title or "Bytes per exchange"))


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
    """One row per session of every example capture: what the notebook's static copy shows."""
    import pandas as pd

    frames = [analyze_pcap(p).sessions_frame().assign(capture=name)
              for name, p in example_captures(folder).items()]
    if not frames:
        raise ExplorerError(f"no example captures (*.pcap) in {folder or project_root() / 'captures'}")
    cols = ["capture", "session", "protocol", "encrypted", "bytes_up", "bytes_down", "commands", "round_trips",
            "duration_s"]
    return pd.concat(frames, ignore_index=True)[cols]


def save_example_bytes(folder: str | os.PathLike | None = None, name: str = "imap-header-first",
                       figures: str | os.PathLike | None = None) -> Path:
    """Save the bytes-per-exchange chart of one example capture's first session under ``figures``."""
    from mailstudy.faces.plots import bytes_per_exchange, save_figure

    examples = example_captures(folder)
    if name not in examples:
        raise ExplorerError(f"no example capture named {name!r}; have {', '.join(examples) or 'none'}")
    session = open_capture(examples[name]).sessions[0]
    fig = bytes_per_exchange(session.exchanges_frame(),
                             title=f"Bytes per exchange: {name} ({session.protocol.upper()}, embedded server)")
    return save_figure(fig, f"bytes-per-exchange-{name}", figures)


class Explorer:
    """The widgets: a capture picker, a session picker, the three views and a live-session panel.

    ``Explorer().ui`` is the widget to display. Methods named ``pick_*``, ``open_*`` and ``run_live`` are what
    the widgets call; a test may call them directly.
    """

    def __init__(self, captures: str | os.PathLike | None = None) -> None:
        import ipywidgets as w

        self.w = w
        self.examples = example_captures(captures)
        self.analysis: Analysis | None = None
        self.name = ""
        layout = w.Layout(width="auto")
        self.capture = w.Dropdown(options=[("(pick an example capture)", "")] + [(k, k) for k in self.examples],
                                  description="Example", layout=layout)
        # continuous_update off: the value arrives once, on Enter or when the box loses focus (ipywidgets 8's
        # replacement for on_submit)
        self.path = w.Text(placeholder="/path/to/any.pcap", description="Any path", continuous_update=False,
                           layout=w.Layout(width="50%"))
        self.open_button = w.Button(description="Open", icon="folder-open")
        self.upload = w.FileUpload(accept=".pcap,.pcapng,.cap", multiple=False, description="Upload")
        self.session = w.Dropdown(options=[], description="Session", layout=w.Layout(width="90%"))
        self.error = w.HTML(value="")
        self.status = w.HTML(value="<i>Pick a capture to begin.</i>")
        self.exchanges = w.HTML(value="")
        self.ladder = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.bytes = w.Image(format="png", layout=w.Layout(max_width="700px"))
        self.live_protocol = w.Dropdown(options=["imap", "pop3"], value="imap", description="Protocol")
        self.live_strategy = w.Dropdown(options=["header-first", "download-all"], description="Strategy")
        self.live_profile = w.Dropdown(options=known_profiles(), description="Network")
        self.live_messages = w.BoundedIntText(value=5, min=1, max=500, description="Messages")
        self.live_button = w.Button(description="Run a live session", icon="play", button_style="primary",
                                    layout=w.Layout(width="auto"))  # the default width cuts the label off
        for widget, cls in ((self.capture, "ms-capture"), (self.path, "ms-path"), (self.open_button, "ms-open"),
                            (self.upload, "ms-upload"), (self.session, "ms-session"), (self.error, "ms-error"),
                            (self.status, "ms-status"), (self.exchanges, "ms-exchanges"),
                            (self.ladder, "ms-ladder"), (self.bytes, "ms-bytes"),
                            (self.live_protocol, "ms-live-protocol"), (self.live_strategy, "ms-live-strategy"),
                            (self.live_profile, "ms-live-profile"), (self.live_messages, "ms-live-messages"),
                            (self.live_button, "ms-live-run")):
            widget.add_class(cls)
        self.capture.observe(self._guarded(lambda ch: self.pick_example(ch["new"])), names="value")
        self.open_button.on_click(self._guarded(lambda _b: self.open_typed_path(clicked=True)))
        self.path.observe(self._guarded(lambda _ch: self.open_typed_path()), names="value")
        self.upload.observe(self._guarded(lambda ch: self.open_uploaded(ch["new"])), names="value")
        self.session.observe(self._guarded(lambda ch: self._showing or self.pick_session(ch["new"])),
                             names="value")
        self._showing = False
        self._live_folder: Path | None = None
        self.live_button.on_click(self._guarded(lambda _b: self.run_live()))
        live = w.VBox([w.HTML("<b>Run a live session</b>: a fresh embedded server, one captured session"),
                       w.HBox([self.live_protocol, self.live_strategy]),
                       w.HBox([self.live_profile, self.live_messages]), self.live_button])
        picker = w.VBox([w.HTML("<b>Pick a capture</b>"), self.capture, w.HBox([self.path, self.open_button]),
                         self.upload])
        self.ui = w.VBox([w.HBox([picker, live]), self.error, self.status, self.session, self.exchanges,
                          w.HTML("<b>Ladder</b> (client left, server right, time down)"), self.ladder,
                          w.HTML("<b>Bytes per exchange</b>"), self.bytes])
        self.ui.add_class("ms-explorer")

    # ---- error handling -------------------------------------------------------------------------------------
    def _guarded(self, fn):
        """Wrap a widget callback: clear the error, run, and show any exception as one line."""

        def call(*args):
            self.error.value = ""
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - a student sees one line, never a traceback
                self.fail(exc)

        return call

    def fail(self, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else one_line(exc)
        self.error.value = f'<span style="color:#b00020">⚠ {html.escape(text)}</span>'

    # ---- actions ----------------------------------------------------------------------------------------------
    def pick_example(self, name: str) -> None:
        if name:
            self.show(open_capture(self.examples[name]), name)

    def open_path(self, path: str) -> None:
        self.show(open_capture(path), capture_path(path).name)

    def open_typed_path(self, clicked: bool = False) -> None:
        """Open the path in the box, unless it is what is on screen already: typing a path and clicking Open
        sends both the box's new value and the click. An empty box is an error only when Open was clicked."""
        typed = self.path.value.strip()
        if not typed and not clicked:
            return
        if self.analysis is not None and Path(self.analysis.path).resolve() == capture_path(typed).resolve():
            return
        self.open_path(typed)

    def open_uploaded(self, value) -> None:
        files = list(value or ())
        if not files:
            return
        f = files[0]
        self.show(open_upload(f["name"], bytes(f["content"])), f["name"])

    def run_live(self) -> None:
        self.status.value = "<i>running a live session…</i>"
        analysis, row = live_capture(self.live_protocol.value, self.live_strategy.value,
                                     int(self.live_messages.value), self.live_profile.value,
                                     folder=self._live_folder)
        self._live_folder = Path(analysis.path).parent  # the next live run writes beside this one
        self.show(analysis, f"live {self.live_protocol.value} {self.live_strategy.value} "
                            f"({self.live_profile.value}, {row['server']} {row.get('server_version', '')})")
        self.status.value += f" · saved as <code>{html.escape(analysis.path)}</code> (open it in Wireshark)"

    def show(self, analysis: Analysis, name: str) -> None:
        self.analysis, self.name = analysis, name
        self.status.value = (f"<b>{html.escape(name)}</b>: {len(analysis.sessions)} mail session(s), "
                             f"{analysis.stats.packets_total:,} packets")
        options = session_options(analysis)
        self._showing = True  # setting the options picks session 0; draw it once, below
        try:
            self.session.options = options
            self.session.index = 0
        finally:
            self._showing = False
        self.pick_session(options[0][1])

    def pick_session(self, index) -> None:
        if self.analysis is None or index is None:
            return
        s = self.analysis.sessions[int(index)]
        self.exchanges.value = exchanges_html(s)
        self.ladder.value = ladder_png(s, title=f"{self.name}: session #{s.index}")
        self.bytes.value = bytes_png(s, title=f"Bytes per exchange: {self.name}, session #{s.index}")
