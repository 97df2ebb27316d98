"""The link as a context manager: a relay process between a client and a server, applying a profile.

Why a module of its own: callers (experiments, the CLI, benchmarks) should see only "these are the ports to
connect to"; the process boundary, readiness and clean shutdown live here. The relay itself is
:mod:`mailstudy.link.relay_main`; it is started with :func:`mailstudy.processes.popen_tied`, so it dies with
mailstudy even on ``kill -9``, and :meth:`Link.stop` ends it and waits, so no relay outlives its session::

    with Link("4g", [(server.host, server.imap_port), (server.host, server.pop3_port)]) as link:
        imap_port, pop3_port = link.ports   # connect here, on 127.0.0.1

``Link(..., report=True)`` also hands out each closed connection's own work, as the relay measured it
(:meth:`Link.reports`): what bench/reference.py takes from a session's duration to compare its network time.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

from mailstudy.errors import MailstudyError
from mailstudy.link.profiles import Profile, get_profile
from mailstudy.processes import popen_tied

READY_TIMEOUT_S = 10.0
HOST = "127.0.0.1"


class LinkError(MailstudyError, RuntimeError):
    """The relay process did not start or said something unexpected."""


class Link:
    """A running relay for ``profile`` in front of each ``(host, port)`` upstream; ``ports`` in the same order."""

    def __init__(self, profile: str | Profile, upstreams: list[tuple[str, int]], seed: int = 0,
                 report: bool = False) -> None:
        self.profile = get_profile(profile)
        self.report = report
        self._pending = b""
        self.upstreams = [(h, int(p)) for h, p in upstreams]
        self.seed = seed
        self.host = HOST
        self.ports: list[int] = []
        self.proc: subprocess.Popen | None = None

    def start(self) -> Link:
        config = json.dumps({"profile": self.profile.to_dict(), "upstreams": self.upstreams, "seed": self.seed,
                             "report": self.report})
        self.proc = popen_tied([sys.executable, "-m", "mailstudy.link.relay_main", config],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else b""
        try:
            self.ports = [int(p) for p in json.loads(line)["ports"]]
        except (ValueError, KeyError, TypeError):
            err = b""
            if self.proc.poll() is not None:
                err = self.proc.stderr.read()[-400:]
            self.stop()
            raise LinkError(f"the link relay did not start within {READY_TIMEOUT_S:.0f} s: "
                            f"{err.decode(errors='replace').strip() or 'no answer'}") from None
        return self

    def stop(self) -> None:
        """End the relay and wait for it (its connections close with it)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()  # nothing to flush: a relay has no state worth a graceful stop
        proc.wait()
        proc.release()  # no guardian is asked for (one process, no files), but the handle says so
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()

    def reports(self, count: int = 1, timeout: float = 5.0) -> list[dict]:
        """The next ``count`` connections' work as the relay measured it, in the order they closed (a Link made
        with ``report=True``; :mod:`mailstudy.link.relay_ledger`): each a dict with ``work_s`` (c_0 + the o_f
        and g_f), the session's flights (:func:`~mailstudy.link.relay_ledger.flights_of`; a model Session with
        :func:`~mailstudy.link.relay_ledger.session_of_report`), ``upstream`` (the index of its port) and
        ``connection`` (its number there)."""
        if not self.report or self.proc is None:
            raise LinkError("this link was not started with report=True")
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()  # read raw: a buffered reader could hold a line that select() cannot see
        while len(out) < count:
            if b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                out.append(json.loads(line))
                continue
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            data = os.read(fd, 65536) if ready else b""
            if not data:
                raise LinkError(f"the link relay reported {len(out)} of {count} connections within {timeout:g} s")
            self._pending += data
        return out

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self) -> Link:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    """True once no process ``pid`` exists (for checks that a relay left nothing behind)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False
