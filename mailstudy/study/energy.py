"""The study's energy question: joules per day for each way of getting mail, on LTE, 3G and Wi-Fi, over seeds.

Why a module of its own: notebook 07 asks what IMAP push (IDLE) and polling at 5, 15 and 60 minutes cost a
phone's radio per day, how much of it is tail, and what a user trades for it in staleness. Each *setting* is one
device on one account for a simulated day (:mod:`mailstudy.live.fleet`: every session real, the clock
simulated), priced on each radio model by :mod:`mailstudy.energy.day`; a setting changes one thing at a time
(the same Thunderbird profile holds IDLE or polls at each interval; one POP3 keep-mode point beside them).
Several seeds (different arrival times and reads) give each number an interval: the tables carry the median and
its 95 % bootstrap interval over the seeds (:mod:`mailstudy.study.intervals`).

JMAP's column (issue 20, :func:`catch_up_energy`): the catch-up of :func:`mailstudy.study.jmap_cell.catch_up`
(a change sync after new mail, a poll that finds nothing), IMAP against JMAP on one Cyrus through a link, each
session priced as it crossed the phone's socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable

from mailstudy.energy.day import fleet_energy_rows
from mailstudy.energy.radios import MODELS, RadioModel
from mailstudy.study.fleet import FleetCell
from mailstudy.study.parameters import ParameterError, check_seeds  # noqa: F401  (check_seeds: its home)

if TYPE_CHECKING:  # pragma: no cover
    import pandas


@dataclass(frozen=True)
class Setting:
    """One way of getting mail on the phone: a client profile, IDLE or a poll interval."""

    label: str
    client: str
    poll_s: float | None = None  # None with idle: the connection is held open
    idle: bool = False


#: IMAP push against polling at 5, 15 and 60 minutes (one client profile, Thunderbird, so only that changes),
#: and POP3 keep mode polling every 15 minutes.
STANDARD_SETTINGS = (
    Setting("IMAP IDLE (push)", "thunderbird", None, True),
    Setting("IMAP poll 5 min", "thunderbird", 300.0),
    Setting("IMAP poll 15 min", "thunderbird", 900.0),
    Setting("IMAP poll 60 min", "thunderbird", 3600.0),
    Setting("POP3 keep, poll 15 min", "thunderbird-pop3", 900.0),
)

SUMMARY_COLUMNS = ("joules_per_day", "tail_share", "promotion_j", "transfer_j", "tail_j", "idle_j", "promotions",
                   "staleness_median_s")


def energy_day_rows(settings: Iterable[Setting] = STANDARD_SETTINGS, seeds: Iterable[int] = (0, 1, 2),
                    hours: float = 24.0, rate: float = 100.0, server: str = "embedded",
                    models: Iterable[RadioModel] = tuple(MODELS.values()), read_fraction: float = 0.5,
                    progress=None, cache_dir=None) -> "pandas.DataFrame":
    """One row per setting, seed and radio: the device's fleet row with its joules by state (per day); each
    device's day read from ``cache_dir`` when there (:func:`fleet_day`)."""
    import pandas as pd

    models = list(models)
    rows = []
    todo = [(s, seed) for s in settings for seed in check_seeds(list(seeds))]
    for n, (s, seed) in enumerate(todo, 1):
        cell = FleetCell(server=server, devices=1, clients=(s.client,), hours=hours, rate=rate, poll_s=s.poll_s,
                         idle=s.idle, seed=seed, read_fraction=read_fraction)
        for r in fleet_energy_rows(cell, models, rows=fleet_day(cell, cache_dir)):
            rows.append({"setting": s.label, **r})
        if progress:
            progress(n, len(todo))
    return pd.DataFrame(rows)


