"""Networks that differ in one figure only: RTT varied at one fixed bandwidth, bandwidth at one fixed RTT.

Why: the named profiles differ in RTT and bandwidth at once (satellite-geo has 600 ms AND its own rates), so a
chart of waiting against the profiles' RTT mixes the two; the satellite dip came from its bandwidth, not its
RTT (issue 17). Comparing like with like means holding one figure and moving the other. The sweeps start from
one named profile (``4g`` by default) and keep its name, so the study's network conditions give them that
profile's loss; the rows tell them apart by ``rtt_s`` and ``down_bps``. The grid values are ours: RTTs from a
LAN to a geostationary hop, rates from EDGE-like to fibre-like, the base profile's own figure among them.
"""

from __future__ import annotations

from dataclasses import replace

from mailstudy.link import get_profile

#: RTTs (s) the RTT sweep visits; bandwidths down (bit/s) the bandwidth sweep visits (ours, see above).
RTTS_S = (0.001, 0.01, 0.03, 0.055, 0.1, 0.15, 0.3, 0.6, 1.0)
DOWNS_BPS = (0.25e6, 1e6, 2e6, 5e6, 13e6, 21.3e6, 50e6, 100e6)


def rtt_sweep(base: str = "4g", rtts=RTTS_S) -> list:
    """``base`` at each RTT of ``rtts``, its bandwidth unchanged (its spreads dropped: one figure moves)."""
    p = _fixed(base)
    return [replace(p, rtt_s=float(r)) for r in sorted(set(list(rtts) + [p.rtt_s]))]


def bandwidth_sweep(base: str = "4g", downs=DOWNS_BPS) -> list:
    """``base`` at each bandwidth down of ``downs``, up scaled by the same factor, its RTT unchanged."""
    p = _fixed(base)
    ratio = (p.up_bps / p.down_bps) if p.up_bps and p.down_bps else 1.0
    return [replace(p, down_bps=float(d), up_bps=float(d) * ratio) for d in sorted(set(downs))]


def _fixed(base: str):
    return replace(get_profile(base), rtt_spread=None, down_spread=None, up_spread=None)
