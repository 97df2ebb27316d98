r"""The model: a session's times on a network, predicted from its measured work and a profile.

Why: a sweep of 4 strategies x 7 profiles x many mailbox sizes cannot wait for every session through the link.
Counts and work come from one real session on the baseline link (below), times on every profile from this model,
and the model is checked against the link (``bench/link.py`` prints the error on the acceptance grid;
``tests/test_link.py`` asserts a coarse version). Pure: no clock, no socket.

The formula (the one place it is written). The model replays a session's measured work through the link's own
arithmetic, :class:`mailstudy.link.schedule.Direction` (the rule the relay sleeps by), without jitter (its mean is
0). A session is a greeting of d_0 bytes the server sends c_0 after connect, then client flights f = 1..F. Each
flight has the client's pause g_f before it (from the previous answer's last byte), its u_f bytes up as pieces
(q_fj, u_fj): u_fj bytes sent q_fj after the flight's first, and the server's answer as pieces (o_fk, d_fk): d_fk
bytes produced o_fk after the request's last byte reached the server. On a
profile with round trip R and rates B_up, B_down (unlimited: the term is 0), the connection's setup
(:func:`connection_setup`, the TCP handshake: connect() returns at R, the server accepts at 1.5 R) gives::

    greeting in     T_0 = 1.5 R + c_0 + d_0 / B_down + R / 2   (server-first: clear text, STARTTLS)
                    T_0 = R, with no greeting                   (client-first: implicit TLS's ClientHello)
    request out     s_f = T_(f-1) + g_f
    request in      a_f = arrival of the request's last byte: piece j enters the link at s_f + q_fj, is
                          serialized (u_fj / B_up) after the piece before it, and travels R / 2
    answer in       T_f = arrival of the last answer byte: piece k enters the link at a_f + o_fk, is serialized
                          (d_fk / B_down) after the piece before it, and travels R / 2
    duration_s      = T_F
    time_to_list_s  = T_l + the client's time from flight l's answer to "list ready" (l: the last listing flight)
    open wait       = T_f - s_f, for each flight that fetches a message the user opened (FETCH, RETR, TOP)

So a clear-text session's first command leaves at 2 R plus the work, not at R. TLS is not a separate term:
a TLS session is modelled from its wire chunks (TLS records, :attr:`mailstudy.live.trace.Trace.wire`), so each
handshake flight is a round trip like any other, with its bytes (the certificate chain) over the bandwidth and
the two sides' crypto as work. For a server-first protocol that makes the greeting of implicit TLS arrive at
3 R with TLS 1.3 (ClientHello; the server's flight; the client's Finished, after which the server greets) and
also at 3 R with TLS 1.2 (ClientHello; the server's flight; the client's key exchange and Finished, answered by
the server's Finished with the greeting behind it): 1 RTT more than clear text either way. STARTTLS adds the
STARTTLS exchange, the handshake's flights (1 with TLS 1.3, whose client Finished leaves with the next command;
2 with TLS 1.2) and the CAPABILITY/CAPA the client must ask again (RFC 3501 6.2.1, RFC 2595 4).

With the request and the answer in one piece each this is T_f = T_(f-1) + g_f + R + u_f / B_up + o_f + d_f / B_down: one RTT and the
bytes over the bandwidth per flight, plus the server's and the client's own time. An answer the server streams
while it works overlaps its serialization with that work (the queue), as the link does. The TCP terms are the
link's own (:mod:`mailstudy.link.schedule`), carried across flights, each direction on its own: every segment of
at most 1448 B serializes with its 52 B of TCP/IP header (so d / B becomes (d + 52 ceil(d / 1448)) / B), the
congestion window starts at 10 segments and grows per acknowledged byte while the flight fills it, restarts
after an idle longer than the RTO, and never exceeds the receive window; a flight's bytes beyond the window wait
for the acknowledgements of the ones ahead (each RTT/2 after their arrival). The queue assumed is one FIFO per
direction at the bottleneck, large enough never to drop (loss comes only from the profile's loss rate or trace).
With loss, the time is the expected one: the mean of :data:`LOSS_DRAWS` seeded draws of the link's rule (fast
retransmit: one RTT after the third following segment arrives; else the RTO, SRTT + max(4 RTTVAR, 200 ms); the
window answers as CUBIC does, RFC 9438, Linux's default: checked against ns-3 in docs/network-sources.md).
``Profile.simple()`` (tcp=simple) is the old formula: no window, no header bytes.

Where c, g and o come from: a session through the baseline link (:data:`BASELINE`, RTT rho = 0.5 ms, no other
shaping), less its own delays (2 rho from the greeting, rho from each answer, 2 rho from the answer to a flight
sent before anything came back). Not from loopback, because work
is slower when the network makes the processes wait: behind a 1 ms link pymap answered LOGIN in 1.96 ms against
1.30 ms back to back on loopback (median of 4, both read from a capture of the server's side), and each command
of a header-first session took 20-75 % longer; behind a 0 ms relay it did not. A client that merely paused 1 ms
on loopback did not reproduce it, so the cause (CPUs idling between commands, on this KVM guest) is a guess; the
baseline carries it whatever it is. With work from loopback the model was up to 24 % under the link on a 1 ms
LAN; from the baseline, duration and time to list are within 6.0 % on the whole acceptance grid (median 0.4 %;
open medians within 6.3 %; bench/link.py). A session given without its link counts as loopback. On the
``loopback`` profile itself the model so gives the work as a network makes it, slower than a loopback session
measures.

Waiting for the radio (issue 19 item 5; off by default). ``predict(..., radio=MODEL)`` adds the promotion
delay of a phone's radio (:func:`mailstudy.energy.waiting.promotion_delay`, the same state machine the energy
ledger walks) before each packet that leaves after a quiet spell: the connection's SYN, after ``quiet_before_s``
of silence (default: long enough for the radio to be idle, so LTE's 260.1 ms), and each client flight, after
the client's pause g_f since the last answer arrived (within a session LTE's 11.6 s tail keeps it at 0; an open
a minute after the list pays the promotion again). The server's packets find the radio awake: they answer what
the client just sent. ``promotion_wait_s`` is the sum of the delays added.

Break-even (:func:`breakeven`, closed form). Header-first with read fraction r moves H_0 + r (H_1 - H_0) bytes,
where H_0 and H_1 are its bytes with nobody reading (r = 0) and with everything read (r = 1); download-all moves
D. So bytes break even at r* = (D - H_0) / (H_1 - H_0). The user waits L_hf + r W_1 with header-first (the list,
then each open: W_1 is the sum of open waits at r = 1) and L_da with download-all, so waiting breaks even at
r* = (L_da - L_hf) / W_1. Above r*, header-first costs more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mailstudy.energy.radios import RadioModel, get_model
from mailstudy.energy.waiting import promotion_delay
from mailstudy.errors import MailstudyError
from mailstudy.link.profiles import Profile, get_profile
from mailstudy.link.schedule import Direction
from mailstudy.protocol.metrics import OPEN_COMMANDS, percentile
from mailstudy.wire import DOWN, UP, flights

#: The link a session is measured through for the model's work terms (module docstring): a round trip long
#: enough that client and server wait for each other as on any real network, short enough to cost little.
BASELINE = Profile("baseline", rtt_s=0.0005,
                   source="the model's measuring link: 0.5 ms RTT, nothing else shaped (mailstudy.link.model)")


class ModelInputError(MailstudyError, ValueError):
    """A session the model cannot take its work from: one through a link that shapes more than the RTT."""


@dataclass(frozen=True)
class RoundTrip:
    """One client flight and the server's answer to it (module formula). Times in seconds."""

    bytes_up: int
    bytes_down: int
    work_s: float = 0.0  # o_f: from the request's arrival at the server to its answer's last byte produced
    pause_s: float = 0.0  # g_f: the client's time before sending it
    before_list: bool = True  # part of the time to list
    opens: bool = False  # fetches a message the user opened (its wait is what a click costs)
    answer: tuple[tuple[float, int], ...] = ()  # (o_fk, d_fk) pieces; empty: bytes_down in one piece at work_s
    request: tuple[tuple[float, int], ...] = ()  # (q_fj, u_fj) pieces; empty: bytes_up in one piece at once

    def answer_pieces(self) -> tuple[tuple[float, int], ...]:
        if self.answer:
            return self.answer
        return ((self.work_s, self.bytes_down),) if self.bytes_down else ()

    def request_pieces(self) -> tuple[tuple[float, int], ...]:
        return self.request or ((0.0, self.bytes_up),)


