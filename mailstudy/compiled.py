"""Which implementation of a hot loop runs: the compiled fast path or the pure-Python reference.

setup.py compiles every ``mailstudy/**/*.pyx`` into an extension module beside it when it can; the pure ``.py``
module next to it stays the reference the compiled one must equal exactly. This module is the one place that
decides which one a caller gets: ``MAILSTUDY_PURE=1`` in the environment (read at import) forces the reference,
for tests that compare both and for anyone who suspects the compiled code.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

#: environment variable that makes every caller use the pure-Python reference modules
PURE_ENV = "MAILSTUDY_PURE"


def pure_requested(env: "os._Environ[str] | dict[str, str] | None" = None) -> bool:
    """True when the environment asks for the pure-Python reference (``MAILSTUDY_PURE`` set and not 0/empty)."""
    value = (os.environ if env is None else env).get(PURE_ENV, "")
    return value not in ("", "0")


def compiled_module(name: str) -> ModuleType | None:
    """The compiled extension ``name`` (a full dotted name), or None when it is not built or the reference is asked for."""
    if pure_requested():
        return None
    try:
        return importlib.import_module(name)
    except ImportError:  # not built here (no compiler, or Cython missing at install): the reference runs
        return None
