"""Cyrus's ``imapd`` and ``pop3d`` beside Dovecot: taken out of their Debian packages, never installed.

Why a module of its own: on Debian 12, ``apt-get install cyrus-imapd cyrus-pop3d`` removes ``dovecot-imapd`` and
``dovecot-pop3d`` (the packages conflict over the virtual ``imap-server`` and ``pop3-server``), and that broke
every Dovecot test. What works beside Dovecot (issue 20): install ``cyrus-common`` (``master``, ``lmtpd``, the
libraries), ``cyrus-caldav`` (``httpd``, which serves JMAP) and ``cyrus-admin`` with
``--no-install-recommends``, and extract ``imapd`` and ``pop3d`` from the two conflicting packages with
``apt-get download`` and ``dpkg-deb -x`` into a folder mailstudy owns. ``.ci/run`` calls this module after the
apt step, and :mod:`mailstudy.servers.cyrus` looks for the programs where this module puts them.

Stdlib only (``.ci/run`` runs it with the system's ``python3`` before the venv exists):
``python3 -m mailstudy.servers.cyrus_install`` prints the folder holding ``imapd`` and ``pop3d``; it is
idempotent (an existing extraction of the installed ``cyrus-common`` version is kept) and needs no root: as root
it writes to ``/usr/local/lib/mailstudy/cyrus`` (readable by every user), otherwise to
``~/.local/share/mailstudy/cyrus``; ``MAILSTUDY_CYRUS_PROGRAMS`` names another folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mailstudy.errors import MailstudyError

#: What apt installs (with --no-install-recommends: cyrus-common recommends cyrus-imapd, the conflict).
APT_PACKAGES = ("cyrus-common", "cyrus-caldav", "cyrus-admin")
#: What is only downloaded and extracted: installing either removes Dovecot's IMAP or POP3.
EXTRACTED_PACKAGES = ("cyrus-imapd", "cyrus-pop3d")
#: The programs taken from them, relative to an extraction folder.
PROGRAMS = {"imapd": "usr/lib/cyrus/bin/imapd", "pop3d": "usr/lib/cyrus/bin/pop3d"}
SYSTEM_FOLDER = Path("/usr/local/lib/mailstudy/cyrus")
ENV = "MAILSTUDY_CYRUS_PROGRAMS"
APT_HINT = ("apt-get install --no-install-recommends cyrus-common cyrus-caldav cyrus-admin (never cyrus-imapd or "
            "cyrus-pop3d: they remove Dovecot), then: python3 -m mailstudy.servers.cyrus_install")


class InstallError(MailstudyError, RuntimeError):
    """The programs could not be downloaded or extracted; the message says why."""


def user_folder() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "mailstudy" / "cyrus"


def folders() -> list[Path]:
    """Where extractions are looked for, first match wins: ``$MAILSTUDY_CYRUS_PROGRAMS``, the system folder,
    the user's folder."""
    env = os.environ.get(ENV)
    return ([Path(env)] if env else []) + [SYSTEM_FOLDER, user_folder()]


def default_folder() -> Path:
    """Where :func:`extract` writes: ``$MAILSTUDY_CYRUS_PROGRAMS``, else the system folder as root, else the
    user's."""
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    return SYSTEM_FOLDER if os.geteuid() == 0 else user_folder()


def common_version() -> str | None:
    """The installed version of ``cyrus-common`` (the extracted programs must match it: they link its
    libraries), or None when it is not installed."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", "cyrus-common"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    status, _, version = out.stdout.strip().partition(" ")
    return version if out.returncode == 0 and status == "installed" and version else None


def find_programs(version: str | None = None) -> dict[str, Path] | None:
    """``{"imapd": PATH, "pop3d": PATH}`` from the first folder holding an extraction of ``version`` (default:
    the installed cyrus-common's), or None."""
    version = version or common_version()
    if not version:
        return None
    for folder in folders():
        paths = {name: folder / version / rel for name, rel in PROGRAMS.items()}
        if all(os.access(p, os.X_OK) for p in paths.values()):
            return paths
    return None


def extract(folder: Path | None = None, version: str | None = None) -> Path:
    """Download the two packages of ``version`` and extract them into ``folder/version``; returns that path.

    Kept when it is already there. The extraction goes to a temporary sibling first and is renamed into place,
    so an interrupted run leaves nothing half-made that :func:`find_programs` would take.
    """
    version = version or common_version()
    if not version:
        raise InstallError(f"cyrus-common is not installed; {APT_HINT}")
    folder = Path(folder or default_folder())
    target = folder / version
    if all(os.access(target / rel, os.X_OK) for rel in PROGRAMS.values()):
        return target
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise InstallError(f"{tool} is missing: extracting Cyrus's imapd and pop3d needs Debian's apt")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstallError(f"cannot create {folder}: {exc.strerror}") from exc
    with tempfile.TemporaryDirectory(prefix="mailstudy-cyrus-debs-") as debs:
        os.chmod(debs, 0o755)  # apt's download sandbox user must be able to write here
        pins = [f"{p}={version}" for p in EXTRACTED_PACKAGES]
        got = subprocess.run(["apt-get", "download", "-q", *pins], cwd=debs, capture_output=True, text=True)
        files = sorted(Path(debs).glob("*.deb"))
        if got.returncode != 0 or len(files) != len(pins):
            why = (got.stderr or got.stdout).strip().splitlines()
            raise InstallError(f"apt-get download {' '.join(pins)} failed: {why[-1] if why else got.returncode}")
        part = Path(tempfile.mkdtemp(prefix=f".{version}.part-", dir=folder))
        try:
            for deb in files:
                out = subprocess.run(["dpkg-deb", "-x", str(deb), str(part)], capture_output=True, text=True)
                if out.returncode != 0:
                    raise InstallError(f"dpkg-deb -x {deb.name} failed: {out.stderr.strip()[:200]}")
            os.chmod(part, 0o755)
            try:
                part.rename(target)
            except OSError:
                if not target.exists():  # another run may have finished first: theirs is as good as ours
                    raise
        finally:
            shutil.rmtree(part, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        print(extract(Path(args[0]) if args else None))
    except InstallError as exc:
        print(f"cyrus_install: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
