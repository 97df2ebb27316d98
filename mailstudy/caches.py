"""Where third-party libraries keep their caches when mailstudy runs them: in the project, not in ``~``.

Why a module of its own: a first run used to leave ``~/.cache/scapy``, ``~/.cache/matplotlib``,
``~/.config/matplotlib`` and ``~/.ipython`` behind, third-party defaults nobody asked for. Each library reads one
environment variable for it, so :func:`keep_caches_in_project` sets those (only where the user has not set them)
before the library is imported or a notebook kernel is started: the command line, the notebook runner and the
test suite call it. It is cheap: only the cache folder itself is made (IPython refuses a folder whose parent is
missing, warns "IPython parent ... is not a writable location" and falls back to a temporary one), each
library makes its own sub-folder when it writes there, and a font cache kept in the project is reused by the
next run. What remains in ``~`` is listed in the README.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: environment variable -> sub-folder of the cache folder
VARIABLES = {
    "MPLCONFIGDIR": "matplotlib",  # matplotlib's config and font cache (~/.config/matplotlib, ~/.cache/matplotlib)
    "XDG_CACHE_HOME": "xdg",  # scapy's ~/.cache/scapy (and fontconfig's cache, read by matplotlib)
    "IPYTHONDIR": "ipython",  # ~/.ipython, made by the notebooks' IPython kernels
}


def cache_root() -> Path:
    """``.cache/`` in the checkout when mailstudy runs from one (beside ``pyproject.toml``), else a folder of
    this user's in the system's temporary folder."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and os.access(checkout, os.W_OK):
        return checkout / ".cache"
    return Path(tempfile.gettempdir()) / f"mailstudy-caches-uid{os.getuid()}"


def keep_caches_in_project(env: dict | None = None) -> dict[str, str]:
    """Point each library's cache variable at :func:`cache_root` unless already set; returns what was set."""
    env = os.environ if env is None else env
    root = cache_root()
    done = {}
    for var, sub in VARIABLES.items():
        if not env.get(var):
            env[var] = done[var] = str(root / sub)
    if done:
        root.mkdir(parents=True, exist_ok=True)  # the parent each library expects to exist (module docstring)
    return done
