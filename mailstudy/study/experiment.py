"""Experiments: parameters in, tidy rows out, each finished cell cached so an interrupted sweep resumes.

Why: a chart must be rebuildable from one frozen set of parameters. An :class:`Experiment` names everything a
session depends on (server, protocol, strategy, mailbox, seed, read fraction, batching, pipelining, the network
profile); running it starts a fresh server with a seeded corpus for every repeat, behind a link relay
(:class:`mailstudy.link.Link`) whenever the profile is not ``loopback``, (so a delete-mode run cannot change the next one)
and returns one row per session. :func:`sweep` runs many, caches each finished cell as a JSON file written
atomically, and accepts any ``concurrent.futures.Executor``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from functools import cache
from pathlib import Path

from mailstudy import __version__
from mailstudy.corpus import Corpus, generate, load
from mailstudy.link import Link, Profile, get_profile
from mailstudy.live.access import Known, SessionSpec, run_session
from mailstudy.live.params import SessionParams
from mailstudy.live.values import STRATEGIES, check_choice, check_count
from mailstudy.live.devices import Device
from mailstudy.outputs import check_folder, data_dir, write_atomically
from mailstudy.servers import ServerError, make_server

STRATEGY_LABELS = {
    ("imap", "header-first"): "IMAP header-first",
    ("imap", "download-all"): "IMAP download-all",
    ("pop3", "header-first"): "POP3 header-first",
    ("pop3", "download-all"): "POP3 download-all",
}


@cache
def server_version(kind: str) -> str:
    """The version a server of ``kind`` reports (``dovecot --version`` for Dovecot), asked once per process;
    ``"unavailable"`` when it cannot run here (its cells cannot run either)."""
    try:
        return make_server(kind).version
    except ServerError:
        return "unavailable"


@dataclass(frozen=True)
class Experiment:
    """One cell of a study. Byte and round-trip counts are deterministic for a given seed and server."""

    server: str = "embedded"
    protocol: str = "imap"
    strategy: str = "header-first"
    pop3_mode: str = "keep"
    messages: int = 200
    sizes: str = "buchner2009"
    seed: int = 0
    read_fraction: float = 0.0
    headers: str = "realistic"  # the corpus's header model: realistic (mail as it arrives) or the minimal control
    batch: bool = True
    pipelining: bool = False
    repeats: int = 1
    mailbox: str | None = None  # real mail (mbox, Maildir or .eml folder) instead of a generated corpus
    profile: str | Profile = "loopback"  # the network: a profile's name or a custom Profile
    preview: int = 0  # header-first: read the first N bytes of each opened message instead of all of it
    tls: str = "none"  # none (clear text), implicit (IMAPS/POP3S) or starttls: the server then serves TLS
    tls_version: str = "1.3"  # the TLS version the client asks for (the server offers 1.2 and 1.3)
    compress: bool = False  # IMAP COMPRESS=DEFLATE: the server offers it and the client asks for it

    def __post_init__(self) -> None:
        if isinstance(self.profile, dict):  # a cached row or from_dict gives the custom profile's fields
            object.__setattr__(self, "profile", get_profile(self.profile))
        check_choice("strategy", self.strategy, STRATEGIES)  # a cell runs a strategy; a client runs in a fleet
        self.params()  # every session value checked once, by the one rule for it (mailstudy.live.params)
        check_count("repeats", self.repeats, low=1)

    def params(self) -> SessionParams:
        """This cell's session, as the one validated parameter object."""
        return SessionParams(server=self.server, protocol=self.protocol, workload=self.strategy,
                             pop3_mode=self.pop3_mode, messages=self.messages, sizes=self.sizes,
                             mailbox=self.mailbox, seed=self.seed, read_fraction=self.read_fraction,
                             batch=self.batch, pipelining=self.pipelining, preview=self.preview,
                             profile=self.profile, headers=self.headers,
                             tls=self.tls, tls_version=self.tls_version, compress=self.compress)

    @property
    def link_profile(self) -> Profile:
        return get_profile(self.profile)

    def corpus(self, progress=None) -> Corpus:
        """The mailbox this cell delivers: ``messages`` generated ones, or the first ``messages`` of ``mailbox``
        (all of them when ``messages`` is 0). ``progress`` may wrap the generation (see :func:`generate`)."""
        if self.mailbox is None:
            if progress is None:
                return generate(self.messages, self.sizes, self.seed, headers=self.headers)
            return generate(self.messages, self.sizes, self.seed, progress=progress, headers=self.headers)
        loaded = load(self.mailbox)
        return loaded[: self.messages] if self.messages else loaded

    def spec(self) -> SessionSpec:
        return self.params().spec()

    @property
    def label(self) -> str:
        return STRATEGY_LABELS[(self.protocol, self.strategy)]

    def key(self) -> str:
        """A stable name for this cell's cache file: what the cell's rows depend on.

        That is the parameters, the library version, the server's version (an upgraded Dovecot must not answer
        from cells it never ran) and, for a mailbox on disk, the content of the messages it delivers (an edited
        mbox must not either); never the mailbox's path alone.
        """
        doc = {**asdict(self), "version": __version__, "server_version": server_version(self.server)}
        for name, default in (("profile", "loopback"), ("preview", 0), ("tls", "none"),  # keep the keys cells
                              ("tls_version", "1.3"), ("compress", False)):  # had before these
            if doc[name] == default:
                del doc[name]
        if self.mailbox is not None:
            digest = hashlib.sha256()
            for m in self.corpus():
                digest.update(bytes.fromhex(m.sha256))
            doc["mailbox"] = digest.hexdigest()  # the content, not the path: the same mail anywhere is one cell
        blob = json.dumps(doc, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @classmethod
    def from_dict(cls, d: dict) -> Experiment:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def capture_path(capture: str | Path, exp, repeat: int) -> Path:
    """Where repeat ``repeat`` of ``exp`` (anything with ``repeats``: an Experiment, a JmapCell) is captured."""
    path = Path(capture)
    return path.with_name(f"{path.stem}-r{repeat}{path.suffix}") if exp.repeats > 1 else path


def run_experiment(exp: Experiment, capture: str | Path | None = None, capture_backend: str = "auto",
                   reports: list | None = None, progress=None, results: list | None = None) -> list[dict]:
    """Run every repeat of ``exp`` on a fresh server; one tidy row per session.

    Through a link (a profile other than ``loopback``) the client connects to the relay, and a capture is
    taken on the client's side of it (the relay's ports), so the pcap's timestamps show the emulated delays.
    Each row carries the profile's name and parameters. With ``results``, each
    :class:`~mailstudy.live.access.SessionResult` is appended to it (what :func:`mailstudy.link.predict` reads).

    With ``capture``, each session is also recorded as a pcap there (``-rN`` added before the suffix when there
    are several repeats) with its JSON sidecar; the row says how (``capture_*``), and the
    :class:`~mailstudy.capture.CaptureReport` of each is appended to ``reports`` when a list is given.
    ``progress(items, total, desc)`` may wrap generating and delivering the mailbox in a progress bar.
    """
    from contextlib import nullcontext

    from mailstudy.capture import Capture, CaptureError, choose_backend
    from mailstudy.outputs import OutputError, check_output

    if capture is not None:
        choose_backend(capture_backend)  # fail with a clear CaptureError before starting anything
        for repeat in range(exp.repeats):
            try:
                check_output(capture_path(capture, exp, repeat), sidecar=True, what="capture")
            except OutputError as exc:
                raise CaptureError(str(exc)) from None
    corpus = exp.corpus(progress)
    known = Known(corpus.raws())
    profile = exp.link_profile
    rows = []
    for repeat in range(exp.repeats):
        server = make_server(exp.server, tls=exp.tls != "none", compress=exp.compress)
        server.mailboxes[server.account.user] = corpus.raws()
        if progress is not None:
            server.progress = progress
        with server:
            described = server.describe()
            upstreams = [(server.host, server.ports_for(protocol, exp.tls)) for protocol in ("imap", "pop3")]
            link = Link(profile, upstreams, seed=exp.seed + repeat) if profile.shaped else None
            with link or nullcontext():
                host, imap_port, pop3_port = (link.host, *link.ports) if link else (server.host, *
                                                                                     (p for _, p in upstreams))
                cap = None
                if capture is not None:
                    path = capture_path(capture, exp, repeat)
                    cap = Capture(path, [imap_port, pop3_port], backend=capture_backend, host=host)
                with cap or nullcontext():
                    result = run_session(host, imap_port, pop3_port, server.account.user,
                                         server.account.password, exp.spec(), known, Device(),
                                         tls_ca=server.tls_ca)
                result.link = profile if link else None
        if results is not None:
            results.append(result)
        row = {**asdict(exp), **result.row(), **described, "repeat": repeat, "label": exp.label,
               "mailbox_bytes": corpus.total_bytes, **profile.params()}
        if cap is not None:
            report = cap.finish(result.trace, {**asdict(exp), **described, "repeat": repeat})
            row.update(capture_path=str(report.path), capture_backend=report.backend,
                       capture_complete=report.complete, capture_rebuilt=report.rebuilt,
                       capture_reason=report.reason, capture_packets=report.packets)
            if reports is not None:
                reports.append(report)
        for k in ("host", "imap_port", "pop3_port", "imaps_port", "pop3s_port"):
            row.pop(k, None)
        rows.append(row)
    return rows


def run_captured_session(exp: Experiment, path: str | Path, backend: str = "auto", progress=None):
    """One session of ``exp`` recorded as a pcap at ``path``: returns ``(row, CaptureReport)``."""
    reports: list = []
    (row,) = run_experiment(replace(exp, repeats=1), capture=path, capture_backend=backend, reports=reports,
                            progress=progress)
    return row, reports[0]


def write_csv_atomically(df, path: str | Path) -> Path:
    """Write a DataFrame as CSV so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, df.to_csv(index=False))


def read_cell(path: Path) -> list[dict] | None:
    """A cached cell's rows, or None when there is none or it is damaged (not UTF-8, not JSON, not a non-empty
    list of rows): a damaged cell is simply run again, and its file replaced when the new rows are written."""
    try:
        cell = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: JSONDecodeError and UnicodeDecodeError
        return None
    if isinstance(cell, list) and cell and all(isinstance(r, dict) and r for r in cell):
        return cell
    return None


def sweep(experiments: Iterable[Experiment], cache_dir: str | Path | None = data_dir("cache"),
          executor: Executor | None = None, progress: bool = True,
          on_row: Callable[[dict], None] | None = None, run: Callable[..., list[dict]] | None = None):
    """Run each experiment once, reusing cached cells; returns a pandas DataFrame of all rows.

    A finished cell is written to ``cache_dir/<key>.json`` at once (atomically), so a sweep stopped midway
    resumes where it was. ``cache_dir`` defaults to ``data/cache`` under the project root
    (:func:`mailstudy.outputs.project_root`), never the working directory; None turns the cache off. With an
    ``executor`` the cells run through ``executor.submit``; without one they run here one at a time, which is
    what timing needs on two cores. ``run`` turns one cell into its rows (default :func:`run_experiment`); any
    frozen cell with ``key()`` and ``label`` works, e.g. a fleet's.
    """
    run = run or run_experiment
    import pandas as pd
    from tqdm.auto import tqdm

    exps = list(experiments)
    cache = check_folder(cache_dir, "cache folder") if cache_dir else None  # before any cell runs
    rows: list[dict] = []
    todo: list[Experiment] = []
    for exp in exps:
        cached = read_cell(cell_file(cache, exp)) if cache else None
        if cached is not None:
            rows.extend(cached)
        else:
            todo.append(exp)

    def done(exp: Experiment, cell_rows: list[dict]) -> None:
        if cache:
            write_atomically(cell_file(cache, exp), json.dumps(cell_rows, default=str))
        rows.extend(cell_rows)
        if on_row:
            for r in cell_rows:
                on_row(r)

    bar = tqdm(total=len(todo), desc="sessions", unit="cell", disable=not progress or not todo)
    try:
        if executor is None:
            for exp in todo:
                bar.set_postfix_str(f"{exp.server} {exp.label}")
                done(exp, run(exp))
                bar.update()
        else:
            futures = [(exp, executor.submit(run, exp)) for exp in todo]
            for exp, fut in futures:
                done(exp, fut.result())
                bar.update()
    finally:
        bar.close()
    return pd.DataFrame(rows)


def cell_file(cache: Path, cell) -> Path:
    """Where :func:`sweep` keeps ``cell``'s rows in the ``cache`` folder."""
    return Path(cache) / f"{cell.key()}.json"


