"""Per-seed rows into a summary: for each group, the median over its seeds and a 95 % bootstrap interval of it.

Why a module of its own: a study number is a median over several seeds (corpus, opened set, jitter, the
network profile's sample), never one seed's value, and every table and chart must say how sure it is in the
same way. This is the one place that turns per-seed rows into that summary.

The column convention is a shared interface (the charts draw intervals from exactly these columns): for each
metric ``m`` a summary carries

* ``m``: the median over the group's seeds,
* ``m_lo`` and ``m_hi``: the 95 % percentile-bootstrap interval of that median
  (:func:`scipy.stats.bootstrap`, :data:`RESAMPLES` resamples from a generator seeded with :data:`RNG_SEED`,
  so the same rows give the same interval every run),
* ``seeds``: how many seeds the group has.

One seed gives ``m_lo == m_hi == m`` and ``seeds == 1``; a group whose seeds all agree (a count that does not
depend on the seed) gives the same, without resampling.

Break-even read fractions get :func:`breakeven_distribution`: their median and interval, how many seeds never
break even (header-first stays cheaper at every fraction) and the per-seed values themselves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

#: The interval's confidence level.
CONFIDENCE = 0.95
#: Bootstrap resamples per interval (scipy's default).
RESAMPLES = 9999
#: The bootstrap generator's seed: the interval is a pure function of the rows.
RNG_SEED = 0
#: The column that names a row's seed.
SEED = "seed"
#: Columns that are never metrics (they say which run a row is, not what it measured).
NOT_METRICS = (SEED, "repeat", "seeds", "sample_seed")


def median_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(median, lo, hi)`` of ``values`` (NaN and None left out): the median and its percentile-bootstrap
    interval. All NaN when no value is left; ``lo == hi == median`` when there is one value or all agree."""
    import numpy as np
    from scipy.stats import bootstrap

    vals = np.array([float(v) for v in values if v is not None and not _nan(v)], dtype=float)
    if vals.size == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(vals))
    if vals.size == 1 or bool(np.all(vals == vals[0])):
        return med, med, med
    res = bootstrap((vals,), np.median, confidence_level=confidence, n_resamples=RESAMPLES, method="percentile",
                    vectorized=True, axis=-1, rng=np.random.default_rng(RNG_SEED))
    lo, hi = (float(x) for x in res.confidence_interval)
    return med, min(lo, med), max(hi, med)


def _nan(v) -> bool:
    try:
        return math.isnan(v)
    except TypeError:  # not a number at all: a caller's mistake, which float() below reports
        return False


def metric_columns(df, by: Sequence[str]) -> list[str]:
    """The numeric columns of ``df`` that are measurements: not a group key, not the seed or the repeat, not
    an interval column already."""
    skip = set(by) | set(NOT_METRICS)
    return [c for c in df.select_dtypes("number").columns
            if c not in skip and not c.endswith(("_lo", "_hi")) and df[c].dtype != bool]


def summarize(df, by: Sequence[str], metrics: Sequence[str] | None = None, seed_column: str = SEED):
    """One row per group of ``by``: each metric's median over the group's rows with ``_lo``/``_hi`` (module
    docstring), ``seeds`` (the group's distinct seeds), and every other column whose value is the same on all
    the group's rows (a profile's RTT, a label), so a summary still carries what a chart labels with.

    ``metrics`` defaults to every numeric column that is not a key (:func:`metric_columns`). Rows are expected
    to be one per seed (take the median of repeats first); a group's order is its first appearance."""
    import pandas as pd

    by = list(by)
    metrics = list(metrics) if metrics is not None else metric_columns(df, by)
    others = [c for c in df.columns if c not in by and c not in metrics and c not in NOT_METRICS]
    out, mixed = [], set()
    for keys, g in df.groupby(by, sort=False, dropna=False):
        rec = _group_head(by, keys, g, seed_column)
        for m in metrics:
            med, lo, hi = median_interval(g[m].tolist())
            rec.update({m: med, f"{m}_lo": lo, f"{m}_hi": hi})
        rec.update(_constants(g, others, mixed))
        out.append(rec)
    return pd.DataFrame(out).drop(columns=sorted(mixed), errors="ignore")


