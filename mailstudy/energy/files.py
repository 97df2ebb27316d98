"""A custom radio model from a JSON or TOML file: a user's own device's figures, in the built-in models' shape.

Why a module of its own: the models and the ledger are pure (no files); reading a file is I/O and lives here,
ranked apart in tests/test_layers.py. The file holds the dict :func:`mailstudy.energy.radios.model_from_dict`
checks (``mailstudy energy --radio lte --show-model --json`` prints one to start from); TOML is read with the
standard library's ``tomllib``, JSON with ``json``, chosen by the file's suffix (``.toml``, else JSON).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from mailstudy.energy.radios import ModelError, RadioModel, model_from_dict


def load_model(path: str | os.PathLike) -> RadioModel:
    """The model in ``path``; a one-line :class:`ModelError` when the file cannot be read or a field is wrong."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read radio model file {str(p)!r}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if p.suffix.lower() == ".toml" else "JSON"
        raise ModelError(f"radio model file {str(p)!r} is not valid {kind}: {' '.join(str(exc).split())}") from None
    return model_from_dict(data, where=f"radio model file {str(p)!r}")
