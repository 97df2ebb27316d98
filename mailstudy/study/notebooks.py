"""The notebook runner behind ``make study`` and ``mailstudy study``.

Why: a researcher reproduces every chart with one command. :func:`run_notebooks` executes each notebook with papermill into ``build/`` and writes an HTML
copy beside it.
"""

from __future__ import annotations

from pathlib import Path

from mailstudy.outputs import project_root, write_atomically


def run_notebooks(quick: bool = False, build: Path | None = None, notebooks: Path | None = None,
                  only: list[str] | None = None, progress: bool = True) -> list[Path]:
    """Execute every ``notebooks/NN-*.ipynb`` with papermill (``QUICK`` set) into ``build/``, plus HTML copies.

    ``notebooks`` and ``build`` default to ``notebooks/`` and ``build/`` under the project root, and the
    notebooks run in the project root (so their ``data/...`` paths land in the project whatever the working
    directory; see :mod:`mailstudy.outputs`)."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    notebooks = Path(notebooks) if notebooks is not None else project_root() / "notebooks"
    build = Path(build) if build is not None else project_root() / "build"
    from mailstudy.caches import keep_caches_in_project

    keep_caches_in_project()  # the kernels inherit it: no ~/.ipython, no ~/.cache/matplotlib
    build.mkdir(parents=True, exist_ok=True)
    done = []
    for nb in sorted(notebooks.glob("[0-9][0-9]-*.ipynb")):
        if only and not any(o in nb.name for o in only):
            continue
        out = build / nb.name
        pm.execute_notebook(str(nb), str(out), parameters={"QUICK": quick}, cwd=str(project_root()),
                            progress_bar=progress, kernel_name="python3")
        html, _ = HTMLExporter().from_notebook_node(nbformat.read(out, as_version=4))
        write_atomically(out.with_suffix(".html"), html)
        done.append(out)
    return done