@dataclass(frozen=True)
class Session:
    """What the model needs from a session: the greeting (c_0, d_0) and its round trips."""

    greeting_s: float
    round_trips: tuple[RoundTrip, ...]
    list_pause_s: float = 0.0  # the client's time from the last listing round trip to "list ready"
    greeting_bytes: int = 0
    client_first: bool = False  # the client spoke first (implicit TLS): no greeting before its first flight
    connected: bool = False  # a sync over a connection already open (kept): no handshake, no greeting, no login


def session_from_chunks(chunks: Iterable[Any], t_connect: Any, t_list_ready: Any = None,
                        exchanges: Sequence[Any] = (), time_scale: float = 1e-9, rtt_s: float = 0.0,
                        connected: bool = False) -> Session:
    """A :class:`Session` from a session's chunks (:class:`mailstudy.wire.Chunk` or ``(direction, t, data)``):
    each run of client chunks is a flight, the run of server chunks after it its answer.

    ``rtt_s`` is the round trip of the link the chunks were recorded through (0 on loopback, rho on the
    baseline); its delays are taken out. ``exchanges`` (the parsers' Exchange events) mark the round trips that
    open a message: those sent after the list was ready whose command fetches (FETCH, UID FETCH, RETR, TOP).

    ``connected``: the chunks are one sync over a connection already open (a slice of a kept connection's trace,
    ``t_connect`` its first chunk): no handshake is taken out or added, and a server push before the first
    flight (IDLE's ``* n EXISTS``) is where the client's clock starts, not a greeting."""
    def sec(t):
        return (t - t_connect) * time_scale

    t_list = None if t_list_ready is None else sec(t_list_ready)
    opens_at = sorted(sec(e.t_sent) for e in exchanges
                      if e.command in OPEN_COMMANDS and e.t_sent is not None
                      and t_list is not None and sec(e.t_sent) >= t_list)
    runs = flights(chunks, with_pieces=True)
    setup = connection_setup(0.0 if connected else rtt_s)
    greeting_end, greeting_bytes = 0.0, 0
    client_first = bool(runs) and runs[0].direction == UP
    if runs and runs[0].direction == DOWN:
        greeting_end, greeting_bytes = sec(runs[0].t_end), runs[0].nbytes
    trips = []
    prev_end = greeting_end
    list_pause = 0.0
    k = 0
    for i, run in enumerate(runs):
        if run.direction != UP:
            continue
        got = runs[i + 1] if i + 1 < len(runs) else None
        t_first, t_sent = sec(run.t_start), sec(run.t_end)
        t_last = sec(got.t_end) if got else t_sent
        # the link's delays in this answer: one RTT, plus the connect() time on a flight sent before any byte
        # came back (connection_setup: the link held it as if the client had been blocked in connect)
        delay = rtt_s + (setup.client_ready_s if client_first and not trips else 0.0)
        answer = tuple((max(0.0, sec(t) - t_sent - delay), n) for t, n in (got.pieces if got else ()))
        request = tuple((sec(t) - t_first, n) for t, n in run.pieces)  # a client may send several times
        before = t_list is None or t_first < t_list
        opens = False
        while k < len(opens_at) and opens_at[k] <= t_last:
            opens = opens or opens_at[k] >= t_first
            k += 1
        trips.append(RoundTrip(run.nbytes, got.nbytes if got else 0, answer[-1][0] if answer else 0.0,
                               max(0.0, t_first - prev_end), before, opens, answer, request))
        if before and t_list is not None:
            list_pause = max(0.0, t_list - t_last)
        prev_end = t_last
    if connected:
        return Session(0.0, tuple(trips), list_pause, 0, True, connected=True)
    c_0 = greeting_end - setup.server_accept_s - rtt_s / 2  # it left at accept + c_0, then travelled R / 2
    return Session(0.0 if client_first else max(0.0, c_0), tuple(trips), list_pause, greeting_bytes, client_first)