def _group_head(by: list[str], keys, g, seed_column: str) -> dict:
    """A summary row's keys and its ``seeds`` (distinct seeds, or rows where there is no seed column)."""
    rec = dict(zip(by, keys if isinstance(keys, tuple) else (keys,)))
    rec["seeds"] = int(g[seed_column].nunique()) if seed_column in g else len(g)
    return rec


def _constants(g, columns, mixed: set) -> dict:
    """The columns whose value is the same on all of ``g``'s rows (NaN counts as no value); the others are added
    to ``mixed`` (dropped from the whole summary: a column must mean the same on every row)."""
    out = {}
    for c in columns:
        given = [v for v in g[c].tolist() if not _missing(v)]
        if len({json.dumps(v, sort_keys=True, default=str) for v in given}) > 1:  # lists and dicts too
            mixed.add(c)
        else:
            out[c] = given[0] if given else None
    return out


def _missing(v) -> bool:
    import pandas as pd

    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def breakeven_distribution(values: Iterable[float | None], confidence: float = CONFIDENCE) -> dict:
    """A break-even read fraction over seeds: ``median``, ``lo``, ``hi`` (its bootstrap interval), ``seeds``,
    ``never`` (how many seeds never break even: None) and ``values`` (per seed, as given).

    A break-even may lie outside [0, 1] (one strategy then wins at every read fraction: a figure, kept). A seed
    that never breaks even (None: header-first's cost does not grow with the fraction) ranks above every figure
    (as :data:`NEVER_RANK`), so a median or a bound that lands among those ranks means "never" and is None."""
    given = list(values)
    ranked = [NEVER_RANK if v is None or _nan(v) else float(v) for v in given]
    med, lo, hi = median_interval(ranked, confidence) if ranked else (math.nan,) * 3
    out = {k: None if _nan(x) or x > NEVER_ABOVE else x for k, x in (("median", med), ("lo", lo), ("hi", hi))}
    return {**out, "seeds": len(given), "never": sum(1 for v in given if v is None or _nan(v)),
            "values": [None if v is None or _nan(v) else float(v) for v in given]}


#: Where a seed that never breaks even ranks: far above any break-even a session can give. A median or an
#: interval bound above :data:`NEVER_ABOVE` is a mix with such seeds (the bootstrap interpolates between
#: neighbours): "never". A finite sentinel, not infinity, because interpolating towards infinity gives NaN.
NEVER_RANK = 1e12
NEVER_ABOVE = 1e6


def breakeven_summary(df, by: Sequence[str], columns: Sequence[str], seed_column: str = SEED):
    """Per group of ``by``, each break-even column's distribution over the seeds (:func:`breakeven_distribution`):
    ``col``, ``col_lo``, ``col_hi`` (None where "never"), ``col_never`` (seeds that never break even),
    ``col_values`` (per seed, ``;``-joined in seed order, ``never`` for None), and ``seeds``. Other columns
    equal on all of a group's rows are kept (as in :func:`summarize`)."""
    import pandas as pd

    by = list(by)
    others = [c for c in df.columns if c not in by and c not in columns and c not in NOT_METRICS]
    out, mixed = [], set()
    for keys, g in df.groupby(by, sort=False, dropna=False):
        g = g.sort_values(seed_column) if seed_column in g else g
        rec = _group_head(by, keys, g, seed_column)
        for c in columns:
            d = breakeven_distribution([None if pd.isna(v) else v for v in g[c].tolist()])
            rec.update({c: d["median"], f"{c}_lo": d["lo"], f"{c}_hi": d["hi"], f"{c}_never": d["never"],
                        f"{c}_values": ";".join("never" if v is None else f"{v:.4g}" for v in d["values"])})
        rec.update(_constants(g, others, mixed))
        out.append(rec)
    return pd.DataFrame(out).drop(columns=sorted(mixed), errors="ignore")
