"""``mailstudy explore``: the pcap explorer (notebook 05) served as a web page with Voilà, on 127.0.0.1.

Why a module of its own: one subcommand, one module (see :mod:`mailstudy.cli.commands`). A student who has never
used Jupyter runs one command and opens the printed address: no code cells, only the explorer's widgets. The
server listens on 127.0.0.1 only and asks for a token (printed in the address) unless ``--no-token`` is given.

What it promises (README, "Stopping it"): the address is printed only once Voilà accepts connections; the token
reaches Voilà through a ``voila.json`` readable by the user only, never through a command line that ``ps`` shows;
a page closed normally shuts its kernel down (Voilà's "beforeunload" message), and a kernel no page uses is culled
after :data:`CULL_IDLE_S`; Ctrl-C, TERM and HUP stop Voilà and its kernels and exit 128 + the signal; Voilà's
kernel connection files live in mailstudy's own folder (``mailstudy-explore-PID-*``), removed at the end, by the
guardian after a ``kill -9`` of mailstudy, or at the next start when the whole tree was killed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from mailstudy.cli.errors import fail
from mailstudy.errors import MailstudyError

NOTEBOOK = "05-pcap-explorer.ipynb"
TOKEN_ENV = "MAILSTUDY_EXPLORE_TOKEN"  # the token without a command line that the process list shows


class ExploreError(MailstudyError):
    """Voilà did not come up; the message says what happened."""


def add_parser(sub) -> None:
    p = sub.add_parser("explore", help="serve the pcap explorer as a web page (Voilà) on 127.0.0.1",
                       description="Serve notebooks/05-pcap-explorer.ipynb with Voilà on 127.0.0.1: pick a "
                                   "capture and a session, see its exchanges, ladder and bytes, or run a live "
                                   "session. Ctrl-C stops it.")
    p.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (8866; 0 picks a free one)")
    p.add_argument("--token", default=None, help=f"the access token (default: ${TOKEN_ENV}, else a random one; "
                                                  f"shown in the URL, never on Voilà's command line)")
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


#: Voilà's own culling, for a page closed without its "beforeunload" message (a killed tab, a lost laptop): a
#: kernel no page is connected to is shut down after this many seconds (ours; Voilà's default keeps it forever).
CULL_IDLE_S, CULL_INTERVAL_S = 300, 60
READY_S = 120  # seconds Voilà may take to listen on a busy machine


def voila_config(token: str, home: Path) -> dict:
    """What goes into ``voila.json`` in mailstudy's own folder: the token (never on a command line, where the
    process list shows it), the folder for kernel connection files, kernels over Unix sockets in that folder (over
    TCP a kernel's port, picked free and then released, can be taken by another process before the kernel binds
    it, and each kernel warns that TCP is not encrypted), and culling of kernels no page uses."""
    # disable_check_xsrf: Voilà's page shuts its kernel down on "beforeunload" with a POST carrying the _xsrf
    # cookie, but Voilà 0.5 never sets that cookie, so the POST is refused (403, "'_xsrf' argument missing") and
    # every visit leaves its kernel. What the check would guard here is only that POST (a kernel's UUID needed);
    # the kernel websocket checks its origin on its own.
    return {"Voila": {"token": token, "connection_dir_root": str(home),
                      "tornado_settings": {"disable_check_xsrf": True}},
            "KernelManager": {"transport": "ipc"},
            "MappingKernelManager": {"cull_idle_timeout": CULL_IDLE_S, "cull_interval": CULL_INTERVAL_S,
                                     "cull_connected": False}}


def voila_command(notebook: Path, port: int, config_dir: Path, open_browser: bool = False) -> list[str]:
    """The Voilà command line that serves ``notebook`` on 127.0.0.1:``port``, configured by ``config_dir``'s
    ``voila.json`` (:func:`voila_config`)."""
    voila = shutil.which("voila", path=os.path.dirname(sys.executable)) or shutil.which("voila")
    cmd = [voila or "voila", str(notebook), f"--port={port}", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
           f"--Voila.config_file_paths={config_dir}"]
    if not open_browser:
        cmd.append("--no-browser")
    return cmd


def _wait_listening(proc, port: int) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; a Voilà that exits first is an error."""
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ExploreError(f"Voilà stopped before it listened (exit status {proc.returncode}); its messages "
                               f"are above")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise ExploreError(f"Voilà did not listen on 127.0.0.1:{port} within {READY_S} s")


def _stop(proc) -> None:
    """TERM Voilà (it shuts its kernels down and removes its connection folder), then KILL what is left."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(args) -> int:
    from mailstudy.processes import Guardian, popen_tied, short_tempdir, sweep_dead, uninterrupted
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
    token = "" if args.no_token else (args.token or os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(16))
    url = f"http://127.0.0.1:{port}/" + (f"?token={token}" if token else "")
    sweep_dead()  # the folders of an explore (or anything of ours) that was killed with -9
    guardian = Guardian()
    home = short_tempdir("explore")  # config, kernel connection files and sockets, Jupyter's runtime files
    guardian.watch(home)
    proc = None
    try:
        config = home / "voila.json"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the token: readable by us only
        with os.fdopen(fd, "w") as fh:
            json.dump(voila_config(token, home), fh)
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
        # the kernel starts in the notebook's folder; the explorer finds captures/ under the project root
        with uninterrupted():
            proc = popen_tied(voila_command(notebook, port, home, args.open), guardian=guardian, env=env)
        _wait_listening(proc, port)
        print(f"mailstudy explore: {notebook} at {url}  (Ctrl-C stops it)", flush=True)
        status = proc.wait()
        if status:
            return fail(f"Voilà stopped with exit status {status}")
        return 0
    finally:  # Ctrl-C, TERM and HUP come here as Stopped (exit 128 + signal, cli.commands), errors too
        if proc is not None:
            _stop(proc)
        shutil.rmtree(home, ignore_errors=True)
        guardian.release()
