"""Round trips and latency: the sweeps behind notebook ``03-round-trips-and-latency``.

Why a module of its own: the notebook asks five questions of two kinds of runs, and the sweeps and the
arithmetic on their rows live here (orchestration); the charts are in :mod:`mailstudy.faces.plots`.

* *Measured* cells run real sessions through the link relay (:mod:`mailstudy.link`) with a named profile: the
  time to list, the time to open each message, and the whole session's duration, as the client saw them.
* *Modelled* cells run their repeats through the model's baseline link (exact counts, and the work as a
  network makes client and server do it) and take the median of their times on every profile from
  :func:`mailstudy.link.predict`; that is how a sweep covers loopback to satellite without waiting minutes per
  cell. :func:`model_vs_measured` puts the two side by side, so the model's error is always shown.

Every table is a median over seeds with its bootstrap interval (:mod:`mailstudy.study.intervals`): a seed is a
corpus, an opened set, the link's jitter and each profile's sample from its published spread
(:meth:`mailstudy.link.Profile.sample`); measured and modelled cells of one seed see the same sampled network, so
the model's error is taken per seed before its median. Measured cells time real sessions and run one at a time;
model cells run through :func:`mailstudy.study.modelled.model_sweep`, one cell per experiment and seed covering
every profile (so the tables share their sessions: the counts of a seed are measured once).

Every sweep runs on the study's network conditions (:mod:`mailstudy.study.network`): implicit TLS 1.3, TCP as it
behaves and each profile's loss by default; ``conditions="control"`` gives the clear-text, loss-free numbers.
"""

from __future__ import annotations

from dataclasses import replace

from mailstudy.link import PROFILES, get_profile
from mailstudy.study import link_sweeps
from mailstudy.study.experiment import Experiment, four_strategies, medians, sweep
from mailstudy.study.intervals import breakeven_summary, summarize
from mailstudy.study.modelled import breakeven_sweep, model_sweep, sampled
from mailstudy.study.network import Conditions, conditions as network_conditions

#: The columns that say which cell a row belongs to (for joining measured and modelled rows), apart from its seed.
CELL = ["server", "protocol", "strategy", "label", "messages", "read_fraction", "batch", "pipelining", "profile"]
TIMES = ["duration_s", "time_to_list_s", "open_median_s", "open_p95_s"]
#: The break-even figures that are read fractions (a distribution over seeds, "never" included).
BREAKEVEN_FRACTIONS = ["bytes_r", "waiting_r"]


def profiles_by_rtt(names=None) -> list[str]:
    """Profile names (all by default) ordered from the shortest round trip to the longest."""
    names = list(names or PROFILES)
    return sorted(names, key=lambda n: (get_profile(n).rtt_s, n))


def measured(base: Experiment, profiles, cache_dir=None, progress: bool = False,
             conditions: str | Conditions = "realistic", seeds=None):
    """The four strategies through the link on each profile (``base.repeats`` sessions each) on each of
    ``seeds`` (``base.seed`` alone by default), each seed's profile as sampled for it, on the network
    ``conditions``: raw rows. Timing cells: they run one at a time."""
    net = network_conditions(conditions)
    cells = [replace(e, seed=s, profile=p) for s in (seeds if seeds is not None else [base.seed])
             for p in sampled(profiles, s, net) for e in four_strategies(net.experiment(base))]
    return sweep(cells, cache_dir=cache_dir, progress=progress)


def measured_medians(df):
    """Median of the repeats per cell and seed (times are reported as medians)."""
    return medians(df, by=[c for c in CELL + ["seed"] if c in df.columns])


def _variant(row: dict) -> str:
    if row["protocol"] == "imap":
        return f"IMAP {row['strategy']}, " + ("batched FETCH" if row["batch"] else "one FETCH per message")
    return f"POP3 {row['strategy']}, " + ("pipelined" if row["pipelining"] else "one command at a time")


def model_cells(base: Experiment) -> list[Experiment]:
    """Every cell the model tables need: the four strategies, and the other half of the pipelining and
    batching comparison (IMAP one FETCH per message, POP3 pipelined, header-first and download-all)."""
    cells = four_strategies(base)
    for strategy in ("header-first", "download-all"):
        cells += [replace(base, protocol="imap", strategy=strategy, batch=False),
                  replace(base, protocol="pop3", strategy=strategy, pipelining=True)]
    return cells


def model_vs_measured(measured_df, modelled_df):
    """One row per cell, seed and time: ``measured`` (median of repeats), ``model`` (on the same seed's sampled
    profile) and ``error`` (relative)."""
    import pandas as pd

    m = measured_medians(measured_df)
    keys = [c for c in CELL + ["seed"] if c in m.columns and c in modelled_df.columns]
    joined = m.merge(modelled_df[keys + TIMES], on=keys, suffixes=("_measured", "_model"))
    frames = []
    for t in ("duration_s", "time_to_list_s"):
        part = joined[keys].copy()
        part["time"] = t
        part["measured"] = joined[f"{t}_measured"]
        part["model"] = joined[f"{t}_model"]
        frames.append(part)
    out = pd.concat(frames, ignore_index=True)
    out["error"] = (out["model"] - out["measured"]) / out["measured"]
    return out


