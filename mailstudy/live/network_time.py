"""The hook between a measured session and its time on a network: the latency model, in one place.

Why: a fleet runs hundreds of real sessions back to back in simulated time; what each would have taken on a 4G
or DSL link comes from the latency model (:mod:`mailstudy.link.model`), which predicts a session's times from its
flights and the work measured in it. With a profile, :func:`mailstudy.live.fleet.run_fleet` runs its sessions
through the model's baseline link, as the model wants them; this module is the one place the fleet asks for
those seconds. ``loopback`` is the measured duration.
"""

from __future__ import annotations

LOOPBACK = "loopback"


def network_seconds(result, profile: str = LOOPBACK) -> float:
    """Seconds ``result`` (a :class:`~mailstudy.live.access.SessionResult`) spends on the network ``profile``.

    ``loopback``: the measured duration. Any other profile: the model's ``predict(result, profile)`` (the
    result's ``link`` says which delays to take out)."""
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
