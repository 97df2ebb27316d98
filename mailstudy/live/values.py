"""The values a session, an experiment and a fleet share, each checked in one place with one message.

Why: the same read fraction, size preset or client name reaches the engine from the CLI, an experiment, a sweep
and a fleet. Each rule is written here once, so ``read_fraction`` 1.5 or NaN gives the same one line wherever it
comes from (never "Sample larger than population" from deep inside a run). Every error is a
:class:`ParameterValueError`, a ``ValueError`` (what callers have always caught) and a
:class:`~mailstudy.errors.MailstudyError` (what the CLI catches).
"""

from __future__ import annotations

import math

from mailstudy.errors import MailstudyError

PROTOCOLS = ("imap", "pop3")
STRATEGIES = ("header-first", "download-all")
POP3_MODES = ("keep", "delete")


class ParameterValueError(MailstudyError, ValueError):
    """A session, experiment or fleet parameter makes no sense; the message names it and what it accepts."""


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ParameterValueError(f"{name} must be one of {tuple(choices)}, not {value!r}")
    return value


def check_flag(name: str, value) -> bool:
    """True or False, nothing else (a 1 or "yes" from a cached row or a caller is a mistake to name)."""
    if not isinstance(value, bool):
        raise ParameterValueError(f"{name} must be True or False, not {value!r}")
    return value


def check_fraction(name: str, value) -> float:
    """A share from 0 to 1 (NaN is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ParameterValueError(f"{name} must be within [0, 1], not {value}")
    return float(value)


def check_count(name: str, value, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ParameterValueError(f"{name} must be a whole number >= {low}, not {value!r}")
    return value


def check_positive(name: str, value, unit: str) -> float:
    """A finite number above 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ParameterValueError(f"{name} must be a finite number above 0 {unit}, not {value}")
    return float(value)


def check_sizes(value) -> str:
    from mailstudy.corpus import SIZE_PRESETS

    if value not in SIZE_PRESETS:
        raise ParameterValueError(f"unknown size preset {value!r}; choose one of {sorted(SIZE_PRESETS)}")
    return value


def check_headers(value) -> str:
    from mailstudy.corpus import HEADER_MODELS

    if value not in HEADER_MODELS:
        raise ParameterValueError(f"unknown header model {value!r}; choose one of {list(HEADER_MODELS)}")
    return value


__all__ = ["POP3_MODES", "PROTOCOLS", "STRATEGIES", "ParameterValueError", "check_choice", "check_count",
           "check_flag", "check_fraction", "check_headers", "check_positive", "check_sizes"]
