"""Times from the model, counts from real sessions: model sweeps and break-even read fractions.

Why a module of its own: this is what makes big sweeps cheap (docs/design.md, "Networks"). Each cell runs its repeats
(one by default) through the model's baseline link (:data:`mailstudy.link.BASELINE`, 0.5 ms, nothing else
shaped: the counts equal loopback's exactly and the work is timed as on a network, see
:mod:`mailstudy.link.model`), and :func:`mailstudy.link.predict` gives their times on every profile without
waiting (medians over the repeats); :mod:`mailstudy.study.experiment` runs the real thing through the link when
a time must be measured, which is how the model is checked.

Both sweeps run on the study's network conditions (:mod:`mailstudy.study.network`): by default implicit TLS 1.3
and each profile's loss (``conditions="realistic"``); ``"control"`` gives the clear-text, loss-free numbers and
``"as-given"`` leaves each experiment's TLS and each profile's loss as they are.

Over seeds: a :class:`ModelledCell` is one seed's share of a model sweep, the unit the
study's :func:`~mailstudy.study.experiment.sweep` caches (keyed on the seed, so a stopped sweep resumes). Each
puts its seed's sessions through each profile as sampled for that seed (:meth:`mailstudy.link.Profile.sample`:
a profile with a published spread is one user's network per seed), so the median over seeds covers the corpus,
the opened set and the network's spread at once.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

from mailstudy import __version__
from mailstudy.link import BASELINE, Profile, breakeven, get_profile, predict
from mailstudy.study.experiment import Experiment, run_experiment, sweep
from mailstudy.study.network import Conditions, conditions as network_conditions


def baseline_sessions(exp: Experiment) -> tuple[list[dict], list]:
    """The rows and the :class:`~mailstudy.live.access.SessionResult` of each of ``exp.repeats`` sessions of
    ``exp`` through the baseline link (its profile is ignored): what the model reads."""
    results: list = []
    rows = run_experiment(replace(exp, profile=BASELINE), results=results)
    return rows, results


#: The times a model row carries: the median over the cell's baseline sessions of each. ``local_s`` is the
#: sessions' own work as measured on this machine (server and client time), ``network_s`` the rest of
#: ``duration_s`` (:func:`mailstudy.link.model.local_time`): the two are never added without saying so.
MODEL_TIMES = ("duration_s", "time_to_list_s", "open_median_s", "open_p95_s", "local_s", "network_s")


def model_rows(experiments: Iterable[Experiment], profiles: Iterable[str | Profile],
               conditions: str | Conditions = "realistic") -> list[dict]:
    """One row per experiment and profile: the baseline sessions' counts, the model's times on the profile, on
    the network ``conditions`` (module docstring).

    Each experiment runs ``repeats`` baseline sessions (the counts are the same in each) and each time is the
    median of the model's times from them: one session's work carries the machine's noise, and a single
    outlier put the model 28 % off a LAN cell that the median of three put within 3 %."""
    net = network_conditions(conditions)
    profiles = [get_profile(net.profile(p)) for p in profiles]
    out = []
    for exp in experiments:
        rows, results = baseline_sessions(net.experiment(exp))
        for p in profiles:
            times = [predict(r, p) for r in results]
            med = {k: _median(t[k] for t in times) for k in MODEL_TIMES}
            out.append({**rows[0], **p.params(), **med, "modelled": True, "conditions": net.name})
    return out


def _median(values) -> float | None:
    got = sorted(v for v in values if v is not None)
    return statistics.median(got) if got else None


def breakeven_rows(base: Experiment, profiles: str | Profile | Iterable[str | Profile],
                   protocols: Iterable[str] = ("imap", "pop3"),
                   conditions: str | Conditions = "realistic") -> list[dict]:
    """Per protocol and profile, the read fractions above which header-first moves more bytes, or makes the user
    wait longer in total, than download-all, on ``base``'s mailbox (see :func:`mailstudy.link.breakeven`), on
    the network ``conditions`` (module docstring; each row names them, its TLS and its loss). The sessions run
    once for all profiles; with ``base.repeats`` > 1 each figure is the median over that many triples of
    baseline sessions."""
    net = network_conditions(conditions)
    profiles = [profiles] if isinstance(profiles, (str, Profile)) else list(profiles)
    profiles = [get_profile(net.profile(p)) for p in profiles]
    base = net.experiment(base)
    out = []
    for protocol in protocols:
        cell = replace(base, protocol=protocol, preview=0)
        _, none = baseline_sessions(replace(cell, strategy="header-first", read_fraction=0.0))
        _, every = baseline_sessions(replace(cell, strategy="header-first", read_fraction=1.0))
        _, whole = baseline_sessions(replace(cell, strategy="download-all"))
        for profile in profiles:
            each = [breakeven(n, e, w, profile) for n, e, w in zip(none, every, whole)]
            figures = {k: (_median(b[k] for b in each) if k != "profile" else v) for k, v in each[0].items()}
            out.append({"protocol": protocol, "messages": base.messages, "sizes": base.sizes, "seed": base.seed,
                        "server": base.server, "conditions": net.name, "tls": base.tls,
                        "tls_version": base.tls_version if base.tls != "none" else None, "loss": profile.loss,
                        **figures})
    return out


def sampled(profiles: Iterable[str | Profile], seed: int, conditions: str | Conditions = "realistic") -> list[Profile]:
    """Each profile with the conditions' loss, as drawn for ``seed`` from its published spread (unchanged when it
    has none)."""
    net = network_conditions(conditions)
    return [get_profile(net.profile(p)).sample(seed) for p in profiles]


def _cell_key(kind: str, exp: Experiment, profiles: tuple, conditions: str) -> str:
    blob = json.dumps({"kind": kind, "exp": exp.key(), "conditions": conditions, "version": __version__,
                       "profiles": [asdict(get_profile(p)) for p in profiles]}, sort_keys=True, default=str)
    return f"{kind}-" + hashlib.sha256(blob.encode()).hexdigest()[:20]


#: what a :class:`ModelledCell` computes: its rows' function and the words its label starts with
KINDS = {"model": "model", "breakeven": "break-even"}


@dataclass(frozen=True)
class ModelledCell:
    """One seed's share of a model sweep, the unit the study's sweep caches and spreads over its executor:
    ``kind`` "model" is :func:`model_rows` of ``exp`` on each of ``profiles`` as sampled for ``exp.seed``;
    "breakeven" is :func:`breakeven_rows` of ``exp`` (the base experiment) on them."""

    kind: str
    exp: Experiment
    profiles: tuple = ()
    conditions: str = "realistic"

    def key(self) -> str:
        return _cell_key(self.kind, self.exp, self.profiles, self.conditions)

    @property
    def label(self) -> str:
        what = f"model {self.exp.label}" if self.kind == "model" else KINDS[self.kind]
        return f"{what}, seed {self.exp.seed}"

    @property
    def server(self) -> str:
        return self.exp.server


def run_modelled_cell(cell: ModelledCell) -> list[dict]:
    """The rows of one :class:`ModelledCell`."""
    profiles = sampled(cell.profiles, cell.exp.seed, cell.conditions)
    if cell.kind == "model":
        return model_rows([cell.exp], profiles, cell.conditions)
    return breakeven_rows(cell.exp, profiles, conditions=cell.conditions)


def model_sweep(experiments: Iterable[Experiment], profiles, seeds: Iterable[int], conditions: str = "realistic",
                cache_dir=None, executor=None):
    """:func:`model_rows` of each experiment on each of ``seeds`` (its corpus, opened set and sampled profiles),
    one row per experiment, seed and profile, through the study's sweep (cached per seed)."""
    profiles = tuple(profiles)
    cells = [ModelledCell("model", replace(e, seed=s), profiles, conditions) for s in seeds for e in experiments]
    return sweep(cells, cache_dir=cache_dir, executor=executor, progress=False, run=run_modelled_cell)


def breakeven_sweep(base: Experiment, profiles, seeds: Iterable[int], conditions: str = "realistic",
                    cache_dir=None, executor=None):
    """:func:`breakeven_rows` on each of ``seeds``: one row per seed, protocol and profile (sampled per seed)."""
    cells = [ModelledCell("breakeven", replace(base, seed=s), tuple(profiles), conditions) for s in seeds]
    return sweep(cells, cache_dir=cache_dir, executor=executor, progress=False, run=run_modelled_cell)
