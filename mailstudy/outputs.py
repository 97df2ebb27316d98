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


def publish(tmp: Path | str, path: Path) -> None:
    """Give a finished temporary file the usual permissions (mkstemp makes it 0600) and move it into place."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)