def swept_profiles(conditions: str | Conditions = "realistic") -> tuple[list, list]:
    """:mod:`mailstudy.study.link_sweeps`' profiles (RTT moved at fixed bandwidth, bandwidth moved at fixed RTT),
    each with the study conditions' loss of the profile it starts from and named by the figure it moves, so that
    a summary per profile keeps them apart."""
    net = network_conditions(conditions)

    def named(p, name: str):
        return replace(get_profile(net.profile(p)), name=name)

    by_rtt = [named(p, f"{p.name} at {p.rtt_s * 1000:g} ms") for p in link_sweeps.rtt_sweep()]
    by_rate = [named(p, f"{p.name} at {p.down_bps / 1e6:g} Mbit/s") for p in link_sweeps.bandwidth_sweep()]
    return by_rtt, by_rate


def _with_figures(df, profiles):
    """``df``'s rows of ``profiles`` (by name), each with its profile's RTT and rates (break-even rows lack them)."""
    by_name = {p.name: p for p in profiles}
    part = df[df["profile"].isin(by_name)].copy()
    for col in ("rtt_s", "down_bps", "up_bps"):
        part[col] = [getattr(by_name[n], col) for n in part["profile"]]
    return part.reset_index(drop=True)


def latency_tables(base: Experiment, profiles_measured, profiles_modelled, seeds, cache_dir=None,
                   conditions: str | Conditions = "realistic", executor=None) -> dict:
    """Notebook 03's tables over ``seeds``, each a summary (median, ``_lo``, ``_hi``, ``seeds``) with its
    per-seed rows beside it (``NAME_seeds``): ``latency_measured`` (through the link), ``model_vs_measured``,
    ``waiting_vs_rtt`` and ``waiting_vs_bandwidth`` (the model with one figure of 4g moved at a time:
    :func:`swept_profiles`), ``pipelining_batching``, and the break-even read fractions as distributions over the
    seeds: ``breakeven_per_profile`` (the named profiles), ``breakeven_vs_rtt`` and ``breakeven_vs_bandwidth``.

    ``executor`` runs the model cells (their counts are exact anywhere; their work times are the machine's, so
    the default runs them here, one at a time); the measured cells always run one at a time."""
    net = network_conditions(conditions)
    seeds = list(seeds)
    modelled_profiles = profiles_by_rtt(profiles_modelled)
    by_rtt, by_rate = swept_profiles(net)
    every = list(dict.fromkeys([*modelled_profiles, *profiles_measured])) + by_rtt + by_rate
    meas = measured(base, profiles_measured, cache_dir, conditions=net, seeds=seeds)
    model = model_sweep(model_cells(replace(base, repeats=1)), every, seeds, net.name, cache_dir, executor)
    model["variant"] = [_variant(r) for r in model.to_dict("records")]
    four = model[model["batch"] & ~model["pipelining"]]
    versus = model_vs_measured(meas, four[four["profile"].isin(profiles_measured)])
    even_all = breakeven_sweep(replace(base, repeats=1), [*modelled_profiles, *by_rtt, *by_rate], seeds, net.name,
                               cache_dir, executor)
    per_seed = {"latency_measured": meas, "model_vs_measured": versus,
                "waiting_vs_rtt": _with_figures(four, by_rtt), "waiting_vs_bandwidth": _with_figures(four, by_rate),
                "pipelining_batching": model[model["profile"].isin(profiles_measured)],
                "breakeven_per_profile": even_all[even_all["profile"].isin(modelled_profiles)].reset_index(drop=True),
                "breakeven_vs_rtt": _with_figures(even_all, by_rtt),
                "breakeven_vs_bandwidth": _with_figures(even_all, by_rate)}
    keys = {"latency_measured": CELL, "model_vs_measured": CELL + ["time"], "waiting_vs_rtt": CELL,
            "waiting_vs_bandwidth": CELL, "pipelining_batching": CELL + ["variant"]}
    out = {}
    for name, df in per_seed.items():
        out[f"{name}_seeds"] = df
        if name.startswith("breakeven_"):
            out[name] = _breakeven_summary(df)
        else:
            out[name] = summarize(df, [k for k in keys[name] if k in df.columns])
    return out


def _breakeven_summary(df):
    """Per protocol and profile: the break-even fractions as distributions, every other figure's median and
    interval."""
    by = ["protocol", "profile"]
    fractions = breakeven_summary(df, by, BREAKEVEN_FRACTIONS)
    rest = summarize(df.drop(columns=BREAKEVEN_FRACTIONS), by)
    return fractions.merge(rest[[c for c in rest.columns if c not in fractions.columns or c in by]], on=by)
