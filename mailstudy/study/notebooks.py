"""The notebook runner behind ``make study`` and ``mailstudy study``.

Why: a researcher reproduces every chart with one command. :func:`run_notebooks` executes each notebook with
papermill into ``build/``, writes an HTML copy beside it, and :func:`write_index` writes ``build/index.html``
listing each notebook with its question, its key figure and the time its run took.

A notebook says what it answers in its first markdown cell (the sentence after ``**Question:**``) and names its
key figure in its metadata (``metadata.mailstudy.key_figure``, a path under ``data/figures/``). A notebook whose
metadata names modules it needs (``metadata.mailstudy.needs``) that this build lacks is skipped and listed as
such, with the reason, instead of failing the whole study.
"""

from __future__ import annotations

import html
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mailstudy.errors import MailstudyError
from mailstudy.outputs import project_root, publish, sweep_parts, tmp_beside, write_atomically

PATTERN = "[0-9][0-9]-*.ipynb"


class NotebookError(MailstudyError, RuntimeError):
    """A notebook failed or none matched; the message is one line."""


@dataclass
class Run:
    """One executed notebook."""

    notebook: Path  # the executed copy in build/
    html: Path
    seconds: float
    question: str
    key_figure: Path | None
    quick: bool = False
    skipped: str = ""  # why it did not run (a package it needs is not in this build); "" when it ran


def available(notebooks: Path | None = None) -> list[Path]:
    """The notebooks there are (``notebooks/`` under the project root by default)."""
    return sorted(Path(notebooks or project_root() / "notebooks").glob(PATTERN))


def select(only: list[str] | None, notebooks: Path | None = None) -> list[Path]:
    """The notebooks whose names contain one of ``only`` (all without it); a NAME matching none is an error
    that lists the notebooks there are."""
    every = available(notebooks)
    if not every:
        raise NotebookError(f"no notebooks ({PATTERN}) in {notebooks or project_root() / 'notebooks'}")
    if not only:
        return every
    unmatched = [o for o in only if not any(o in nb.name for nb in every)]
    if unmatched:
        names = ", ".join(nb.stem for nb in every)
        raise NotebookError(f"no notebook matches {', '.join(map(repr, unmatched))}; the notebooks are: {names}")
    return [nb for nb in every if any(o in nb.name for o in only)]


