"""The hook between a measured session and its time on a network: loopback today, the latency model tomorrow.

Why: a fleet runs hundreds of real sessions on loopback, back to back in simulated time; what each would have
taken on a 4G or DSL link comes from the latency model (``mailstudy.link.model``, issue "Latency on real
networks"), which predicts a session's times from its flights. This module is the one place the fleet asks for
those seconds, so the model plugs in here and nowhere else. Until the model is present only ``loopback`` (the
measured ``duration_s``) is offered, and any other profile is a clear error.
"""

from __future__ import annotations

LOOPBACK = "loopback"


def network_seconds(result, profile: str = LOOPBACK) -> float:
    """Seconds ``result`` (a :class:`~mailstudy.live.access.SessionResult`) spends on the network ``profile``.

    ``loopback``: the measured duration. Any other profile: the model's ``predict(result, profile)``."""
    if profile == LOOPBACK:
        return float(result.metrics["duration_s"])
    try:
        from mailstudy.link.model import predict
    except ImportError:
        raise _model_missing(profile) from None
    return float(predict(result, profile)["duration_s"])


def _model_missing(profile: str) -> ValueError:
    return ValueError(f"network profile {profile!r} needs the latency model (mailstudy.link.model); only "
                      f"{LOOPBACK!r} is available in this build")


def check_profile(profile: str) -> None:
    """Fail early (ValueError) on a profile the fleet could not time."""
    if profile == LOOPBACK:
        return
    try:
        from mailstudy.link.profiles import get_profile
    except ImportError:
        raise _model_missing(profile) from None
    get_profile(profile)
