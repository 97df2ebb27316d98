"""When each byte through one direction of the link reaches its peer: the link's one rule, as pure arithmetic.

Why a module of its own: the relay (which sleeps until these times) and the model (which replays a session's
flights through it) must share one rule, and the tests check it without a socket. Per direction, for bytes
handed to the link at time ``t_in``:

- segments: bytes are cut into segments of at most one MSS (1448 B); each carries ``header_bytes`` of TCP/IP
  header (52: IPv4 20 + TCP 20 + timestamps 12), serialized with it, so a full segment costs 1500 B of the rate.
  The rate is the IP layer's: no link framing is added (ours). A segment is due when its *last* byte has been
  serialized, so no byte is ever early (toxiproxy instead delays whole buffered chunks of up to ~32 KB);
- serialization: at the profile's rate, or, on a trace-driven link, at the trace's delivery opportunities
  (Mahimahi: each opportunity carries 1500 B of the queue, an unused one is lost; :mod:`mailstudy.link.traces`);
- propagation: one way is RTT/2, plus a seeded jitter per segment drawn from the profile's distribution
  (normal, uniform or exponential; the delay never goes below 0); a segment never arrives before the one ahead
  of it, so jitter and loss never reorder bytes;
- the handshake: no byte either way reaches its peer earlier than one RTT after the connection opened;
- the congestion window (``slow_start``, on by default): RFC 6928's initial window of 10 x 1448 B, grown per
  acknowledged byte (RFC 5681 with RFC 3465's byte counting: +acked in slow start, +MSS x acked / cwnd in
  congestion avoidance), and only while the sender fills it (Linux's ``tcp_is_cwnd_limited``: in slow start,
  while cwnd < 2 x the bytes in flight), so a session of small flights keeps its initial window as Linux does.
  The receiver acknowledges each segment on arrival (no delayed ACK; ns-3 measured its effect at -2.4..+0.3 %)
  and the ACK takes RTT/2 back, not queued behind data (ours);
- restart after idle (``idle_restart``, Linux's ``tcp_slow_start_after_idle = 1``, RFC 5681 4.1): a segment
  sent with nothing in flight, more than one RTO after the last send, first halves cwnd once per RTO of idle,
  never below min(initial window, cwnd), and raises ssthresh to max(ssthresh, 3/4 cwnd) (``tcp_cwnd_restart``);
- the receive window (``rwnd_bytes``): no more than that many bytes in flight;
- loss (``loss``, or ``loss_trace``: one 0/1 per segment): a lost segment is retransmitted, never dropped: its
  bytes (and all behind them) are delivered late. When at least 3 segments follow it in the same hand-over
  (one ``schedule`` call: one read of the relay, one piece of the model), fast retransmit: the third follower's
  acknowledgement reaches the sender (it arrives + RTT/2) and the copy goes out then. Otherwise the
  retransmission timeout fires: RTO = SRTT + max(4 RTTVAR, 200 ms) after the handshake's sample (RTTVAR = RTT/2,
  RFC 6298 2.2; Linux's minimum RTO is 200 ms), counted from the segment's send; cwnd drops to one segment. A
  lost retransmission waits twice the RTO (backoff). RFC 6298's initial 1 s applies to the SYN, which is
  connection setup's (not here). Linux's tail loss probe (RFC 8985) would often beat the RTO for a lone
  segment: not modelled (ours), so a tail loss here costs more;
- the response to loss, once per window of data: CUBIC (RFC 9438; Linux's default controller, and ns-3's
  TcpCubic that bench/reference.py checks against), the default: ssthresh = 0.7 cwnd, W_max = cwnd (fast
  convergence: (1 + 0.7) / 2 cwnd when below the last W_max), and in congestion avoidance the window grows per
  acknowledged byte toward W_cubic(t + RTT) = W_max + 0.4 (t - K)^3 segments, K = cbrt((W_max - cwnd) / 0.4),
  t from the first ACK after the reduction, or toward the Reno-friendly W_est (alpha = 3 (1 - 0.7) / (1 + 0.7))
  when that is larger, never more than 1.5 cwnd per RTT. ``cc="reno"`` (the rule before; RFC 5681 3.2) halves
  the bytes in flight and grows by MSS x acked / cwnd. Measured against ns-3 on a 1 MB answer at 1 % loss
  (bench/reference.py, medians of 20 seeds): Reno's rule was within 7 % of ns-3's NewReno on lan, 3g, satellite
  and edge, and 1.3-2.8x slower than ns-3's Cubic, the controller Linux runs; CUBIC's rule is within 20 % of ns-3's
  Cubic on 3g, satellite and edge at 1 MB and 10 MB (docs/network-sources.md).

The window and loss apply only on a rate-limited direction (a rate or a trace): an unlimited one has nothing to
fill. The named control :meth:`mailstudy.link.profiles.Profile.simple` turns window, restart, receive window and
header bytes off: the link as it was before them.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_left

from mailstudy.link.profiles import HEADER_BYTES, INITIAL_WINDOW, MSS, Profile
from mailstudy.link.traces import OPPORTUNITY_BYTES, load_loss, load_trace, mean_rate_bps

#: Linux's minimum retransmission timeout (TCP_RTO_MIN, 200 ms).
RTO_MIN_S = 0.2
#: RFC 6298's initial RTO, before any round trip was measured (the SYN's; connection setup applies it).
RTO_INITIAL_S = 1.0
#: Duplicate acknowledgements that trigger fast retransmit (RFC 5681 3.2; RFC 6675's DupThresh).
DUP_THRESH = 3
#: CUBIC's constants (RFC 9438 4.1 and 4.6; Linux's and ns-3's defaults): C in segments per second cubed, the
#: multiplicative decrease, and the Reno-friendly additive increase per RTT.
CUBIC_C = 0.4
CUBIC_BETA = 0.7
CUBIC_ALPHA = 3 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA)
#: The response to loss: ``cubic`` (Linux's default) or ``reno`` (RFC 5681).
CONTROLLERS = ("cubic", "reno")

_ACK, _FAST, _TIMEOUT = 0, 1, 2

__all__ = ["CONTROLLERS", "CUBIC_BETA", "CUBIC_C", "DUP_THRESH", "Direction", "HEADER_BYTES", "RTO_INITIAL_S", "RTO_MIN_S", "rto"]


def rto(rtt_s: float) -> float:
    """The retransmission timeout after the first RTT sample: SRTT + max(4 RTTVAR, 200 ms), RTTVAR = RTT/2."""
    return rtt_s + max(2 * rtt_s, RTO_MIN_S)


class Direction:
    """The schedule of one direction of one connection opened at ``t_open`` (seconds, any monotonic clock)."""

    def __init__(self, profile: Profile, down: bool, t_open: float, seed: str | int = 0, cc: str = "cubic") -> None:
        if cc not in CONTROLLERS:
            raise ValueError(f"unknown congestion controller {cc!r}; choose one of {', '.join(CONTROLLERS)}")
        side = "down" if down else "up"
        trace = profile.down_trace if down else profile.up_trace
        self.trace = load_trace(trace) if trace else None
        self.bps = None if self.trace else (profile.down_bps if down else profile.up_bps)
        self.trace_bps = mean_rate_bps(trace) if trace else None
        self.rtt = profile.rtt_s
        self.one_way = profile.rtt_s / 2
        self.jitter = profile.jitter_s
        self.jitter_dist = profile.jitter_dist
        self.rng = random.Random(f"link:{seed}:{side}")
        self.loss_rng = random.Random(f"loss:{seed}:{side}")
        self.loss = profile.loss
        self.loss_flags = load_loss(profile.loss_trace) if profile.loss_trace else None
        self.loss_pos = 0
        self.t_open = t_open
        self.earliest = t_open + profile.rtt_s  # the handshake
        self.free_at = t_open  # when the previous byte finished serializing
        self.last_arrival = t_open
        self.limited = bool(self.bps or self.trace)
        self.header = profile.header_bytes if self.limited else 0
        self.cc = profile.slow_start and self.limited  # congestion control: the window and its responses
        self.rwnd = profile.rwnd_bytes if self.limited else None
        self.windowed = self.cc or bool(self.rwnd)
        self.idle_restart = profile.idle_restart and self.cc
        self.init_cwnd = INITIAL_WINDOW * MSS
        self.cwnd: float = self.init_cwnd if self.cc else math.inf
        self.ssthresh: float = math.inf
        self.inflight = 0
        self.max_inflight, self.max_stamp = 0, -math.inf
        self.events: list = []  # heap of (time, n, kind, size, grows): ACKs and loss detections, in time order
        self.n = 0
        self.last_send: float | None = None
        self.rto = rto(self.rtt)
        self.recovery_until = -math.inf
        self.cubic = cc == "cubic"
        self.w_max = 0.0  # CUBIC's window before its last reduction, in segments
        self.epoch: float | None = None  # when the current congestion-avoidance epoch began (CUBIC's t = 0)
        self.k = self.origin = self.w_est = 0.0
        self.opp, self.opp_used = 0, 0  # the trace's cursor: the next opportunity and the bytes it already carries
        self.retransmits = self.timeouts = 0

    # -- the rule ------------------------------------------------------------------------------------------
    def schedule(self, t_in: float, nbytes: int) -> list[tuple[float, int]]:
        """``(t_due, size)`` pieces for ``nbytes`` handed to the link at ``t_in``, in order (none for none)."""
        if nbytes <= 0:
            return []
        # unlimited bandwidth and no loss: nothing to serialize or lose per segment, so one piece
        step = MSS if self.limited or self.loss or self.loss_flags is not None else nbytes
        out: list[list] = []
        waiting: list[list] = []  # lost segments of this hand-over: [index, sent_done, wire, followers, size, grows]
        for offset in range(0, nbytes, step):
            size = min(step, nbytes - offset)
            t = max(t_in, self.free_at)
            if self.windowed:
                t = self._window(t, size, waiting, out)
            wire = size + self.header
            done = self._serialize(t, wire)
            self.free_at = done
            self.last_send = done
            arrival = max(done + self.one_way + self._jitter(), self.earliest)
            lost = self._lost()  # drawn before any retransmission this segment triggers draws its own
            for w in waiting:
                w[3] += 1
                if w[3] == DUP_THRESH and out[w[0]][0] is None:
                    self._fast_retransmit(w, arrival, out)
            self.inflight += size
            if self.inflight > self.max_inflight or t - self.max_stamp > self.rtt:
                self.max_inflight, self.max_stamp = self.inflight, t  # Linux's max_packets_out, per window
            grows = True
            if lost:
                waiting.append([len(out), done, wire, 0, size, grows])
                out.append([None, size])
            else:
                self._push(arrival + self.one_way, _ACK, size, grows)
                out.append([arrival, size])
        for w in waiting:
            if out[w[0]][0] is None:
                self._timeout(w, out)
        pieces = []
        for arrival, size in out:
            arrival = max(arrival, self.last_arrival)
            self.last_arrival = arrival
            pieces.append((arrival, size))
        return pieces

    # -- window --------------------------------------------------------------------------------------------
    def _push(self, t: float, kind: int, size: int = 0, grows: bool = False) -> None:
        self.n += 1
        heapq.heappush(self.events, (t, self.n, kind, size, grows))

    def _advance(self, t: float) -> None:
        """Apply every ACK and loss detection due by ``t``."""
        while self.events and self.events[0][0] <= t:
            when, _, kind, size, grows = heapq.heappop(self.events)
            if kind == _ACK:
                self.inflight -= size
                if self.cc and grows:
                    if self.cwnd < self.ssthresh:
                        if self.cwnd < 2 * self.max_inflight:  # tcp_is_cwnd_limited in slow start
                            self.cwnd += size
                    elif self.max_inflight + MSS >= self.cwnd:  # the window was filled
                        self.cwnd += self._cubic(when, size) if self.cubic else MSS * size / self.cwnd
            elif self.cc and (kind == _TIMEOUT or when >= self.recovery_until):
                self._reduce(when, kind == _TIMEOUT)

    def _reduce(self, when: float, timeout: bool) -> None:
        """The response to a loss (module docstring): CUBIC's (Linux's bictcp_recalc_ssthresh) or Reno's."""
        if self.cubic:
            w = self.cwnd / MSS
            self.w_max = w * (1 + CUBIC_BETA) / 2 if w < self.w_max else w  # fast convergence
            self.ssthresh = max(self.cwnd * CUBIC_BETA, 2 * MSS)
            self.epoch = None
        else:
            self.ssthresh = max(self.inflight / 2, 2 * MSS)
        self.cwnd = MSS if timeout else self.ssthresh
        self.recovery_until = when + self.rtt  # one reduction per window of data

    def _cubic(self, now: float, acked: int) -> float:
        """CUBIC's growth of cwnd (bytes) for ``acked`` bytes acknowledged at ``now`` (RFC 9438 4.2-4.3)."""
        w = self.cwnd / MSS
        if self.epoch is None:
            self.epoch = now
            self.k = ((self.w_max - w) / CUBIC_C) ** (1 / 3) if self.w_max > w else 0.0
            self.origin = max(self.w_max, w)
            self.w_est = w
        self.w_est += CUBIC_ALPHA * acked / MSS / w
        target = self.origin + CUBIC_C * (now - self.epoch + self.rtt - self.k) ** 3
        target = min(max(target, self.w_est), 1.5 * w)
        return max(0.0, (target - w) * acked / w)

    def _window(self, t: float, size: int, waiting: list, out: list) -> float:
        """The earliest time from ``t`` at which ``size`` more bytes fit in the window."""
        while True:
            self._advance(t)
            if self.idle_restart and self.inflight == 0 and self.last_send is not None \
                    and t - self.last_send > self.rto:
                self._restart(t - self.last_send)
            if self.inflight == 0 or self.inflight + size <= min(self.cwnd, self.rwnd or math.inf):
                return t
            if not self.events:  # only unresolved losses in flight: nothing more can be sent, so no dup ACKs
                pending = [w for w in waiting if out[w[0]][0] is None]
                if not pending:
                    return t
                for w in pending:
                    self._timeout(w, out)
                continue
            t = max(t, self.events[0][0])

    def _restart(self, idle: float) -> None:
        """Linux's tcp_cwnd_restart (net/ipv4/tcp_output.c)."""
        self.ssthresh = max(self.ssthresh, 0.75 * self.cwnd)  # tcp_current_ssthresh
        restart = min(self.init_cwnd, self.cwnd)
        cwnd = self.cwnd
        idle -= self.rto
        while idle > 0 and cwnd > restart:
            cwnd /= 2
            idle -= self.rto
        self.cwnd = max(cwnd, restart)

    # -- serialization, jitter, loss ------------------------------------------------------------------------
    def _serialize(self, t: float, wire: int) -> float:
        if self.bps:
            return t + wire * 8 / self.bps
        if not self.trace:
            return t
        times, period = self.trace
        count = len(times)

        def at(n: int) -> float:
            return (n // count) * period + times[n % count]

        s = t - self.t_open
        if at(self.opp) < s:  # the opportunities before t went by unused
            loops = int(s // period)
            i = bisect_left(times, s - loops * period)
            self.opp, self.opp_used = loops * count + i, 0
            while at(self.opp) < s:
                self.opp += 1
        left = wire
        while left > OPPORTUNITY_BYTES - self.opp_used:
            left -= OPPORTUNITY_BYTES - self.opp_used
            self.opp, self.opp_used = self.opp + 1, 0
        self.opp_used += left
        return self.t_open + at(self.opp)

    def _jitter(self) -> float:
        if not self.jitter:
            return 0.0
        if self.jitter_dist == "exponential":
            return self.rng.expovariate(1 / self.jitter)
        draw = self.rng.uniform(-self.jitter, self.jitter) if self.jitter_dist == "uniform" \
            else self.rng.gauss(0.0, self.jitter)
        return max(-self.one_way, draw)

    def _lost(self) -> bool:
        if self.loss_flags is not None:
            flag = self.loss_flags[self.loss_pos % len(self.loss_flags)]
            self.loss_pos += 1
            return flag
        return bool(self.loss) and self.loss_rng.random() < self.loss

    def _resend(self, start: float, wire: int) -> float:
        """When a retransmitted copy sent at ``start`` arrives: its serialization (not queued behind new data,
        ours; a trace's copy at its mean rate), RTT/2, and a timeout with backoff for each copy lost again."""
        rate = self.bps or self.trace_bps
        backoff = self.rto
        while True:
            done = start + (wire * 8 / rate if rate else 0.0)
            if not self._lost():
                return max(done + self.one_way, self.earliest)
            backoff *= 2
            start = done + backoff
            self.timeouts += 1

    def _fast_retransmit(self, w: list, follower_arrival: float, out: list) -> None:
        detected = follower_arrival + self.one_way
        self._push(detected, _FAST)
        self._deliver_late(w, self._resend(detected, w[2]), out)

    def _timeout(self, w: list, out: list) -> None:
        fired = w[1] + self.rto
        self.timeouts += 1
        self._push(fired, _TIMEOUT)
        self._deliver_late(w, self._resend(fired, w[2]), out)

    def _deliver_late(self, w: list, arrival: float, out: list) -> None:
        self.retransmits += 1
        out[w[0]][0] = arrival
        self._push(arrival + self.one_way, _ACK, w[4], w[5])
