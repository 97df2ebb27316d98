"""The embedded mail server: pymap's IMAP and our POP3 front-end over one in-memory store, in a child process.

Why: a pure-Python, root-free, pip-installable server is the default for studies. It runs in its own process
(``python -m mailstudy.servers.embedded_main``) so it never shares the GIL with the measuring client. The
parent hands over accounts and initial INBOX messages in a pickle in a private temp directory, waits for the
child's ``READY`` line, then for both greetings. The child also exits when its stdin closes and is tied to
mailstudy (:func:`mailstudy.processes.popen_tied`), so a crashed or killed parent leaves no server behind, and
its temporary folder is removed by the child's guardian (or swept at the next start).

Start cost: the child parses every initial message's header (bodies are parsed lazily, see ``pymap_speedups``)
and prepares the POP3 wire forms before it is ready; a 1000-message, 80 MB mailbox starts in ~0.7 s against
Dovecot's 0.2 s (it took ~4 s when pymap parsed every body at start). The start timeout still grows with the
mailbox (:meth:`EmbeddedServer.parse_allowance`), generously, for slow or loaded machines.

``EmbeddedServer(speedups=False)`` runs plain pymap, without ``pymap_speedups`` (same bytes on the wire, slower;
for checking the speed-ups and for suspecting them): its version says so, and so every result row does too.
"""

from __future__ import annotations

import os
import pickle
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mailstudy import __version__
from mailstudy.processes import Guardian, TiedPopen, owned_tempdir, popen_tied, sweep_dead, uninterrupted
from mailstudy.servers.base import EXIT_PORT_IN_USE, MailServer, PortInUseError, ServerError, wait_for_greeting

__all__ = ["EmbeddedServer"]

#: A slow machine's rate of the start work per mailbox byte, for the start timeout only (measured ~150 MB/s on
#: the dev box since bodies are parsed lazily; ~25 MB/s before). Kept low: a timeout must not fire on a busy box.
PARSE_BYTES_PER_S = 5_000_000


def _pymap_version() -> str:
    try:
        from pymap.__about__ import __version__
        return __version__
    except ImportError:  # pragma: no cover - pymap is a dependency
        return "unknown"


class EmbeddedServer(MailServer):
    """pymap 0.36 dict backend (IMAP) + ``pop3d.Pop3Server`` (POP3) on 127.0.0.1, one process per server.

    ``disabled`` may name POP3 capabilities (TOP, UIDL, USER, PIPELINING, RESP-CODES) and IMAP ``IDLE``.
    ``speedups=False`` runs plain pymap for this start (see :mod:`mailstudy.servers.pymap_speedups`).
    """

    name = "embedded"

    def __init__(self, *args, speedups: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(speedups, bool):
            raise ValueError(f"speedups must be True or False, got {speedups!r}")
        self.speedups = speedups
        self._proc: TiedPopen | None = None
        self._tmp: Path | None = None
        self._guardian: Guardian | None = None
        self._timeout = self.start_timeout

    @property
    def version(self) -> str:
        off = "" if self.speedups else ", speed-ups off"
        return f"mailstudy-embedded {__version__} (pymap {_pymap_version()}{off})"

    def parse_allowance(self) -> float:
        """Seconds added to ``start_timeout`` for the start work on the initial messages (generous)."""
        total = sum(len(m) for msgs in self.mailboxes.values() for m in msgs)
        return total / PARSE_BYTES_PER_S

    # -- lifecycle -----------------------------------------------------------------------------------------
    def _start(self) -> None:
        self._timeout = self.start_timeout + self.parse_allowance()
        sweep_dead()
        self._guardian = Guardian()  # first, so that a kill -9 from here on leaves nothing
        try:
            with uninterrupted():
                self._tmp = owned_tempdir("embedded")
                self._guardian.watch(self._tmp)
            self._launch()
        except BaseException:
            self._kill()
            raise

    def _launch(self) -> None:
        deadline = time.monotonic() + self._timeout
        spec_path = self._tmp / "spec.pickle"
        spec = {"host": self.host, "imap_port": self.imap_port, "pop3_port": self.pop3_port,
                "accounts": [(a.user, a.password) for a in self.accounts],
                "counts": {user: len(msgs) for user, msgs in self.mailboxes.items()},
                "disabled": sorted(self.disabled), "speedups": self.speedups, "compress": self.compress}
        if self.tls:
            self._make_certificate(self._tmp)
            spec["tls"] = {"cert": str(self.certificate.cert), "key": str(self.certificate.key),
                           "versions": list(self.tls_versions), "imaps_port": self.imaps_port,
                           "pop3s_port": self.pop3s_port}
        with open(spec_path, "wb") as f:
            pickle.dump(spec, f, protocol=pickle.HIGHEST_PROTOCOL)
            for user, msgs in self.mailboxes.items():  # one pickle a message, so delivery can show progress
                for raw in self.progress(msgs, len(msgs), f"delivering to {user}"):
                    pickle.dump(raw, f, protocol=pickle.HIGHEST_PROTOCOL)
        stderr_path = self._tmp / "stderr.log"
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        with open(stderr_path, "wb") as err, uninterrupted():  # no stop between starting it and holding it
            self._proc = popen_tied(
                [sys.executable, "-m", "mailstudy.servers.embedded_main", str(spec_path)], guardian=self._guardian,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env, close_fds=True)
        self._wait_ready(deadline)
        spec_path.unlink(missing_ok=True)  # may be large: the child has read it
        for port, prefix in ((self.imap_port, b"* OK"), (self.pop3_port, b"+OK")):
            wait_for_greeting(port, prefix, max(0.5, deadline - time.monotonic()), self.host)

    def _wait_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerError(f"embedded server did not get ready within {self._timeout:.1f} s"
                                      f"{self._stderr_tail(prefix='; stderr: ')}")
                if sel.select(min(left, 0.2)):
                    chunk = os.read(proc.stdout.fileno(), 256)
                    if not chunk:
                        proc.wait(timeout=5)
                        raise self._exited()
                    line += chunk
                elif proc.poll() is not None:
                    raise self._exited()
        if not line.startswith(b"READY "):
            raise ServerError(f"embedded server said {line[:80]!r} instead of READY")

    def _exited(self) -> ServerError:
        """The error for a child that exited during start: a taken port is a :class:`PortInUseError`."""
        proc = self._proc
        assert proc is not None
        cls = PortInUseError if proc.returncode == EXIT_PORT_IN_USE else ServerError
        return cls(f"embedded server exited during start (status {proc.returncode})"
                   f"{self._stderr_tail(prefix=': ')}")

    def _stderr_tail(self, prefix: str = "", limit: int = 600) -> str:
        if self._tmp is None:
            return ""
        try:
            text = (self._tmp / "stderr.log").read_bytes()[-limit:].decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return prefix + " | ".join(text.splitlines()[-6:]) if text else ""

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        guardian, self._guardian = self._guardian, None
        if guardian is not None:
            guardian.release()

    def _stop(self) -> None:
        self._kill()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (for tests and diagnostics)."""
        return self._proc.pid if self._proc is not None else None

    def __del__(self) -> None:
        try:
            self._kill()
        except Exception:
            pass
