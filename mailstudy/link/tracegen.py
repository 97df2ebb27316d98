"""Make the link traces mailstudy ships, from published cellular figures, with a seed: ``python -m
mailstudy.link.tracegen [FOLDER]`` rewrites ``mailstudy/link/traces/`` byte for byte.

Why a generator and not recorded traces: recorded cellular traces (Mahimahi's own, from Winstein et al.'s Sprout
work) are licensed with their repositories, and a published average is what the study's profiles cite. So each
trace here is a seeded rate process whose *mean* is a published figure, and whose variation is ours:

- the published figure (the mean rate over the trace's whole period, exactly, to one packet), quoted in
  :data:`TRACES` as its source gives it;
- ours: the rate is redrawn every 100 ms as a log-normal AR(1) process (log-rate correlation 0.9 from one
  100 ms step to the next, coefficient of variation 0.5 over the trace), then scaled to the published mean.
  These two numbers are assumptions (no source), chosen to give the second-scale swings cellular traces show;
- the Mahimahi format (one integer millisecond per line, each a 1500-byte delivery opportunity), 20 s long,
  looping.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

from mailstudy.link.traces import OPPORTUNITY_BYTES, TRACE_DIR

PERIOD_MS = 20_000
STEP_MS = 100
#: Our assumptions (module docstring): step-to-step correlation of the log-rate, and the rate's coefficient of
#: variation over the trace.
CORRELATION = 0.9
VARIATION = 0.5

#: name -> (mean bit/s, seed, the source as it gives the figure)
TRACES = {
    "4g-us-2019-down.trace": (21.3e6, 1, "Opensignal, State of Mobile USA (May 2019): download speeds experienced "
                                        "by smartphone users in the US rose to 21.3 Mbps in Q1 2019 (an average "
                                        "over all users, 4G or not)"),
    "4g-us-2019-up.trace": (6.3e6, 2, "Opensignal press release (May 2019): U.S. users with 4G devices "
                                      "experienced average upload speeds of 6.3 Mbps in Q1 2019"),
    "lte-2012-down.trace": (13e6, 3, "Huang et al., MobiSys 2012 (4GTest, 3000+ users): LTE downlink throughput "
                                     "median value of 13Mbps"),
    "lte-2012-up.trace": (6e6, 4, "Huang et al., MobiSys 2012 (4GTest): LTE uplink throughput median value of "
                                  "6Mbps"),
}


def opportunities(mean_bps: float, seed: int, period_ms: int = PERIOD_MS) -> list[int]:
    """Delivery times (ms) of a rate process whose mean over ``period_ms`` is ``mean_bps``."""
    rng = random.Random(f"tracegen:{seed}")
    sigma = math.sqrt(math.log(1 + VARIATION ** 2))  # log-normal with this coefficient of variation
    steps = period_ms // STEP_MS
    x = rng.gauss(0.0, sigma)
    rates = []
    for _ in range(steps):
        rates.append(math.exp(x))
        x = CORRELATION * x + math.sqrt(1 - CORRELATION ** 2) * rng.gauss(0.0, sigma)
    packets = round(mean_bps * period_ms / 1000 / (OPPORTUNITY_BYTES * 8))
    scale = packets / (sum(rates) * STEP_MS)  # packets per ms per unit of rate
    out: list[int] = []
    credit = 0.0
    for ms in range(1, period_ms + 1):
        credit += rates[(ms - 1) // STEP_MS] * scale
        while credit >= 1 - 1e-9 and len(out) < packets:
            out.append(ms)
            credit -= 1
    while len(out) < packets:  # rounding left a packet or two: they go at the end
        out.append(period_ms)
    out[-1] = period_ms  # the period is the last time: the trace loops after exactly PERIOD_MS
    return out


def write_all(folder: Path = TRACE_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (mean, seed, _source) in TRACES.items():
        path = folder / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{t}\n" for t in opportunities(mean, seed)))
        tmp.replace(path)  # atomically: a reader never sees half a trace
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else TRACE_DIR):
        print(p)
