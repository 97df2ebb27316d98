"""The network the study assumes: TLS, TCP as it behaves and loss by default; clear text without loss as a control.

Why a module of its own: the study's latency and break-even numbers (notebook 03, :mod:`mailstudy.study.latency`,
:mod:`mailstudy.study.modelled`, ``mailstudy breakeven``) must all run on the same realistic network, and the
old numbers must stay reachable under one name. :class:`~mailstudy.study.experiment.Experiment` and
:class:`~mailstudy.link.Profile` keep their own defaults (clear text, no loss: the exact byte counts that tests
assert are asserted on them); this module is the one place where the study's defaults live.

* **Realistic** (the default): implicit TLS (IMAPS/POP3S, RFC 8314 recommends it over STARTTLS) with TLS 1.3,
  TCP as the link models it (slow start, restart after idle, receive window, header bytes: the profile's own
  defaults) and each profile's loss rate from :data:`LOSS`.
* **Control** (:data:`CONTROL`): clear text and no loss, the numbers the study gave before; TCP's behaviour stays
  (``--tcp simple`` on the link is the control for that).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mailstudy.errors import MailstudyError
from mailstudy.link import Profile, get_profile
from mailstudy.study.experiment import Experiment


class ConditionsError(MailstudyError, ValueError):
    """Unknown network conditions (the message names the choices)."""

#: Each named profile's loss rate (a segment's chance to be lost, each direction on its own) and where it comes
#: from. No published end-to-end loss rate per access technology was found (searched: OpenSignal, Ookla, the ITU
#: and measurement papers; what was found and why none was taken: docs/network-sources.md, "Loss rates"), so every
#: figure is our assumption, labelled as such: small on wired and recent cellular links, more on older and longer.
#: A profile not named here (a custom link, a trace) keeps its own loss.
LOSS: dict[str, tuple[float, str]] = {
    "loopback": (0.0, "no link"),
    "lan": (0.0, "assumption (ours): a switched Ethernet LAN loses nothing that matters"),
    "4g": (0.001, "assumption (ours): 0.1 % of segments, no published figure quoted"),
    "lte-2012": (0.001, "assumption (ours): 0.1 % of segments, no published figure quoted"),
    "3g": (0.005, "assumption (ours): 0.5 % of segments, no published figure quoted"),
    "satellite-geo": (0.005, "assumption (ours): 0.5 % of segments, no published figure quoted"),
    "edge": (0.01, "assumption (ours): 1 % of segments, no published figure quoted"),
    "4g-trace": (0.001, "assumption (ours): as 4g"),
    "lte-2012-trace": (0.001, "assumption (ours): as lte-2012"),
}


@dataclass(frozen=True)
class Conditions:
    """The study's network conditions: TLS mode and version, and the loss (``"profile"``: each profile's rate
    from :data:`LOSS`; a number: that rate on every profile). None in a field keeps what the experiment or the
    profile already says (:data:`AS_GIVEN`)."""

    name: str = "realistic"
    tls: str | None = "implicit"
    tls_version: str | None = "1.3"
    loss: str | float | None = "profile"

    def experiment(self, base: Experiment) -> Experiment:
        """``base`` with these conditions' TLS (its profile is left to :meth:`profile`)."""
        return replace(base, tls=base.tls if self.tls is None else self.tls,
                       tls_version=base.tls_version if self.tls_version is None else self.tls_version)

    def profile(self, profile: str | Profile) -> str | Profile:
        """``profile`` with these conditions' loss: a name stays a name when its loss is already the one wanted
        (rows and cache keys then stay as they were); otherwise a :class:`Profile` of the same name whose rows
        carry the ``loss`` column."""
        if self.loss is None:
            return profile
        p = get_profile(profile)
        rate = LOSS.get(p.name, (p.loss, ""))[0] if self.loss == "profile" else float(self.loss)
        if rate == p.loss:
            return profile
        return replace(p, loss=rate, source=f"{p.source}; loss {rate:.2%}: {loss_source(p.name, self.loss)}")

    def profiles(self, profiles) -> list[str | Profile]:
        return [self.profile(p) for p in profiles]

    def describe(self) -> str:
        """These conditions in a few words (for a chart's title)."""
        if self.tls is None and self.loss is None:
            return "TLS and loss as given"
        tls = "clear text" if self.tls == "none" else f"{self.tls} TLS {self.tls_version}"
        loss = {"profile": "each profile's loss", None: "loss as given"}.get(self.loss) if isinstance(
            self.loss, (str, type(None))) else ("no loss" if not self.loss else f"{self.loss:.2%} loss")
        return f"{self.name}: {tls}, {loss}"


def loss_source(name: str, loss: str | float = "profile") -> str:
    """Where a profile's study loss rate comes from (one line)."""
    if loss != "profile":
        return "the rate asked for"
    return LOSS.get(name, (0.0, "the profile's own"))[1]


#: The study's default: implicit TLS 1.3, TCP as it behaves, each profile's loss.
REALISTIC = Conditions()
#: The named control: clear text, no loss (the study's numbers before TLS and loss were its default).
CONTROL = Conditions(name="control", tls="none", tls_version="1.3", loss=0.0)
#: The experiments and profiles exactly as given (for a caller that sets TLS and loss itself, e.g. a bench that
#: compares the model with sessions it measured through the link).
AS_GIVEN = Conditions(name="as-given", tls=None, tls_version=None, loss=None)
CONDITIONS = {c.name: c for c in (REALISTIC, CONTROL, AS_GIVEN)}


def conditions(name: str | Conditions | None = None) -> Conditions:
    """The named conditions (None: :data:`REALISTIC`); an unknown name raises :class:`ConditionsError` (one line,
    naming the choices)."""
    if isinstance(name, Conditions):
        return name
    if name is None:
        return REALISTIC
    try:
        return CONDITIONS[name]
    except KeyError:
        raise ConditionsError(f"unknown network conditions {name!r}; choose one of {', '.join(CONDITIONS)}") from None