@lru_cache(maxsize=None)
def fleet_day(cell: FleetCell, cache_dir=None) -> dict[str, list[dict]]:
    """The rows of one device's day (as :func:`mailstudy.study.fleet.run_fleet_rows` gives them), run once per
    process and, with ``cache_dir`` (the fleet sweep's cache), once per study: the batching what-if prices the
    very days :func:`energy_day_rows` ran, and notebook 06's phone claims price days notebook 07 runs (same
    cells); running them again took as long as the first time (issue 17: ``make study`` in 15 minutes).
    Callers must not change them."""
    from mailstudy.study.experiment import cell_rows
    from mailstudy.study.fleet import run_fleet_cell

    out: dict[str, list[dict]] = {"devices": [], "fleet": [], "sessions": []}
    for r in cell_rows(cell, cache_dir, run=run_fleet_cell):
        row = dict(r)
        out[{"device": "devices", "session": "sessions"}.get(row.pop("row"), "fleet")].append(row)
    return out


def summarize(rows: "pandas.DataFrame") -> "pandas.DataFrame":
    """Per setting and radio: the median over seeds of each of :data:`SUMMARY_COLUMNS`, with its 95 % bootstrap
    interval (``_lo``, ``_hi``) and ``seeds``: the study's one summary (:func:`mailstudy.study.intervals.summarize`)."""
    from mailstudy.study.intervals import summarize as summary

    order = list(dict.fromkeys(rows["setting"]))
    frame = summary(rows, ["setting", "radio"], list(SUMMARY_COLUMNS))
    frame = frame[["setting", "radio", "seeds"] + [c for m in SUMMARY_COLUMNS for c in (m, f"{m}_lo", f"{m}_hi")]]
    frame["order"] = frame["setting"].map(order.index)
    return frame.sort_values(["radio", "order"]).drop(columns="order").reset_index(drop=True)


#: The batch sizes of the batching what-if: 0 is the day as measured (every poll), then the first poll after
#: 1, 2, 4 and 8 new arrivals.
BATCHES = (0, 1, 2, 4, 8)


def batching_rows(settings: Iterable[Setting] = STANDARD_SETTINGS, seeds: Iterable[int] = (0, 1, 2),
                  hours: float = 24.0, rate: float = 100.0, server: str = "embedded",
                  models: Iterable[RadioModel] = tuple(MODELS.values()), batches: Iterable[int] = BATCHES,
                  progress=None, cache_dir=None) -> "pandas.DataFrame":
    """The batching what-if (issue 19 item 4): each polling setting's real fleet day, priced as measured
    (``batch`` 0) and with the device fetching only on the first poll after ``batch`` new arrivals
    (:func:`mailstudy.energy.fleet.batched_polls`, whose assumptions are ours). One row per setting, seed,
    radio and batch: joules per day by state, ``tail_share``, ``polls`` kept, ``saving`` (the share of the
    measured day's joules the batching saves) and ``staleness_median_s`` (arrival to fetch, median). IDLE
    settings are left out: push has no polls to skip."""
    import statistics

    import pandas as pd

    from mailstudy.energy.fleet import batched_polls, device_day_ledger
    from mailstudy.live.fleet import plan
    from mailstudy.live.idle import KEEPALIVE_S

    models, batches = list(models), sorted(set(batches) | {0})
    todo = [(s, seed) for s in settings if not s.idle for seed in check_seeds(list(seeds))]
    rows = []
    for n, (s, seed) in enumerate(todo, 1):
        cell = FleetCell(server=server, devices=1, clients=(s.client,), hours=hours, rate=rate, poll_s=s.poll_s,
                         seed=seed)
        fleet, spec = fleet_day(cell, cache_dir), cell.spec()
        arrivals = list(plan(spec).arrivals)
        for batch in batches:
            sessions, delays = batched_polls(fleet["sessions"], 0, arrivals, batch, spec.period_s)
            polls = sum(1 for x in sessions if not x.get("final_round"))
            for model in models:
                led = device_day_ledger(model, sessions, 0, spec.period_s, KEEPALIVE_S, arrivals)
                rows.append({"setting": s.label, "seed": seed, "radio": model.name, "batch": batch, "polls": polls,
                             "joules_per_day": led.total_j * 86400.0 / spec.period_s,
                             **{f"{c}_j": led.joules[c] * 86400.0 / spec.period_s for c in led.joules},
                             "tail_share": led.tail_share, "promotions": led.promotions,
                             "staleness_median_s": statistics.median(delays) if delays else None})
        if progress:
            progress(n, len(todo))
    frame = pd.DataFrame(rows)
    base = frame[frame["batch"] == 0].set_index(["setting", "seed", "radio"])["joules_per_day"]
    frame["saving"] = 1 - frame["joules_per_day"] / [base[k] for k in zip(frame["setting"], frame["seed"],
                                                                          frame["radio"])]
    return frame


