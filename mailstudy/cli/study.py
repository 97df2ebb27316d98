"""``mailstudy study``: execute the notebooks with papermill into build/, with an HTML copy of each and an index.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`).
"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("study", help="rebuild the study: execute every notebook into build/ (with HTML)",
                       description="Execute notebooks/NN-*.ipynb with papermill into build/, writing tables "
                                   "under data/results/, charts under data/figures/ and build/index.html.")
    p.add_argument("--quick", action="store_true", help="small parameters (what the tests use)")
    p.add_argument("--only", action="append", metavar="NAME", help="run only notebooks whose name contains NAME")
    p.add_argument("--build", default=None, metavar="DIR",
                   help="output folder (default: build/ in the project root, whatever the working directory)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from mailstudy.outputs import check_folder, project_root
    from mailstudy.study.notebooks import run_notebooks

    build = check_folder(Path(args.build) if args.build else project_root() / "build", "--build folder")
    runs = run_notebooks(quick=args.quick, build=build, only=args.only)  # NotebookError: one line, exit 2
    for r in runs:
        if r.skipped:
            print(f"skipped {r.notebook.stem}: {r.skipped}")
        else:
            print(f"executed {r.notebook} (+ {r.html.name}) in {r.seconds:.1f} s")
    print(f"index: {build / 'index.html'}")
    if not args.only:  # every notebook ran: the README's figures can come from this run's tables
        from mailstudy.faces.readme_figures import after_study

        print(after_study(args.quick))
    return 0
