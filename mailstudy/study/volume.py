"""Traffic volume: how many bytes each strategy moves, how much of it is mail and how much protocol, and the
read fraction at which header-first stops saving bytes (measured, not modelled).

Why a module of its own: notebook ``01-traffic-volume`` asks three questions of the same sessions; the sweeps
and the arithmetic on their rows live here (orchestration), the charts in :mod:`mailstudy.faces.charts`.
*Content* is what the user asked for: the header section of every listed message (header-first) and the whole
of every message opened or downloaded; *overhead* is every other byte down (greeting, status lines, FETCH and
POP3 framing, capability and login replies).
"""

from __future__ import annotations

from dataclasses import replace

from mailstudy.live.access import choose_opened, header_of
from mailstudy.study.experiment import Experiment, four_strategies, sweep


def content_bytes(row: dict) -> int:
    """Bytes of mail the session's user asked for (see the module docstring), from the cell's own corpus."""
    exp = Experiment.from_dict(row)
    raws = exp.corpus().raws()
    if exp.strategy == "download-all":
        return sum(len(r) for r in raws)
    opened = choose_opened(len(raws), exp.read_fraction, exp.seed)
    return sum(len(header_of(r)) for r in raws) + sum(len(raws[i]) for i in opened)


def with_overhead(df):
    """``df`` with ``content_bytes``, ``overhead_bytes`` and ``overhead_share`` (of bytes down) columns."""
    content = [content_bytes(r) for r in df.to_dict("records")]
    out = df.assign(content_bytes=content)
    out["overhead_bytes"] = out["bytes_down"] - out["content_bytes"]
    out["overhead_share"] = out["overhead_bytes"] / out["bytes_down"]
    return out


def read_fraction_sweep(base: Experiment, fractions, cache_dir=None, progress: bool = False):
    """Header-first at each read fraction and download-all once, for IMAP and POP3, on ``base``'s mailbox."""
    cells = []
    for protocol in ("imap", "pop3"):
        cell = replace(base, protocol=protocol)
        cells += [replace(cell, strategy="header-first", read_fraction=f) for f in fractions]
        cells.append(replace(cell, strategy="download-all", read_fraction=0.0))
    return sweep(cells, cache_dir=cache_dir, progress=progress)


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


def volume_sweep(servers, message_counts, sizes: str = "buchner2009", seed: int = 0, cache_dir=None,
                 progress: bool = False):
    """The four strategies at each mailbox size on each server (read fraction 0)."""
    cells = [replace(e, messages=n) for server in servers
             for e in four_strategies(Experiment(server=server, sizes=sizes, seed=seed)) for n in message_counts]
    return sweep(cells, cache_dir=cache_dir, progress=progress)
