"""Writing output files safely: whole or not at all, with the umask's permissions, never over what is not ours.

Why a module of its own: captures, redacted copies, sidecars, result tables and caches are all written the same
way (a temporary file beside the target, then one rename), and that rule has one home.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
