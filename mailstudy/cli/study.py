"""``mailstudy study``: execute the notebooks with papermill into build/, with an HTML copy of each.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`).
"""

from __future__ import annotations

from mailstudy.cli.errors import fail


def add_parser(sub) -> None:
    p = sub.add_parser("study", help="rebuild the study: execute every notebook into build/ (with HTML)",
                       description="Execute notebooks/NN-*.ipynb with papermill into build/, writing tables "
                                   "under data/results/ and charts under data/figures/.")
    p.add_argument("--quick", action="store_true", help="small parameters (what the tests use)")
    p.add_argument("--only", action="append", metavar="NAME", help="run only notebooks whose name contains NAME")
    p.add_argument("--build", default=None, metavar="DIR",
                   help="output folder (default: build/ in the project root, whatever the working directory)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from mailstudy.study.notebooks import run_notebooks

    from mailstudy.outputs import project_root

    build = Path(args.build) if args.build else project_root() / "build"
    if build.exists() and not build.is_dir():
        return fail(f"--build {build} exists and is not a folder; give a folder for the executed notebooks")
    try:
        build.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return fail(f"cannot create --build folder {build}: {exc.strerror or exc}")
    done = run_notebooks(quick=args.quick, build=build, only=args.only)
    if not done:
        return fail("no notebook matched (looked for notebooks/NN-*.ipynb)")
    for nb in done:
        print(f"executed {nb} (+ {nb.with_suffix('.html').name})")
    return 0


