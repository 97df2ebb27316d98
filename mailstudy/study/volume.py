"""Traffic volume: how many bytes each strategy moves, how much of it is mail and how much protocol, and the
read fraction at which header-first stops saving bytes (measured, not modelled).

Why a module of its own: notebook ``01-traffic-volume`` asks three questions of the same sessions; the sweeps
and the arithmetic on their rows live here (orchestration), the charts in :mod:`mailstudy.faces.charts`.
*Content* is what the user asked for: the header section of every listed message (header-first) and the whole
of every message opened or downloaded; *overhead* is every other byte down (greeting, status lines, FETCH and
POP3 framing, capability and login replies).

Every number is a median over seeds (corpus, opened set) with its bootstrap interval
(:mod:`mailstudy.study.intervals`): the sweeps take ``seeds``, run their cells through the sweep's executor (count
cells may run in parallel) and :func:`traffic_tables` summarizes them; the measured break-even is a distribution
over the seeds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache

from mailstudy.live.access import choose_opened, header_of
from mailstudy.study.experiment import Experiment, four_strategies, sweep
from mailstudy.study.intervals import breakeven_summary, summarize

#: What a row of the volume table and of the read-fraction table is, apart from its seed.
VOLUME_KEYS = ["server", "protocol", "strategy", "pop3_mode", "label", "messages", "sizes", "headers"]
READS_KEYS = ["server", "protocol", "strategy", "pop3_mode", "label", "messages", "sizes", "headers",
              "read_fraction"]


def content_bytes(row: dict) -> int:
    """Bytes of mail the session's user asked for (see the module docstring), from the cell's own corpus."""
    exp = Experiment.from_dict(row)
    if exp.mailbox is not None:
        raws = exp.corpus().raws()
        heads, wholes = [len(header_of(r)) for r in raws], [len(r) for r in raws]
    else:
        heads, wholes = _generated_lengths(exp.messages, exp.sizes, exp.seed, exp.headers)
    if exp.strategy == "download-all":
        return sum(wholes)
    opened = choose_opened(len(wholes), exp.read_fraction, exp.seed)
    return sum(heads) + sum(wholes[i] for i in opened)


@lru_cache(maxsize=64)
def _generated_lengths(messages: int, sizes: str, seed: int, headers: str) -> tuple[tuple[int, ...], ...]:
    """Each generated message's header and whole length: one generation for the four strategies and every read
    fraction of a seed's mailbox, not one per row."""
    raws = Experiment(messages=messages, sizes=sizes, seed=seed, headers=headers).corpus().raws()
    return tuple(len(header_of(r)) for r in raws), tuple(len(r) for r in raws)


def with_overhead(df):
    """``df`` with ``content_bytes``, ``overhead_bytes`` and ``overhead_share`` (of bytes down) columns."""
    content = [content_bytes(r) for r in df.to_dict("records")]
    out = df.assign(content_bytes=content)
    out["overhead_bytes"] = out["bytes_down"] - out["content_bytes"]
    out["overhead_share"] = out["overhead_bytes"] / out["bytes_down"]
    return out


def read_fraction_sweep(base: Experiment, fractions, cache_dir=None, progress: bool = False,
                        seeds: Iterable[int] | None = None, executor=None):
    """Header-first at each read fraction and download-all once, for IMAP and POP3, on ``base``'s mailbox (on
    each of ``seeds``' mailboxes and opened sets; ``base.seed`` alone by default)."""
    cells = []
    for seed in _seeds(seeds, base.seed):
        for protocol in ("imap", "pop3"):
            cell = replace(base, protocol=protocol, seed=seed)
            cells += [replace(cell, strategy="header-first", read_fraction=f) for f in fractions]
            cells.append(replace(cell, strategy="download-all", read_fraction=0.0))
    return sweep(cells, cache_dir=cache_dir, progress=progress, executor=executor)


def _seeds(seeds: Iterable[int] | None, default: int) -> list[int]:
    return [default] if seeds is None else list(seeds)


def measured_breakeven(df, column: str = "bytes_down") -> dict[str, float | None]:
    """Per protocol, the read fraction where header-first's ``column`` reaches download-all's (linear between
    the measured fractions); None when header-first stays below it over the whole sweep."""
    out: dict[str, float | None] = {}
    for protocol, part in df.groupby("protocol"):
        whole = part[part["strategy"] == "download-all"][column].median()
        hf = part[part["strategy"] == "header-first"].groupby("read_fraction")[column].median().sort_index()
        found = None
        points = list(hf.items())
        for (f0, y0), (f1, y1) in zip(points, points[1:]):
            if y0 <= whole <= y1 and y1 != y0:
                found = f0 + (whole - y0) * (f1 - f0) / (y1 - y0)
                break
        if found is None and points and points[0][1] >= whole:
            found = points[0][0]
        out[protocol] = found
    return out


def measured_breakeven_by_seed(df, column: str = "bytes_down"):
    """:func:`measured_breakeven` of each seed's rows: one row per protocol and seed, ``bytes_r`` (None: never)."""
    import pandas as pd

    rows = [{"protocol": protocol, "seed": seed, "bytes_r": r}
            for seed, part in df.groupby("seed") for protocol, r in measured_breakeven(part, column).items()]
    return pd.DataFrame(rows, columns=["protocol", "seed", "bytes_r"])


def volume_sweep(servers, message_counts, sizes: str = "buchner2009", seed: int = 0, cache_dir=None,
                 progress: bool = False, seeds: Iterable[int] | None = None, executor=None):
    """The four strategies at each mailbox size on each server (read fraction 0), on each of ``seeds``'
    mailboxes (``seed`` alone by default)."""
    cells = [replace(e, messages=n, seed=s) for s in _seeds(seeds, seed) for server in servers
             for e in four_strategies(Experiment(server=server, sizes=sizes)) for n in message_counts]
    return sweep(cells, cache_dir=cache_dir, progress=progress, executor=executor)


def traffic_tables(servers, message_counts, fractions, read_messages: int, sizes: str, seeds: Iterable[int],
                   cache_dir=None, executor=None) -> dict:
    """Notebook 01's tables over ``seeds``: ``volume`` and ``reads`` (medians with ``_lo``/``_hi``, see
    :mod:`mailstudy.study.intervals`), their per-seed rows (``volume_seeds``, ``reads_seeds``), and the measured
    bytes break-even as a distribution per protocol (``breakeven``; ``breakeven_seeds`` per seed)."""
    seeds = list(seeds)
    per_seed = with_overhead(volume_sweep(servers, message_counts, sizes, cache_dir=cache_dir, seeds=seeds,
                                          executor=executor))
    base = Experiment(server=servers[0], messages=read_messages, sizes=sizes)
    reads = with_overhead(read_fraction_sweep(base, fractions, cache_dir, seeds=seeds, executor=executor))
    even = measured_breakeven_by_seed(reads)
    return {"volume": summarize(per_seed, [k for k in VOLUME_KEYS if k in per_seed]), "volume_seeds": per_seed,
            "reads": summarize(reads, [k for k in READS_KEYS if k in reads]), "reads_seeds": reads,
            "breakeven": breakeven_summary(even, ["protocol"], ["bytes_r"]), "breakeven_seeds": even}
