"""The study itself: the result tables and charts `make study` rebuilds, and the notebook runner.

Why: a researcher reproduces every chart with one command. The notebooks call the functions here (logic lives
in the package); :func:`run_notebooks` executes each notebook with papermill into ``build/`` and writes an HTML
copy beside it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .experiment import Experiment, four_strategies, sweep, write_csv_atomically
from .plots import bytes_down_vs_mailbox, save_figure

RESULTS = Path("data/results")
FIGURES = Path("data/figures")
NOTEBOOKS = Path("notebooks")


def available_servers() -> list[str]:
    """``embedded`` always; ``dovecot`` when its binaries are installed and usable here."""
    from .servers.dovecot import dovecot_available

    return ["embedded"] + (["dovecot"] if dovecot_available() is None else [])


def first_result(servers: list[str] | None = None, message_counts: tuple[int, ...] = (25, 50, 100, 200),
                 sizes: str = "buchner2009", seed: int = 0, repeats: int = 1,
                 results: Path = RESULTS, figures: Path = FIGURES, cache_dir: str | Path | None = "data/cache",
                 progress: bool = True):
    """Bytes down against mailbox size for the four strategies on each server; writes a CSV and a PNG.

    Returns ``(dataframe, csv_path, png_path)``.
    """
    servers = servers or available_servers()
    cells = [replace(e, messages=n)
             for server in servers
             for e in four_strategies(Experiment(server=server, sizes=sizes, seed=seed, repeats=repeats))
             for n in message_counts]
    df = sweep(cells, cache_dir=cache_dir, progress=progress)
    csv = write_csv_atomically(df, Path(results) / "bytes_down_vs_mailbox_size.csv")
    fig = bytes_down_vs_mailbox(df, title=f"Bytes down against mailbox size ({sizes}, seed {seed}, read fraction 0)")
    png = save_figure(fig, "bytes_down_vs_mailbox_size", figures)
    return df, csv, png


def run_notebooks(quick: bool = False, build: Path = Path("build"), notebooks: Path = NOTEBOOKS,
                  only: list[str] | None = None, progress: bool = True) -> list[Path]:
    """Execute every ``notebooks/NN-*.ipynb`` with papermill (``QUICK`` set) into ``build/``, plus HTML copies."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    build.mkdir(parents=True, exist_ok=True)
    done = []
    for nb in sorted(notebooks.glob("[0-9][0-9]-*.ipynb")):
        if only and not any(o in nb.name for o in only):
            continue
        out = build / nb.name
        pm.execute_notebook(str(nb), str(out), parameters={"QUICK": quick}, cwd=str(Path.cwd()),
                            progress_bar=progress, kernel_name="python3")
        html, _ = HTMLExporter().from_notebook_node(nbformat.read(out, as_version=4))
        out.with_suffix(".html").write_text(html)
        done.append(out)
    return done