def cell_rows(cell, cache_dir: str | Path | None = None, run: Callable[..., list[dict]] | None = None) -> list[dict]:
    """One cell's rows as :func:`sweep` gives them (rows read back from its cache carry what JSON keeps), read
    from ``cache_dir`` when a sweep or an earlier call ran the same cell there, else run (``run``, default
    :func:`run_experiment`) and kept there; ``None``: run, nothing kept. For code that needs one cell at a time
    (the claims) and should not run again what a notebook's sweep already ran."""
    run = run or run_experiment
    cache = check_folder(cache_dir, "cache folder") if cache_dir else None
    cached = read_cell(cell_file(cache, cell)) if cache else None
    if cached is not None:
        return cached
    rows = run(cell)
    if cache:
        write_atomically(cell_file(cache, cell), json.dumps(rows, default=str))
    return rows


@contextmanager
def count_executor(workers: int | None = None):
    """A process pool for cells whose results are counts (bytes, commands, round trips: they do not depend on
    the machine's load), one worker per core by default; ``None`` (run here, one at a time) when one worker is
    all there is. Timing cells must not use it (two cores cannot time two sessions fairly).

    The workers are spawned (a Jupyter kernel has threads, which fork would copy half-way), as children of this
    process, which waits for them when the pool closes: their CPU time is then counted as this process's
    children's (a fork server's workers are not, once the kernel that started it is stopped; bench/study.py)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = workers or len(os.sched_getaffinity(0))
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def grid(base: Experiment | None = None, **axes) -> list[Experiment]:
    """Every combination of the values in ``axes`` applied to ``base``: ``grid(messages=[50, 100])``."""
    cells = [base or Experiment()]
    for name, values in axes.items():
        cells = [replace(c, **{name: v}) for c in cells for v in values]
    return cells


def four_strategies(base: Experiment | None = None) -> list[Experiment]:
    """IMAP and POP3, header-first and download-all (POP3 in keep mode), on ``base``'s other parameters."""
    base = base or Experiment()
    return [replace(base, protocol=p, strategy=s) for p in ("imap", "pop3") for s in ("header-first",
                                                                                        "download-all")]


def medians(df, by: list[str] | None = None):
    """Median of every numeric column over repeats, grouped by the parameters (times are reported as medians)."""
    by = by or [c for c in ("server", "protocol", "strategy", "pop3_mode", "messages", "sizes", "seed",
                            "read_fraction", "batch", "pipelining", "profile", "preview", "label")
                if c in df.columns]
    numeric = df.select_dtypes("number").columns.difference(by + ["repeat"])
    return df.groupby(by, as_index=False)[list(numeric)].median()