def summarize_batching(rows: "pandas.DataFrame") -> "pandas.DataFrame":
    """Per setting, radio and batch: medians over seeds of joules per day, tail share, saving and staleness,
    with the range of joules and saving over seeds (``_lo``, ``_hi``)."""
    order = list(dict.fromkeys(rows["setting"]))
    g = rows.groupby(["setting", "radio", "batch"], sort=False)
    out = g[["joules_per_day", "promotion_j", "transfer_j", "tail_j", "idle_j", "tail_share", "saving", "polls",
             "staleness_median_s"]].median()
    for c in ("joules_per_day", "saving"):
        out[f"{c}_lo"], out[f"{c}_hi"] = g[c].min(), g[c].max()
    out["seeds"] = g.size()
    out = out.reset_index()
    out["order"] = out["setting"].map(order.index)
    return out.sort_values(["radio", "order", "batch"]).drop(columns="order").reset_index(drop=True)


def read_energy_rows(fractions=(0.0, 0.1, 0.25, 0.5, 1.0), messages: int = 50, protocols=("imap", "pop3"),
                     profile: str = "lte-2012", seeds: Iterable[int] = (0,), think_s: float = 60.0,
                     server: str = "embedded", models: Iterable[RadioModel] = tuple(MODELS.values()),
                     progress=None, executor=None) -> "pandas.DataFrame":
    """Joules of reading mail, header-first against download-all, as the read fraction varies: one real
    session each (through ``profile``'s link), priced on each radio twice: with the opens back to back in the
    session (``joules_together``) and with the user opening one message every ``think_s`` seconds
    (``joules_spread``, :func:`mailstudy.energy.timeline.spread_opens`; ours: a reading pace). Download-all
    (POP3 keep mode) downloads everything in one session; reading afterwards costs the radio nothing.

    With ``executor`` (a ``concurrent.futures`` pool) the sessions run there several at a time, each on its own
    server and link: they mostly wait out the link's round trips, so overlapping them saves wall time; the rows
    come back in the same order as one at a time."""
    import pandas as pd

    models, seeds = tuple(models), check_seeds(list(seeds))
    todo = [(p, seed, "download-all", None) for p in protocols for seed in seeds]
    todo += [(p, seed, "header-first", f) for p in protocols for seed in seeds for f in fractions]
    jobs = [ReadSession(p, seed, strategy, f, messages, profile, think_s, server, models)
            for p, seed, strategy, f in todo]
    rows = []
    for n, session_rows in enumerate(executor.map(read_session_rows, jobs) if executor
                                      else map(read_session_rows, jobs), 1):
        rows += session_rows
        if progress:
            progress(n, len(todo))
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ReadSession:
    """One point of :func:`read_energy_rows`: a protocol, seed, strategy and read fraction (picklable, so a
    process pool can run it)."""

    protocol: str
    seed: int
    strategy: str
    fraction: float | None
    messages: int
    profile: str
    think_s: float
    server: str
    models: tuple