def question_and_figure(nb_path: Path) -> tuple[str, str | None]:
    """The notebook's question (from its first markdown cell) and its key figure's path (from its metadata)."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    question = ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = re.search(r"\*\*Question:\*\*\s*(.+?)(?:\*\*How|\n\n|$)", cell.source, re.S)
            question = " ".join((found.group(1) if found else cell.source.splitlines()[0].lstrip("# ")).split())
            break
    return question, nb.metadata.get("mailstudy", {}).get("key_figure")


#: How many notebooks run at once. Most of a full study's wall time is sleeping through the link relay's emulated
#: round trips, not CPU: run one after another they took 38 min of wall for 24 min of CPU (2026-12-04, issue 17);
#: three side by side still used little more than one core each (01: 314 CPU s in 758 s, 03: 306 in 934, 04: 406
#: in 956, under a load of 6-9), so four keep two cores busy. Their outputs are distinct files (each notebook
#: writes its own tables and figures; the sweep cache's cells are written atomically under their key), and
#: servers take free ports.
JOBS = 4
#: The order notebooks start in when no earlier full run into ``build/`` timed them (a fresh clone): the longest
#: first (bench/study.py --together, 2026-12-04), so that the longest chain ends soonest; the others by name.
LONGEST_FIRST = ("04", "03", "01", "07", "06", "08")
#: Notebooks that start only once others have ended, because they read what those write: 06's claims read back
#: the sessions 01 ran (the sweep cache) instead of running them again.
AFTER = {"06": ("01",)}


def run_notebooks(quick: bool = False, build: Path | None = None, notebooks: Path | None = None,
                  only: list[str] | None = None, progress: bool = True, jobs: int = JOBS) -> list[Run]:
    """Execute the chosen ``notebooks/NN-*.ipynb`` with papermill (``QUICK`` set) into ``build/``, plus HTML
    copies and ``build/index.html``, ``jobs`` notebooks at a time (:data:`JOBS`; 1: one after another, with
    papermill's progress bars). A failing notebook raises :class:`NotebookError` naming it and its error, once
    the notebooks already running have finished (the ones not started yet are not started).

    ``notebooks`` and ``build`` default to ``notebooks/`` and ``build/`` under the project root, and the
    notebooks run in the project root (so their ``data/...`` paths land in the project whatever the working
    directory; see :mod:`mailstudy.outputs`)."""
    from mailstudy.caches import keep_caches_in_project

    chosen = select(only, notebooks)
    build = Path(build) if build is not None else project_root() / "build"
    keep_caches_in_project()  # the kernels inherit it: no ~/.ipython, no ~/.cache/matplotlib
    build.mkdir(parents=True, exist_ok=True)
    sweep_half_executed(build, notebooks)
    runs, todo = [], []
    for nb in chosen:
        out = build / nb.name
        missing = missing_needs(nb)
        if missing:
            runs.append(Run(out, out.with_suffix(".html"), 0.0, question_and_figure(nb)[0], None, quick,
                            skipped=missing))
        else:
            todo.append(nb)
    if jobs <= 1 or len(todo) <= 1:
        for nb in todo:
            runs.append(_described(nb, build, quick, execute_timed(nb, build / nb.name, quick, progress)))
    else:
        runs += _run_concurrently(todo, build, quick, jobs, progress)
    write_index(sorted(runs, key=lambda r: r.notebook.name), build, quick)
    return runs


def execute_timed(nb: Path, out: Path, quick: bool, progress: bool = False) -> float:
    """Execute ``nb`` into ``out`` (:func:`execute`) with this run's kernels; the wall seconds it took."""
    t0 = time.monotonic()
    with kernels_of_this_run() as manager:
        execute(nb, out, quick, progress, manager)
    return time.monotonic() - t0


def _described(nb: Path, build: Path, quick: bool, seconds: float) -> Run:
    """The :class:`Run` of ``nb``, executed into ``build`` in ``seconds``, with its HTML copy written."""
    import nbformat
    from nbconvert import HTMLExporter

    out = build / nb.name
    question, figure = question_and_figure(nb)
    page, _ = HTMLExporter().from_notebook_node(nbformat.read(out, as_version=4))
    write_atomically(out.with_suffix(".html"), page)
    return Run(out, out.with_suffix(".html"), seconds, question, Path(figure) if figure else None, quick)


def _run_concurrently(todo: list[Path], build: Path, quick: bool, jobs: int, progress: bool) -> list[Run]:
    """Execute ``todo`` ``jobs`` at a time, each in a spawned worker process (one kernel each; spawned, since
    papermill's event loop and the kernel's threads do not survive a fork), the longest first as the last full
    run into ``build`` timed them (:data:`LONGEST_FIRST` when it did not time them all), none before what it
    reads (:data:`AFTER`). Prints one line as each ends when ``progress``; a failure is raised as one
    :class:`NotebookError` naming every notebook that failed, after the running ones end (no other starts)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    earlier = _earlier_seconds(build)
    if all(nb.name in earlier for nb in todo):
        waiting = sorted(todo, key=lambda nb: -earlier[nb.name])
    else:
        rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
        waiting = sorted(todo, key=lambda nb: rank.get(nb.name[:2], len(rank)))  # stable: the rest by name
    runs, failed, running = [], [], {}
    pool = ProcessPoolExecutor(min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_start)
    try:
        while waiting or running:
            while len(running) < jobs and (nb := _next_ready(waiting, running.values())) is not None:
                waiting.remove(nb)
                running[pool.submit(_worker_execute, nb, build / nb.name, quick)] = nb
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                nb = running.pop(fut)
                try:
                    seconds, cpu = fut.result()
                    runs.append(_described(nb, build, quick, seconds))
                except Exception as exc:  # NotebookError; BrokenProcessPool when a worker died
                    failed.append(str(exc) if isinstance(exc, NotebookError) else
                                  f"{nb.name}: {type(exc).__name__}: {' '.join(str(exc).split())}")
                    waiting.clear()  # the running ones finish; the rest do not start
                    continue
                if progress:
                    print(f"{nb.stem}: {seconds:.0f} s wall, {cpu:.0f} CPU s", flush=True)
    except BaseException:  # stopped (a signal): each worker stops its kernel and removes its half notebook
        for proc in list(pool._processes.values()):  # the stdlib pool has no public way to stop its workers
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failed:
        raise NotebookError("; ".join(failed))
    return runs


def _next_ready(waiting: list[Path], running) -> Path | None:
    """The first of ``waiting`` whose :data:`AFTER` notebooks are neither waiting nor running (None: none is)."""
    busy = {nb.name[:2] for nb in [*waiting, *running]}
    return next((nb for nb in waiting if not busy & set(AFTER.get(nb.name[:2], ()))), None)


def _worker_start() -> None:
    """In each worker: a SIGTERM when mailstudy dies (even by ``kill -9``), which :func:`_worker_execute` turns
    into a clean stop."""
    import signal

    from mailstudy.processes import die_with_parent

    die_with_parent(signal.SIGTERM)


def _worker_execute(nb: Path, out: Path, quick: bool) -> tuple[float, float]:
    """:func:`execute_timed` in a worker, where a stop signal stops the notebook as it does in ``mailstudy``;
    its wall seconds and the CPU seconds of the worker and its children (the kernel and the pools it waited
    for; not Dovecot's daemons) meanwhile."""
    from mailstudy.processes import stop_on_signals

    cpu0 = _cpu_s()
    with stop_on_signals():
        seconds = execute_timed(nb, out, quick)
    return seconds, _cpu_s() - cpu0


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its waited-for children so far."""
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _earlier_seconds(build: Path) -> dict[str, float]:
    """Each notebook's run time in the earlier runs into ``build`` (``build/index.json``; {} when there is none)."""
    import json

    try:
        return {Path(d["notebook"]).name: float(d["seconds"]) for d in json.loads((build / "index.json").read_text())
                if not d.get("quick")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def sweep_half_executed(build: Path, notebooks: Path | None = None) -> None:
    """Remove the notebooks a ``kill -9`` of an earlier run left half executed in ``build`` (hidden part files
    whose owner no longer runs; see :func:`execute`)."""
    for nb in available(notebooks):
        sweep_parts(Path(build) / nb.name)


def execute(nb: Path, out: Path, quick: bool, progress: bool, manager) -> None:
    """Execute ``nb`` into ``out`` through a hidden ``.NAME.PID.XXXX.part`` beside it, published when the run
    ends: a notebook whose run was stopped (a signal) is removed, so ``build/`` never holds a half-executed one
    under its own name; after a ``kill -9`` its part file is swept by the next write into ``build/``
    (:func:`mailstudy.outputs.sweep_parts`). A notebook whose cell failed is published with its error cell
    (papermill marks it at the top), for the reader to see what failed."""
    import warnings

    import papermill as pm

    part = tmp_beside(out)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The specified file .* does not end in")  # our .part
            pm.execute_notebook(str(nb), str(part), parameters={"QUICK": quick}, cwd=str(project_root()),
                                progress_bar=progress, kernel_name="python3", kernel_manager_class=manager,
                                shutdown_kernel="immediate")
    except pm.PapermillExecutionError as exc:
        publish(part, out)
        raise NotebookError(f"{nb.name} stopped in cell {exc.exec_count}: {_why(exc, out)}") from None
    except BaseException:  # stopped by a signal (or papermill failed): no half-executed notebook stays
        part.unlink(missing_ok=True)
        raise
    publish(part, out)


@contextmanager
def kernels_of_this_run():
    """The kernel manager class for this run's kernels, which keeps their connection files (they hold each
    kernel's key) in a private folder ``mailstudy-kernels-PID-XXXX`` in the temporary folder instead of
    Jupyter's runtime folder, and stops each kernel at once on a stop (no graceful shutdown racing a running
    cell, which is what printed the kernel's ``ZMQError`` traceback). A guardian removes the folder and kills
    the kernel should mailstudy be killed with ``kill -9``; what even that leaves, :func:`sweep_dead` removes at
    the next start.

    The kernels talk over Unix sockets in that folder (``transport = "ipc"``), not TCP: jupyter_client picks free
    TCP ports, closes them and lets the kernel bind them, so a kernel started beside another could lose its port
    ("Address already in use"), and a TCP kernel warns that its traffic is not encrypted. A socket's path must
    stay under the kernel's 107-byte limit: :func:`mailstudy.processes.short_tempdir` keeps the folder's path short."""
    import uuid

    from jupyter_client.manager import AsyncKernelManager

    from mailstudy.processes import Guardian, short_tempdir, sweep_dead

    sweep_dead()
    guardian = Guardian()
    folder = short_tempdir("kernels")
    guardian.watch(folder)

    class Guarded(AsyncKernelManager):
        """A kernel whose connection file and sockets are in ``folder`` and whose process the guardian knows."""

        def __init__(self, **kw):
            super().__init__(**kw)
            name = f"kernel-{uuid.uuid4().hex[:12]}"  # short: each socket's path must fit in 107 bytes
            self.connection_file = str(folder / f"{name}.json")
            self.transport = "ipc"
            self.ip = str(folder / name)  # each socket is this path plus "-N"

        async def _async_post_start_kernel(self, **kw) -> None:
            pid = getattr(getattr(self.provisioner, "process", None), "pid", None)
            if pid:
                guardian.kill(pid)
            await super()._async_post_start_kernel(**kw)

    try:
        yield Guarded
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        guardian.release()


def missing_needs(nb_path: Path) -> str:
    """Why ``nb_path`` cannot run in this build ("needs mailstudy.link, not installed"), or "" when it can."""
    import importlib.util

    import nbformat

    needs = nbformat.read(nb_path, as_version=4).metadata.get("mailstudy", {}).get("needs", [])
    for module in needs:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # its parent package is missing
            found = False
        if not found:
            return f"needs {module}, which this build does not have"
    return ""


def _why(exc, executed: Path) -> str:
    """One line saying why a cell failed: the exception, or (for a ParameterError, which IPython shows as one
    printed line and reports without a name) the last line that cell printed."""
    if exc.ename and exc.ename != "CellExecutionError":
        return " ".join(f"{exc.ename}: {exc.evalue}".split())
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError):
        return "the cell raised an error"
    for cell in cells:
        if cell.get("execution_count") == exc.exec_count:
            text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            lines = [ln for ln in text.splitlines() if ln.strip()]
            if lines:
                return lines[-1].strip()
    return "the cell raised an error"


def _with_earlier_runs(runs: list[Run], build: Path) -> list[Run]:
    """``runs`` plus the notebooks an earlier call ran into the same ``build`` (``--only`` runs a few; the index
    still lists them all), remembered in ``build/index.json``; sorted by name."""
    import json

    memory = build / "index.json"
    earlier = {}
    try:
        earlier = {d["notebook"]: d for d in json.loads(memory.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no or damaged memory: the index lists this call's notebooks
    for r in runs:
        earlier[str(r.notebook)] = {"notebook": str(r.notebook), "html": str(r.html), "seconds": r.seconds,
                                    "question": r.question, "quick": r.quick, "skipped": r.skipped,
                                    "key_figure": str(r.key_figure) if r.key_figure else None}
    write_atomically(memory, json.dumps(sorted(earlier.values(), key=lambda d: d["notebook"]), indent=1))
    return [Run(Path(d["notebook"]), Path(d["html"]), d["seconds"], d["question"],
                Path(d["key_figure"]) if d["key_figure"] else None, d["quick"], d.get("skipped", ""))
            for d in sorted(earlier.values(), key=lambda d: d["notebook"])
            if d.get("skipped") or Path(d["notebook"]).exists()]


def write_index(runs: list[Run], build: Path, quick: bool) -> Path:
    """``build/index.html``: each notebook with its question, its key figure (copied beside) and its run time."""

    figures = build / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    runs = _with_earlier_runs(runs, build)
    rows = []
    for r in runs:
        img = "<i>no figure</i>"
        if r.key_figure and r.key_figure.exists():
            shutil.copy(r.key_figure, figures / r.key_figure.name)
            img = (f'<a href="figures/{html.escape(r.key_figure.name)}"><img src="figures/'
                   f'{html.escape(r.key_figure.name)}" width="640" style="max-width:100%"></a>')
        if r.skipped:
            rows.append(f"<tr><td>{html.escape(r.notebook.stem)}</td><td>{html.escape(r.question)}</td>"
                        f"<td><i>skipped: {html.escape(r.skipped)}</i></td><td>-</td></tr>")
            continue
        rows.append(f"<tr><td><a href=\"{html.escape(r.html.name)}\">{html.escape(r.notebook.stem)}</a></td>"
                    f"<td>{html.escape(r.question)}</td><td>{img}</td><td>{r.seconds:.1f} s</td></tr>")
    total = sum(r.seconds for r in runs)
    modes = sorted({"quick" if r.quick else "full" for r in runs})
    page = (f"<!doctype html><meta charset=utf-8><title>mailstudy: the study</title>"
            f"<style>body{{font-family:sans-serif;max-width:1400px;margin:2em auto}}td{{vertical-align:top;"
            f"padding:6px;border-bottom:1px solid #ddd}}</style><h1>mailstudy: the study</h1>"
            f"<p>{len(runs)} notebook{'s' if len(runs) != 1 else ''} executed ({' and '.join(modes)} mode) in "
            f"{total:.0f} s. Tables are under <code>data/results/</code>, figures under <code>data/figures/</code>."
            f"</p>"
            f"<table><tr><th>notebook</th><th>question</th><th>key figure</th><th>run time</th></tr>"
            + "".join(rows) + "</table>")
    return write_atomically(build / "index.html", page)