def session_of(x: Any) -> Session:
    """A :class:`Session` from one, from a list of :class:`RoundTrip`, or from a live session result (anything with
    ``trace`` and ``exchanges``, as :class:`mailstudy.live.access.SessionResult` has; its ``link``, the profile it
    went through, says which delays to take out: None is loopback)."""
    if isinstance(x, Session):
        return x
    if hasattr(x, "trace") and hasattr(x, "exchanges"):
        link = getattr(x, "link", None)
        if link is not None and not link.only_delays:
            raise ModelInputError(f"the model takes its work from a session on loopback or on a link that only "
                                  f"delays ({BASELINE.name!r}); this one went through {link.name!r}, which "
                                  f"also limits bandwidth, adds jitter or loses segments")
        tr = x.trace
        wire = getattr(tr, "on_wire", tr.chunks)  # with TLS the records: the handshake's flights are flights too
        return session_from_chunks(wire, tr.t_connect_ns, tr.milestones.get("list_ready"), x.exchanges, 1e-9,
                                   link.rtt_s if link is not None else 0.0)
    return Session(0.0, tuple(x))


@dataclass(frozen=True)
class Setup:
    """When each side of a new TCP connection may first send, in seconds after the client called connect()."""

    client_ready_s: float  # connect() returns: the SYN-ACK is back (1 RTT)
    server_accept_s: float  # the server's accept(): the client's ACK has arrived (1.5 RTT)


