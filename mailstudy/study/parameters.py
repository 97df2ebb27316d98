"""A notebook's parameters checked in its first cell: nonsense stops the run with one line, not a traceback.

Why a module of its own: every notebook has a ``parameters`` cell that papermill (or a student) may fill with
anything (``QUICK`` with 0 messages, an unknown profile, a folder that does not exist). Each rule is written
once here, keyed by the parameter's name, so six notebooks check their knobs the same way, and
:func:`check_parameters` makes IPython show a :class:`ParameterError` as a single line while the cell still
fails (papermill stops the notebook there and ``mailstudy study`` reports that line).
"""

from __future__ import annotations

from pathlib import Path

from mailstudy.errors import MailstudyError


class ParameterError(MailstudyError, ValueError):
    """A notebook parameter makes no sense; the message names it and what it accepts."""


def _whole(name: str, v, low: int = 1, high: int = 100_000) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ParameterError(f"{name} must be a whole number from {low} to {high}, not {v!r}")


def _counts(name: str, v, low: int = 1, high: int = 100_000) -> None:
    if not isinstance(v, (list, tuple)) or not v:
        raise ParameterError(f"{name} must be a non-empty list of whole numbers, not {v!r}")
    for x in v:
        _whole(name, x, low, high)


def check_seeds(seeds) -> list[int]:
    """``seeds`` (a notebook's ``SEEDS``) as a list of distinct whole numbers from 0 to 2**31, or a one-line
    :class:`ParameterError`."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (list, tuple, range)) or not seeds:
        raise ParameterError(f"SEEDS must be a non-empty list of whole numbers, not {seeds!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 2**31:
            raise ParameterError(f"SEEDS must be whole numbers from 0 to {2**31}, not {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ParameterError(f"SEEDS must not repeat a seed (a repeated seed is the same run twice): {list(seeds)}")
    return list(seeds)


def _fraction(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise ParameterError(f"{name} must be a number from 0 to 1, not {v!r}")


def _one_of(name: str, v, allowed) -> None:
    values = v if isinstance(v, (list, tuple)) else [v]
    if isinstance(v, (list, tuple)) and not v:
        raise ParameterError(f"{name} must name at least one of {', '.join(allowed)}")
    for x in values:
        if x not in allowed:
            raise ParameterError(f"{name}: unknown {x!r}; choose from {', '.join(map(str, allowed))}")


def known_profiles() -> list[str]:
    """The network profiles a run may name: the link's named profiles, or ``loopback`` alone without the link."""
    try:
        from mailstudy.link.profiles import PROFILES
    except ImportError:  # the emulated link is not part of this build
        return ["loopback"]
    return list(PROFILES)


def _check(name: str, v) -> None:
    from mailstudy.corpus import SIZE_PRESETS
    from mailstudy.servers import SERVER_KINDS

    if v is None:
        return  # None means "the notebook's default"
    if name == "QUICK":
        if not isinstance(v, bool):
            raise ParameterError(f"QUICK must be True or False, not {v!r}")
    elif name in ("SEED",):
        _whole(name, v, 0, 2**31)
    elif name == "SEEDS":
        check_seeds(v)
    elif name in ("MESSAGES", "DEVICES", "REPEATS"):
        _whole(name, v)
    elif name in ("MESSAGE_COUNTS", "DEVICE_COUNTS", "START_COUNTS"):
        _counts(name, v)
    elif name in ("READ_FRACTION",):
        _fraction(name, v)
    elif name == "READ_FRACTIONS":
        if not isinstance(v, (list, tuple)) or not v:
            raise ParameterError(f"{name} must be a non-empty list of numbers from 0 to 1, not {v!r}")
        for x in v:
            _fraction(name, x)
    elif name == "SIZES":
        _one_of(name, v, sorted(SIZE_PRESETS))
    elif name in ("SERVERS", "SERVER"):
        _one_of(name, v, SERVER_KINDS)
    elif name == "CLIENTS":
        from mailstudy.live.client_profiles import CLIENTS

        _one_of(name, v, list(CLIENTS))
    elif name in ("HOURS", "RATE"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 10_000:
            raise ParameterError(f"{name} must be a number above 0, not {v!r}")
    elif name in ("PROFILES", "PROFILE"):
        _one_of(name, v, known_profiles())
    elif name == "NETWORK":
        from mailstudy.study.network import CONDITIONS

        _one_of(name, v, [c for c in CONDITIONS if c != "as-given"])
    elif name.endswith("_DIR"):
        if not isinstance(v, (str, Path)) or not Path(v).is_dir():
            raise ParameterError(f"{name} must be an existing folder, not {v!r}")


def check_parameters(**params) -> None:
    """Check each named parameter by its rule; raise :class:`ParameterError` at the first that makes no sense.

    In IPython, a ParameterError is then shown as one line (``ParameterError: MESSAGES must be ...``).
    """
    _one_line_in_ipython()
    for name, v in params.items():
        _check(name, v)
    if params.get("QUICK") and any(params.get(k) == 0 for k in ("MESSAGES", "DEVICES")):
        raise ParameterError("QUICK runs need at least one message and one device")


def _one_line_in_ipython() -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: the exception itself is the message
        return
    ip = get_ipython()
    if ip is None:
        return

    def show(shell, etype, evalue, tb, tb_offset=None):
        line = f"{etype.__name__}: {evalue}"
        print(line)
        return [line]

    ip.set_custom_exc((ParameterError,), show)
