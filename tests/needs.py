"""What a test needs from the machine (tshark, Dovecot, Cyrus, a peer capture), checked in one place.

Why: eight test files each had their own ``shutil.which("tshark")`` skip, and some skipped where CI must fail.
The rule lives here: where a tool or file is missing, a test skips with the reason and the install hint, except
under CI (env ``CI`` set), where ``.ci/run`` installs Dovecot, tcpdump and tshark and lays out the peer captures,
so a missing one is a broken setup and the test fails. ``tests/conftest.py`` offers the same checks as fixtures
(``tshark``, ``dovecot_usable``, ``peer_capture``).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from peers import PEER


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def skip_or_fail(reason: str) -> NoReturn:
    """Skip with ``reason``; under CI fail instead (CI installs everything these tests need)."""
    if in_ci():
        pytest.fail(f"CI must be able to run this test (.ci/run installs what it needs): {reason}")
    pytest.skip(reason)


def program(name: str, package: str) -> str:
    """The path of ``name``, or skip (fail under CI) saying which Debian package holds it."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed (apt-get install {package})")
    return path


def tshark() -> str:
    return program("tshark", "tshark")


def tcpdump_capture() -> None:
    """Skip (fail under CI, which runs as root) unless tcpdump may capture here (root or CAP_NET_RAW)."""
    from mailstudy.capture import CaptureError, choose_backend

    program("tcpdump", "tcpdump")
    try:
        choose_backend("tcpdump")
    except CaptureError as exc:
        skip_or_fail(f"tcpdump cannot capture here: {exc}")


def dovecot() -> None:
    """Skip (fail under CI) unless Dovecot can run here."""
    from mailstudy.servers.dovecot import dovecot_available

    why = dovecot_available()
    if why:
        skip_or_fail(f"Dovecot not usable here: {why}")


def cyrus() -> None:
    """Skip (fail under CI) unless Cyrus can run here (cyrus-common, cyrus-caldav, and imapd/pop3d extracted)."""
    from mailstudy.servers.cyrus import cyrus_available

    why = cyrus_available()
    if why:
        skip_or_fail(f"Cyrus not usable here: {why}")


def peer(name: str) -> Path:
    """A peer capture by file name, or skip (fail under CI)."""
    path = PEER / name
    if not path.is_file():
        skip_or_fail(f"peer capture {name} not found in {PEER}")
    return path


def peer_folder() -> Path:
    """The folder of peer captures, or skip (fail under CI) when it holds none."""
    if not any(PEER.glob("*.pcap*")):
        skip_or_fail(f"no peer captures in {PEER}")
    return PEER


def c_compiler() -> str | None:
    """The C compiler setup.py would build the compiled fast paths with, or None."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) or shutil.which("gcc") or shutil.which("cc")


def compiled(*names: str) -> list[ModuleType]:
    """The compiled fast-path modules ``names`` (setup.py builds them in place). One missing is a failure where a
    C compiler is found, since that is all the build needs (its isolated build fetches Cython from PyPI), and a
    skip with the reason where none is."""
    try:
        return [importlib.import_module(name) for name in names]
    except ImportError as exc:
        cc = c_compiler()
        if cc is None:
            pytest.skip("no C compiler found: the compiled fast paths cannot be built here; the pure modules run")
        pytest.fail(f"{exc.name or ', '.join(names)} is not built although a C compiler is here ({cc}): "
                    f"`pip install -e .` builds it (setup.py compiles every .pyx with Cython)")