def connection_setup(rtt_s: float) -> Setup:
    """The TCP handshake's terms (module formula), one home for the relay and the model.

    SYN out at 0, SYN-ACK back at R: connect() returns and the client may send. Its ACK reaches the server at
    1.5 R: the server accepts, and a server-first protocol's greeting leaves then, so it arrives at 2 R plus the
    server's work. Bytes a client sends before anything has reached it left R later than its own clock says
    (it was blocked in connect for R); the relay and the model both add R to them. TLS adds no term here: its
    handshake is measured as the flights it is (see the module docstring)."""
    return Setup(client_ready_s=rtt_s, server_accept_s=1.5 * rtt_s)


def _arrives(direction: Direction, t_in: float, nbytes: int) -> float:
    """When the last of ``nbytes`` handed to the link at ``t_in`` arrives (no bytes: when they would have)."""
    pieces = direction.schedule(t_in, nbytes)
    return pieces[-1][0] if pieces else max(t_in + direction.one_way, direction.earliest)


#: Seeded draws the model averages when the profile loses segments (or adds one-sided jitter): the expected
#: cost of loss, by the link's own rule, as a mean over this many draws (seeds 0..LOSS_DRAWS-1).
LOSS_DRAWS = 20


def predict(session_or_flights: Any, profile: str | Profile, draws: int | None = None,
            radio: RadioModel | str | None = None, quiet_before_s: float = math.inf) -> dict:
    """The model's times for a session on ``profile``: ``duration_s``, ``time_to_list_s``, ``open_waits_s``
    (one per opened message, in order), ``open_median_s`` and ``open_p95_s``. On a lossy profile (or one whose
    jitter is one-sided) each is the mean over ``draws`` seeded draws (default :data:`LOSS_DRAWS`): the
    expected cost; otherwise jitter is left out (its mean is 0) and one pass is exact.

    ``radio`` (a radio model or its name; default none): the phone's radio promotion delays are waited for
    (module docstring, "Waiting for the radio"), the connection's after ``quiet_before_s`` seconds of silence;
    ``promotion_wait_s`` then says how much of the times they are (0 without a radio)."""
    s = session_of(session_or_flights)
    p = get_profile(profile)
    wake = None
    if radio is not None:
        model = get_model(radio) if isinstance(radio, str) else radio
        wake = lambda quiet: promotion_delay(model, quiet)  # noqa: E731
    if not (p.loss or p.loss_trace or (p.jitter_s and p.jitter_dist == "exponential")):
        return _predict_once(s, replace(p, jitter_s=0.0), 0, wake, quiet_before_s)
    runs = [_predict_once(s, p, f"model:{i}", wake, quiet_before_s) for i in range(draws or LOSS_DRAWS)]
    mean = {k: sum(r[k] for r in runs) / len(runs) for k in ("duration_s", "time_to_list_s", "network_s")
            if all(r[k] is not None for r in runs)}
    opens = [sum(w) / len(runs) for w in zip(*(r["open_waits_s"] for r in runs))]
    return {"duration_s": mean.get("duration_s"), "time_to_list_s": mean.get("time_to_list_s"),
            "open_waits_s": opens, "open_median_s": percentile(opens, 50), "open_p95_s": percentile(opens, 95),
            "promotion_wait_s": sum(r["promotion_wait_s"] for r in runs) / len(runs),
            "local_s": runs[0]["local_s"], "network_s": mean.get("network_s")}