def read_session_rows(job: ReadSession) -> list[dict]:
    """Run ``job``'s real session and price it on each radio: one row per radio (:func:`read_energy_rows`)."""
    from mailstudy.energy.ledger import ledger
    from mailstudy.energy.timeline import spread_opens, trace_activities
    from mailstudy.study.experiment import Experiment, run_experiment

    exp = Experiment(server=job.server, protocol=job.protocol, strategy=job.strategy, messages=job.messages,
                     seed=job.seed, read_fraction=job.fraction or 0.0, profile=job.profile)
    results: list = []
    (row,) = run_experiment(exp, results=results)
    trace = results[0].trace
    rows = []
    for model in job.models:
        together = ledger(model, trace_activities(trace), keep_segments=False)
        spread = ledger(model, spread_opens(trace, job.think_s), keep_segments=False)
        rows.append({"protocol": job.protocol, "strategy": job.strategy, "read_fraction": job.fraction,
                     "seed": job.seed, "radio": model.name, "messages": job.messages, "profile": job.profile,
                     "think_s": job.think_s, "bodies_fetched": row["bodies_fetched"], "bytes_down": row["bytes_down"],
                     "duration_s": row["duration_s"], "joules_together": together.total_j,
                     "joules_spread": spread.total_j, "promotions_spread": spread.promotions})
    return rows


def energy_breakeven(rows: "pandas.DataFrame", protocol: str, radio: str,
                     column: str = "joules_together") -> float | None:
    """The read fraction from which header-first costs the radio more than download-all (linear between the
    measured fractions, medians over seeds), or None when it never does in the range measured."""
    r = rows[(rows["protocol"] == protocol) & (rows["radio"] == radio)]
    da = r[r["strategy"] == "download-all"][column].median()
    hf = r[r["strategy"] == "header-first"].groupby("read_fraction")[column].median().sort_index()
    xs, ys = list(hf.index), [y - da for y in hf]
    if ys and ys[0] >= 0:
        return float(xs[0])
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if y0 < 0 <= y1:
            return float(x0 + (x1 - x0) * (-y0) / (y1 - y0))
    return None


#: The catch-up workloads priced per sync (push is a held connection, priced by the day above, not per sync).
SYNC_WORKLOADS = ("change-sync", "poll")


def catch_up_energy(messages: int = 30, new: int = 5, seeds: Iterable[int] = (0, 1, 2), profile: str = "lte-2012",
                    radio: str = "lte", workloads: Iterable[str] = SYNC_WORKLOADS) -> "pandas.DataFrame":
    """Joules per sync, IMAP against JMAP: each catch-up session (:func:`mailstudy.study.jmap_cell.catch_up`,
    through ``profile``'s link) priced alone on ``radio`` from an idle radio, the tail included
    (:func:`mailstudy.energy.timeline.session_ledger`). One row per seed, protocol and workload with the joules,
    the radio's seconds out of idle (``radio_s``: promotion, transfer and tail), the promotions, round trips
    and bytes."""
    from mailstudy.energy.radios import get_model
    from mailstudy.energy.timeline import session_ledger
    from mailstudy.study.jmap_cell import catch_up

    model, workloads, results = get_model(radio), tuple(workloads), []
    frame = catch_up(messages, new, check_seeds(list(seeds)), results=results, profile=profile)
    rows = []
    for (_, r), result in zip(frame.iterrows(), results):
        if r["workload"] not in workloads:
            continue
        led = session_ledger(result, model, keep_segments=False)
        rows.append({"seed": r["seed"], "protocol": r["protocol"], "workload": r["workload"], "radio": model.name,
                     "profile": profile, "joules": led.total_j,
                     "radio_s": sum(v for k, v in led.seconds.items() if k != "idle"),
                     "tail_share": led.tail_share, "promotions": led.promotions,
                     "round_trips": r["round_trips"], "bytes": r["bytes_up"] + r["bytes_down"],
                     "duration_s": r["duration_s"]})
    import pandas as pd

    return pd.DataFrame(rows)


def summarize_catch_up_energy(rows: "pandas.DataFrame") -> "pandas.DataFrame":
    """Per workload and protocol: the medians over seeds with their 95 % intervals (the study's one summary)."""
    from mailstudy.study.intervals import summarize

    return summarize(rows, ["workload", "protocol"], ["joules", "radio_s", "promotions", "round_trips", "bytes",
                                                      "duration_s"])
