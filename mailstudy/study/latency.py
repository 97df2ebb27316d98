"""Round trips and latency: the sweeps behind notebook ``03-round-trips-and-latency``.

Why a module of its own: the notebook asks five questions of two kinds of runs, and the sweeps and the
arithmetic on their rows live here (orchestration); the charts are in :mod:`mailstudy.faces.plots`.

* *Measured* cells run real sessions through the link relay (:mod:`mailstudy.link`) with a named profile: the
  time to list, the time to open each message, and the whole session's duration, as the client saw them.
* *Modelled* cells run their repeats through the model's baseline link (exact counts, and the work as a
  network makes client and server do it) and take the median of their times on every profile from
  :func:`mailstudy.link.predict`; that is how a sweep covers loopback to satellite without waiting minutes per
  cell. :func:`model_vs_measured` puts the two side by side, so the model's error is always shown.

Every sweep runs on the study's network conditions (:mod:`mailstudy.study.network`): implicit TLS 1.3, TCP as it
behaves and each profile's loss by default; ``conditions="control"`` gives the clear-text, loss-free numbers.
"""

from __future__ import annotations

from dataclasses import replace

from mailstudy.link import PROFILES, get_profile
from mailstudy.study.experiment import Experiment, four_strategies, medians, sweep
from mailstudy.study.modelled import breakeven_rows, model_rows
from mailstudy.study.network import Conditions, conditions as network_conditions

#: The columns that say which cell a row belongs to (for joining measured and modelled rows).
CELL = ["server", "protocol", "strategy", "label", "messages", "read_fraction", "batch", "pipelining", "profile"]
TIMES = ["duration_s", "time_to_list_s", "open_median_s", "open_p95_s"]


def profiles_by_rtt(names=None) -> list[str]:
    """Profile names (all by default) ordered from the shortest round trip to the longest."""
    names = list(names or PROFILES)
    return sorted(names, key=lambda n: (get_profile(n).rtt_s, n))


def measured(base: Experiment, profiles, cache_dir=None, progress: bool = False,
             conditions: str | Conditions = "realistic"):
    """The four strategies through the link on each profile (``base.repeats`` sessions each), on the network
    ``conditions``: raw rows."""
    net = network_conditions(conditions)
    cells = [replace(e, profile=net.profile(p)) for p in profiles for e in four_strategies(net.experiment(base))]
    return sweep(cells, cache_dir=cache_dir, progress=progress)


def measured_medians(df):
    """Median of the repeats per cell (times are reported as medians)."""
    return medians(df, by=[c for c in CELL if c in df.columns])


def modelled(base: Experiment, profiles, conditions: str | Conditions = "realistic"):
    """The four strategies' counts, with the model's times on each profile (medians over ``base.repeats``
    baseline sessions), on the network ``conditions``."""
    import pandas as pd

    return pd.DataFrame(model_rows(four_strategies(base), profiles, conditions))


def model_vs_measured(measured_df, modelled_df):
    """One row per cell and time: ``measured`` (median of repeats), ``model`` and ``error`` (relative)."""
    import pandas as pd

    m = measured_medians(measured_df)
    keys = [c for c in CELL if c in m.columns and c in modelled_df.columns]
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


def pipelining_and_batching(base: Experiment, profiles, conditions: str | Conditions = "realistic"):
    """IMAP batched against one FETCH per message, POP3 pipelined against one command at a time (header-first
    at ``base.read_fraction`` and download-all): round trips counted, times from the model."""
    import pandas as pd

    cells = []
    for strategy in ("header-first", "download-all"):
        imap = replace(base, protocol="imap", strategy=strategy)
        pop3 = replace(base, protocol="pop3", strategy=strategy)
        cells += [replace(imap, batch=True), replace(imap, batch=False),
                  replace(pop3, pipelining=False), replace(pop3, pipelining=True)]
    df = pd.DataFrame(model_rows(cells, profiles, conditions))
    df["variant"] = [_variant(r) for r in df.to_dict("records")]
    return df


def _variant(row: dict) -> str:
    if row["protocol"] == "imap":
        return f"IMAP {row['strategy']}, " + ("batched FETCH" if row["batch"] else "one FETCH per message")
    return f"POP3 {row['strategy']}, " + ("pipelined" if row["pipelining"] else "one command at a time")


def breakeven_table(base: Experiment, profiles, conditions: str | Conditions = "realistic"):
    """The break-even read fractions (bytes and waiting) per profile and protocol, from the model, on the
    network ``conditions``."""
    import pandas as pd

    return pd.DataFrame(breakeven_rows(base, profiles, conditions=conditions))