def _predict_once(s: Session, p: Profile, seed, wake: Callable[[float], float] | None = None,
                  quiet_before_s: float = math.inf) -> dict:
    t_open = -p.rtt_s if s.connected else 0.0  # kept: its handshake is long over (its window starts again idle)
    up, down = Direction(p, False, t_open, seed), Direction(p, True, t_open, seed)
    setup = connection_setup(p.rtt_s)
    waited = wake(quiet_before_s) if wake else 0.0  # the SYN leaves once the radio is up: every time moves
    if s.connected:  # a kept connection: the first flight leaves at once
        t = waited
    elif s.client_first:  # a TLS ClientHello: the client's clock starts when connect() returns
        t = waited + setup.client_ready_s
    else:  # server-first: the greeting leaves c_0 after the server's accept
        t = _arrives(down, waited + setup.server_accept_s + s.greeting_s, s.greeting_bytes)
    t_list = None
    opens = []
    for f in s.round_trips:
        sent = clicked = t + f.pause_s
        if wake:  # the radio has been quiet since the last answer arrived
            delay = wake(f.pause_s)
            waited += delay
            sent += delay
        at_server = sent
        for offset, nbytes in f.request_pieces():
            at_server = max(at_server, _arrives(up, sent + offset, nbytes))
        t = sent
        for offset, nbytes in f.answer_pieces():
            t = max(t, _arrives(down, at_server + offset, nbytes))
        if f.before_list:
            t_list = t + s.list_pause_s
        if f.opens:  # from the click: the wait includes the radio's promotion
            opens.append(t - clicked)
    local = local_time(s)
    return {"duration_s": t, "time_to_list_s": t_list, "open_waits_s": opens,
            "open_median_s": percentile(opens, 50), "open_p95_s": percentile(opens, 95),
            "promotion_wait_s": waited, "local_s": local, "network_s": t - local - waited}


def local_time(s: Session) -> float:
    """The part of any predicted duration that is the session's own work as measured (not the network): the
    server's time before its greeting and to each answer (c_0, o_f), and the client's pauses (g_f and the pause
    before "list ready"). :func:`predict` reports it as ``local_s`` and the rest as ``network_s`` (duration less
    the local work and any radio promotion wait), so a network figure never carries this machine's CPU time
    without saying so."""
    return s.greeting_s + sum(f.work_s + f.pause_s for f in s.round_trips) + s.list_pause_s


def total_bytes(session_or_flights: Any) -> int:
    s = session_of(session_or_flights)
    return sum(f.bytes_up + f.bytes_down for f in s.round_trips)


def breakeven(header_first_none: Any, header_first_all: Any, download_all: Any,
              profile: str | Profile) -> dict:
    """The read fractions above which header-first costs more than download-all (module formula).

    Arguments are sessions (or lists of round trips) of header-first with read fraction 0 and 1, and of download-all, on the
    same mailbox. Returns ``bytes_r`` and ``waiting_r`` (may fall outside [0, 1]: then one strategy wins at every
    read fraction; None when header-first's cost does not grow with r) with the terms they come from."""
    h0, h1, d = (total_bytes(x) for x in (header_first_none, header_first_all, download_all))
    m0, m1, md = (predict(x, profile) for x in (header_first_none, header_first_all, download_all))
    w1 = sum(m1["open_waits_s"])
    return {"profile": get_profile(profile).name,
            "bytes_r": (d - h0) / (h1 - h0) if h1 > h0 else None,
            "waiting_r": (md["time_to_list_s"] - m0["time_to_list_s"]) / w1 if w1 > 0 else None,
            "bytes_header_first_r0": h0, "bytes_header_first_r1": h1, "bytes_download_all": d,
            "list_wait_header_first_s": m0["time_to_list_s"], "list_wait_download_all_s": md["time_to_list_s"],
            "open_waits_all_s": w1}
