"""Radio models as data: the states a phone's radio passes through, their powers and timers, each figure cited.

Why data and not code: a model is a handful of published figures (a promotion's power and duration, a tail
timer, the powers of its parts, the throughput terms), and a user with their own device's figures must be able
to give their own without writing Python. So a model is one dict, the same for the built-in ones here and for a
custom file (:mod:`mailstudy.energy.files` reads JSON or TOML into the same dict), and
:func:`model_from_dict` checks it: a missing or unknown field is a one-line :class:`ModelError` naming it.

The shape every model shares (after Huang et al.'s LTE model, which the 3G and Wi-Fi models fit as well):

* **idle**: the radio's state with no connection; it wakes for a paging occasion (``on_power_w`` for ``on_s``
  every ``cycle_s``) and sleeps between (``base_power_w``); the average is what a quiet hour costs.
* **promotion**: the first packet after the radio went idle waits ``promotion_s`` at ``promotion_power_w``
  while the radio is brought to its connected state (:mod:`mailstudy.energy.waiting` gives that delay).
* **transfer**: while packets flow (gaps shorter than ``burst_gap_s``) the power is
  ``transfer_power_w + alpha_up * Mbit/s up + alpha_down * Mbit/s down`` (Huang et al.'s data transfer model,
  ``P = alpha_u t_u + alpha_d t_d + beta``), so a transfer's energy is ``beta * seconds + alpha_up * Mbit up +
  alpha_down * Mbit down``: the throughput terms add a fixed cost per bit.
* **tail**: after the last packet the radio stays connected for ``tail_s`` (the operator's inactivity timer)
  through its stages in order (LTE: continuous reception, short DRX, long DRX; 3G: DCH, then FACH); a stage may
  need a promotion of its own to carry data again (3G's FACH to DCH).

Powers are in watts, times in seconds, the throughput terms in W per Mbit/s. Every number of a built-in model is
in ``sources`` with the words its source gives it; a figure that is ours (an assumption) says so.

Sources of the built-in models:

* ``lte`` and ``wifi``: J. Huang, F. Qian, A. Gerber, Z. M. Mao, S. Sen, O. Spatscheck, "A Close Examination of
  Performance and Power Characteristics of 4G LTE Networks", MobiSys 2012: Table 3 (the LTE, 3G and Wi-Fi
  power model parameters: powers, durations, periodicities), Table 4 (the data transfer power model:
  alpha_u, alpha_d, beta) and the LTE DRX timers of its Section 3. Where AT&T's ARO (the open-source
  Application Resource Optimizer of the same group, com/att/aro/model/ProfileLTE.java, 2012) carries the same
  figure as a default, ``sources`` says so: that is the copy this module was checked against. The paper's own
  text could not be read where this was written; the figures without an ARO default (beta, the Wi-Fi rows, the
  DRX On powers and periods) are as the paper's tables are widely quoted and wait for a check against its PDF.
* ``3g``: F. Qian, Z. Wang, A. Gerber, Z. M. Mao, S. Sen, O. Spatscheck, "Profiling Resource Usage for Mobile
  Applications: a Cross-layer Approach", MobiSys 2011 (ARO), as its open-source release sets them
  (com/att/aro/model/Profile3G.java defaults, 2012): the DCH and FACH inactivity timers (5 s and 12 s, the
  Carrier 1 timers of Qian et al., "Characterizing Radio Resource Allocation for 3G Networks", IMC 2010), the
  promotion delays and the state powers. ARO's 3G model has no throughput terms: power depends on the state only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from mailstudy.errors import MailstudyError


class ModelError(MailstudyError, ValueError):
    """A radio model that cannot be used (unknown name, missing or bad field); one line naming what to fix."""


@dataclass(frozen=True)
class Stage:
    """One state of the radio held for a while: a part of the tail, or idle (``duration_s`` infinite).

    Its power is ``base_power_w`` with, when it wakes periodically (DRX, paging, Wi-Fi beacons), ``on_power_w``
    for ``on_s`` of every ``cycle_s``; :attr:`power_w` is the average. ``promotion_s`` and
    ``promotion_power_w`` are what carrying data from this stage first costs (0 when it can carry data at once);
    a transfer no bigger than ``carry_up_bytes`` up and ``carry_down_bytes`` down is carried in the stage itself
    at its own power, with no promotion, and the stage's timer starts again (0 and 0: never).
    """

    name: str
    duration_s: float
    base_power_w: float
    on_power_w: float = 0.0
    on_s: float = 0.0
    cycle_s: float = 0.0
    promotion_s: float = 0.0
    promotion_power_w: float = 0.0
    carry_up_bytes: float = 0.0
    carry_down_bytes: float = 0.0

    def carries(self, bytes_up: int, bytes_down: int) -> bool:
        """Whether a transfer this small is carried in this stage itself, without a promotion (3G's FACH carries
        transfers under its RLC buffer thresholds); never when both thresholds are 0."""
        return (self.carry_up_bytes > 0 or self.carry_down_bytes > 0) and \
            bytes_up <= self.carry_up_bytes and bytes_down <= self.carry_down_bytes

    @property
    def power_w(self) -> float:
        """The stage's average power: the wake-ups' share of each cycle at ``on_power_w``, the rest at base."""
        if self.cycle_s <= 0 or self.on_s <= 0:
            return self.base_power_w
        share = min(self.on_s / self.cycle_s, 1.0)
        return share * self.on_power_w + (1.0 - share) * self.base_power_w


@dataclass(frozen=True)
class RadioModel:
    """A radio's state machine with its powers and timers (see the module's docstring for each part)."""

    name: str
    title: str
    promotion_s: float
    promotion_power_w: float
    transfer_power_w: float
    alpha_up_w_per_mbps: float
    alpha_down_w_per_mbps: float
    burst_gap_s: float
    tail_s: float
    tail: tuple[Stage, ...]
    idle: Stage
    sources: Mapping[str, str] = field(default_factory=dict)

    def transfer_power(self, mbps_up: float, mbps_down: float) -> float:
        """Watts while transferring at these rates: ``alpha_up * up + alpha_down * down + beta``."""
        return self.alpha_up_w_per_mbps * mbps_up + self.alpha_down_w_per_mbps * mbps_down + self.transfer_power_w

    def as_dict(self) -> dict[str, Any]:
        """The model as the dict :func:`model_from_dict` reads (what a custom model file holds)."""
        def stage(s: Stage, with_duration: bool) -> dict[str, Any]:
            d = {k: getattr(s, k) for k in _STAGE_FIELDS if k != "duration_s" or with_duration}
            return {k: v for k, v in d.items() if v or k in ("name", "base_power_w", "duration_s")}

        out = {k: getattr(self, k) for k in _MODEL_FIELDS if k not in ("tail", "idle")}
        out["tail"] = [stage(s, i < len(self.tail) - 1) for i, s in enumerate(self.tail)]  # the last: the rest
        out["idle"] = {k: v for k, v in stage(self.idle, False).items() if k != "name"}
        out["sources"] = dict(self.sources)
        return out


_MODEL_FIELDS = ("name", "title", "promotion_s", "promotion_power_w", "transfer_power_w", "alpha_up_w_per_mbps",
                 "alpha_down_w_per_mbps", "burst_gap_s", "tail_s", "tail", "idle")
_STAGE_FIELDS = ("name", "duration_s", "base_power_w", "on_power_w", "on_s", "cycle_s", "promotion_s",
                 "promotion_power_w", "carry_up_bytes", "carry_down_bytes")
_STAGE_OPTIONAL = {"on_power_w": 0.0, "on_s": 0.0, "cycle_s": 0.0, "promotion_s": 0.0, "promotion_power_w": 0.0,
                   "carry_up_bytes": 0.0, "carry_down_bytes": 0.0}


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ModelError(f"{where} must be a number >= 0, not {value!r}")
    return float(value)


def _stage(where: str, d: Any, last: bool, name: str | None = None) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise ModelError(f"{where} must be a table of fields, not {d!r}")
    unknown = sorted(set(d) - set(_STAGE_FIELDS))
    if unknown:
        raise ModelError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(_STAGE_FIELDS)})")
    required = ["base_power_w"] + ([] if name else ["name"]) + ([] if last else ["duration_s"])
    for key in required:
        if key not in d:
            raise ModelError(f"{where}: missing field {key!r}")
    out = {"name": name or str(d["name"])}
    for key in _STAGE_FIELDS[1:]:
        if key in d:
            out[key] = _number(f"{where}.{key}", d[key])
        elif key in _STAGE_OPTIONAL:
            out[key] = _STAGE_OPTIONAL[key]
    if (out["on_s"] > 0) != (out["cycle_s"] > 0):
        raise ModelError(f"{where}: on_s and cycle_s go together (a wake-up of on_s every cycle_s)")
    if out["cycle_s"] and out["on_s"] > out["cycle_s"]:
        raise ModelError(f"{where}: on_s ({out['on_s']}) is longer than cycle_s ({out['cycle_s']})")
    return out


def model_from_dict(d: Mapping[str, Any], where: str = "radio model") -> RadioModel:
    """Check a model's fields and build it; ``where`` names the model in errors (a file's path, say).

    Every top-level field is required (``sources`` is optional). The last tail stage may leave out
    ``duration_s``: it lasts the rest of ``tail_s``. Raises :class:`ModelError` naming the first missing,
    unknown or bad field.
    """
    if not isinstance(d, Mapping):
        raise ModelError(f"{where} must be a table of fields, not {type(d).__name__}")
    unknown = sorted(set(d) - set(_MODEL_FIELDS) - {"sources"})
    if unknown:
        raise ModelError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(_MODEL_FIELDS)}, sources)")
    for key in _MODEL_FIELDS:
        if key not in d:
            raise ModelError(f"{where}: missing field {key!r}")
    nums = {k: _number(f"{where}.{k}", d[k]) for k in _MODEL_FIELDS[2:9]}
    if nums["tail_s"] <= 0:
        raise ModelError(f"{where}.tail_s must be > 0 (the radio's inactivity timer), not {d['tail_s']!r}")
    tail_in = d["tail"]
    if not isinstance(tail_in, (list, tuple)) or not tail_in:
        raise ModelError(f"{where}.tail must be a list of one or more stages")
    stages = [_stage(f"{where}.tail[{i}]", s, last=i == len(tail_in) - 1) for i, s in enumerate(tail_in)]
    given = sum(s.get("duration_s", 0.0) for s in stages[:-1])
    if given > nums["tail_s"] + 1e-12:
        raise ModelError(f"{where}: the tail stages before the last last {given} s, longer than tail_s "
                         f"({nums['tail_s']} s)")
    rest = nums["tail_s"] - given
    if "duration_s" in stages[-1] and abs(stages[-1]["duration_s"] - rest) > 1e-9:
        raise ModelError(f"{where}: the tail stages last {given + stages[-1]['duration_s']} s, but tail_s is "
                         f"{nums['tail_s']} s (leave out the last stage's duration_s to give it the rest)")
    stages[-1]["duration_s"] = rest
    idle = _stage(f"{where}.idle", d["idle"], last=True, name="idle")
    idle["duration_s"] = math.inf
    sources = d.get("sources", {})
    if not isinstance(sources, Mapping):
        raise ModelError(f"{where}.sources must be a table of field = source text")
    name = str(d["name"]).strip()
    if not name:
        raise ModelError(f"{where}.name must not be empty")
    return RadioModel(name=name, title=str(d["title"]), **nums, tail=tuple(Stage(**s) for s in stages),
                      idle=Stage(**idle), sources={str(k): str(v) for k, v in sources.items()})


_HUANG = "Huang et al., MobiSys 2012"
_ARO_LTE = "same default in AT&T ARO ProfileLTE.java"

#: LTE after Huang et al., MobiSys 2012 (Tables 3 and 4; DRX timers from its Section 3).
LTE = {
    "name": "lte",
    "title": "LTE (Huang et al., MobiSys 2012)",
    "promotion_s": 0.2601,
    "promotion_power_w": 1.2107,
    "transfer_power_w": 1.28804,
    "alpha_up_w_per_mbps": 0.43839,
    "alpha_down_w_per_mbps": 0.05197,
    "burst_gap_s": 0.100,
    "tail_s": 11.576,
    "tail": [
        {"name": "continuous reception", "duration_s": 0.100, "base_power_w": 1.060},
        {"name": "short DRX", "duration_s": 0.020, "base_power_w": 1.060, "on_power_w": 1.6802, "on_s": 0.001,
         "cycle_s": 0.020},
        {"name": "long DRX", "base_power_w": 1.060, "on_power_w": 1.6801, "on_s": 0.001, "cycle_s": 0.0401},
    ],
    "idle": {"base_power_w": 0.0, "on_power_w": 0.5943, "on_s": 0.0432, "cycle_s": 1.2802},
    "sources": {
        "promotion_s": f"{_HUANG}, Table 3: LTE promotion, Tpro 260.1 ± 15.8 ms ({_ARO_LTE}: 0.26 s)",
        "promotion_power_w": f"{_HUANG}, Table 3: LTE promotion, Ppro 1210.7 ± 85.6 mW ({_ARO_LTE}: 1.21 W)",
        "transfer_power_w": f"{_HUANG}, Table 4: LTE beta = 1288.04 mW",
        "alpha_up_w_per_mbps": f"{_HUANG}, Table 4: LTE alpha_u = 438.39 mW/Mbps ({_ARO_LTE})",
        "alpha_down_w_per_mbps": f"{_HUANG}, Table 4: LTE alpha_d = 51.97 mW/Mbps ({_ARO_LTE})",
        "burst_gap_s": f"{_HUANG}, Section 3: DRX inactivity timer Ti = 100 ms ({_ARO_LTE}: 0.1 s): data within "
                       "Ti of the last keeps the radio in continuous reception",
        "tail_s": f"{_HUANG}, Table 3: LTE tail, Ttail 11576.0 ± 26.1 ms",
        "tail[0]": f"{_HUANG}: continuous reception for Ti = 100 ms at the LTE tail base power, Table 3: "
                   f"1060.0 ± 3.3 mW ({_ARO_LTE}: 1.06 W)",
        "tail[1]": f"{_HUANG}: short DRX for Tis = 20 ms ({_ARO_LTE}: 0.02 s); Table 3: short DRX On 1680.2 ± 15.7 mW "
                   "for Ton 1.0 ± 0.1 ms every Tps 20.0 ± 0.1 ms, the tail base 1060.0 mW between",
        "tail[2]": f"{_HUANG}: long DRX for the rest of Ttail; Table 3: long DRX On 1680.1 ± 14.3 mW for Ton "
                   "1.0 ± 0.1 ms every Tpl 40.1 ± 0.1 ms, the tail base 1060.0 mW between",
        "idle": f"{_HUANG}, Table 3: LTE DRX On in RRC_IDLE 594.3 ± 8.7 mW for Ton 43.2 ± 1.5 ms every Tpi "
                f"1280.2 ± 7.1 ms ({_ARO_LTE}: 0.594 W, 0.043 s, 1.28 s); ours: 0 W between wake-ups, as ARO "
                "sets it (the paper's 11.4 mW screen-off base is the phone's, not the radio's)",
    },
}

#: Wi-Fi power save after the same paper (Tables 3 and 4), measured beside LTE on the same phone.
WIFI = {
    "name": "wifi",
    "title": "Wi-Fi power save (Huang et al., MobiSys 2012)",
    "promotion_s": 0.0791,
    "promotion_power_w": 0.1244,
    "transfer_power_w": 0.13286,
    "alpha_up_w_per_mbps": 0.28317,
    "alpha_down_w_per_mbps": 0.13701,
    "burst_gap_s": 0.100,
    "tail_s": 0.2381,
    "tail": [{"name": "tail", "base_power_w": 0.1193}],
    "idle": {"base_power_w": 0.0, "on_power_w": 0.0772, "on_s": 0.0076, "cycle_s": 0.3082},
    "sources": {
        "promotion_s": f"{_HUANG}, Table 3: WiFi promotion 79.1 ± 15.1 ms",
        "promotion_power_w": f"{_HUANG}, Table 3: WiFi promotion 124.4 ± 2.6 mW",
        "transfer_power_w": f"{_HUANG}, Table 4: WiFi beta = 132.86 mW",
        "alpha_up_w_per_mbps": f"{_HUANG}, Table 4: WiFi alpha_u = 283.17 mW/Mbps",
        "alpha_down_w_per_mbps": f"{_HUANG}, Table 4: WiFi alpha_d = 137.01 mW/Mbps",
        "burst_gap_s": "ours: LTE's Ti (100 ms), so that transfer and tail are split alike on every radio",
        "tail_s": f"{_HUANG}, Table 3: WiFi tail 238.1 ± 9.2 ms",
        "tail[0]": f"{_HUANG}, Table 3: WiFi tail base 119.3 ± 2.5 mW",
        "idle": f"{_HUANG}, Table 3: WiFi beacon (idle) 77.2 ± 1.1 mW for 7.6 ± 0.1 ms every 308.2 ± 1.0 ms; "
                "ours: 0 W between beacons",
    },
}

_ARO_3G = "Qian et al., MobiSys 2011 (ARO), Profile3G.java default"

#: 3G UMTS after Qian et al. (ARO, MobiSys 2011; timers as Carrier 1 of IMC 2010): IDLE, FACH and DCH.
UMTS = {
    "name": "3g",
    "title": "3G UMTS (Qian et al., MobiSys 2011 / IMC 2010)",
    "promotion_s": 2.0,
    "promotion_power_w": 0.53,
    "transfer_power_w": 0.7,
    "alpha_up_w_per_mbps": 0.0,
    "alpha_down_w_per_mbps": 0.0,
    "burst_gap_s": 0.100,
    "tail_s": 17.0,
    "tail": [
        {"name": "DCH tail", "duration_s": 5.0, "base_power_w": 0.7},
        {"name": "FACH tail", "base_power_w": 0.35, "promotion_s": 1.5, "promotion_power_w": 0.55,
         "carry_up_bytes": 543, "carry_down_bytes": 475},
    ],
    "idle": {"base_power_w": 0.0},
    "sources": {
        "promotion_s": f"{_ARO_3G} IDLE_DCH_PROMO_AVG = 2.0 s (IDLE to DCH)",
        "promotion_power_w": f"{_ARO_3G} POWER_IDLE_DCH = 0.53 W",
        "transfer_power_w": f"{_ARO_3G} POWER_DCH = 0.7 W",
        "alpha_up_w_per_mbps": "ARO's 3G model has no throughput term (power by state only)",
        "alpha_down_w_per_mbps": "ARO's 3G model has no throughput term (power by state only)",
        "burst_gap_s": "ours: LTE's Ti (100 ms); in DCH transfer and tail draw the same power, so only the split "
                       "between them depends on it",
        "tail_s": "DCH_FACH_TIMER 5 s + FACH_IDLE_TIMER 12 s, the inactivity timers alpha and beta of Carrier 1 "
                  f"in Qian et al., IMC 2010 ({_ARO_3G}s)",
        "tail[0]": f"{_ARO_3G} DCH_FACH_TIMER = 5 s at POWER_DCH = 0.7 W",
        "tail[1]": f"{_ARO_3G} FACH_IDLE_TIMER = 12 s at POWER_FACH = 0.35 W; back to DCH: FACH_DCH_PROMO_AVG "
                   "= 1.5 s at POWER_FACH_DCH = 0.55 W; carried in FACH under the RLC buffer thresholds "
                   "RLC_UL_TH = 543 B and RLC_DL_TH = 475 B; ours: the thresholds are compared with a whole "
                   "transfer's bytes each way (ARO watches the RLC buffers within a time window)",
        "idle": f"{_ARO_3G} POWER_IDLE = 0 W",
    },
}

#: The built-in models by name (``mailstudy energy --radio NAME``).
MODELS: dict[str, RadioModel] = {m["name"]: model_from_dict(m, f"built-in model {m['name']!r}")
                                 for m in (LTE, UMTS, WIFI)}


def get_model(name: str) -> RadioModel:
    """The built-in model ``name`` (``lte``, ``3g``, ``wifi``); a :class:`ModelError` lists them otherwise."""
    try:
        return MODELS[name.lower()]
    except (KeyError, AttributeError):
        raise ModelError(f"unknown radio model {name!r} (known: {', '.join(MODELS)}; or a model file "
                         "with --radio-file)") from None
