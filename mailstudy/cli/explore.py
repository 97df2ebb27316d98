"""``mailstudy explore``: the pcap explorer (notebook 05) served as a web page with Voilà, on 127.0.0.1.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`). A student who has never
used Jupyter runs one command and opens the printed address: no code cells, only the explorer's widgets. The
server listens on 127.0.0.1 only and asks for a token (printed in the address) unless ``--no-token`` is given.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from mailstudy.cli.errors import fail

NOTEBOOK = "05-pcap-explorer.ipynb"


def add_parser(sub) -> None:
    p = sub.add_parser("explore", help="serve the pcap explorer as a web page (Voilà) on 127.0.0.1",
                       description="Serve notebooks/05-pcap-explorer.ipynb with Voilà on 127.0.0.1: pick a "
                                   "capture and a session, see its exchanges, ladder and bytes, or run a live "
                                   "session. Ctrl-C stops it.")
    p.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (8866; 0 picks a free one)")
    p.add_argument("--token", default=None, help="the access token (default: a random one, shown in the URL)")
    p.add_argument("--no-token", action="store_true", help="serve without a token (anyone on this machine)")
    p.add_argument("--open", action="store_true", help="open a browser on the page")
    p.add_argument("--notebook", default=None, metavar="PATH", help=f"the notebook to serve (notebooks/{NOTEBOOK})")
    p.set_defaults(func=run)


def find_notebook(given: str | None = None) -> Path:
    """The explorer notebook: ``given``, else ``notebooks/05-...`` here or in the checkout holding the package."""
    if given:
        return Path(given)
    from mailstudy.outputs import project_root

    for root in (Path.cwd(), project_root()):
        candidate = root / "notebooks" / NOTEBOOK
        if candidate.exists():
            return candidate
    return Path("notebooks") / NOTEBOOK


def voila_command(notebook: Path, port: int, token: str, open_browser: bool = False) -> list[str]:
    """The Voilà command line that serves ``notebook`` on 127.0.0.1:``port`` with ``token`` ("" for none)."""
    voila = shutil.which("voila", path=os.path.dirname(sys.executable)) or shutil.which("voila")
    cmd = [voila or "voila", str(notebook), f"--port={port}", "--Voila.ip=127.0.0.1", f"--Voila.token={token}"]
    if not open_browser:
        cmd.append("--no-browser")
    return cmd


def run(args) -> int:
    from mailstudy.processes import popen_tied
    from mailstudy.servers.base import check_port_free, free_port

    notebook = find_notebook(args.notebook)
    if not notebook.is_file():
        return fail(f"{notebook}: no such notebook (run from the mailstudy checkout, or give --notebook PATH)")
    try:
        import voila  # noqa: F401 - only to say clearly when it is missing
    except ImportError:
        return fail("Voilà is not installed: pip install voila")
    if not 0 <= args.port < 65536:
        return fail(f"port must be 0-65535, not {args.port}")
    port = args.port or free_port()
    check_port_free(port)  # ServerError (one line) when taken
    token = "" if args.no_token else (args.token or secrets.token_urlsafe(16))
    url = f"http://127.0.0.1:{port}/" + (f"?token={token}" if token else "")
    print(f"mailstudy explore: {notebook} at {url}  (Ctrl-C stops it)", flush=True)
    # the kernel starts in the notebook's folder; the explorer finds captures/ under the project root
    proc = popen_tied(voila_command(notebook, port, token, args.open))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0
