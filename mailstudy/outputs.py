"""Writing output files safely (whole or not at all, with the umask's permissions), and where they go by default.

Why a module of its own: captures, redacted copies, sidecars, result tables, figures and caches are all written
the same way (a temporary file beside the target, then one rename): :func:`write_atomically` for bytes or text
in hand, :func:`tmp_beside` + :func:`publish` for files written by someone else (tcpdump, mmap, matplotlib).

Default folders (``data/cache``, ``data/results``, ``data/figures``, ``build``, ``notebooks``) never depend on
the working directory: they sit under :func:`project_root`, which is ``$MAILSTUDY_ROOT`` when set, else the
source checkout that holds this package (the folder with ``pyproject.toml``), else ``$XDG_DATA_HOME/mailstudy``
(``~/.local/share/mailstudy``) for an installed copy. Every function that writes there also takes an explicit
folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def project_root() -> Path:
    """Where default folders live (see the module doc): ``$MAILSTUDY_ROOT``, the checkout, or the user data dir."""
    env = os.environ.get("MAILSTUDY_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "mailstudy"


def data_dir(kind: str) -> Path:
    """``project_root()/data/KIND``: the default folder for ``cache``, ``results`` or ``figures``."""
    return project_root() / "data" / kind


def tmp_beside(path: Path) -> Path:
    """A new empty hidden temporary file in ``path``'s folder (same file system, so the final rename is atomic)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path | str, path: str | os.PathLike) -> None:
    """Give a finished temporary file the usual permissions (mkstemp makes it 0600) and move it into place."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def write_atomically(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all, with the umask's mode; returns the path."""
    path = Path(path)
    tmp = tmp_beside(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
