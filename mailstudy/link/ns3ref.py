"""The independent reference: a session's flights replayed over ns-3's TCP, and Padhye et al.'s throughput formula.

Why a module of its own: the link and the model share :mod:`mailstudy.link.schedule`, so their agreement shows
that one arithmetic agrees with itself. ns-3 (PyPI ``ns3``, the optional extra ``[reference]``) shares none of
it: its own TCP (Cubic or NewReno, SACK, delayed ACKs, timestamps) over a point-to-point link. The driver is a
small C++ program (``ns3_session.cc``, beside this file) compiled once with g++ against the wheel's headers and
libraries (10-15 s; cached by the source's hash under ``build/ns3/``); ns-3's Python bindings would cost 13-22 s
of import per process and must start from a folder of their own.

Loss in ns-3 (issue 16 item 4; measured and explained in docs/network-sources.md): the driver drops data
segments only (a TCP segment with payload, either way, each with the profile's probability, seeded), never the
SYN, SYN-ACK or a pure ACK. That is the link's own rule, and it keeps ns-3 clear of a hang of its own: ns-3 3.44's
client ignores a duplicate SYN-ACK in ESTABLISHED without acknowledging it (Linux answers it), so a lost final
handshake ACK leaves the server in SYN_RCVD and a server-first session never starts (``drop_handshake_ack=1``
shows it). The SYN's timeout is Linux's 1 s (ns-3's default ``ConnTimeout`` is 3 s: the "3 s SYN" seen before).
Bulk transfers under loss are also checked against Padhye, Firoiu, Towsley and Kurose, "Modeling TCP Throughput:
A Simple Model and its Empirical Validation" (SIGCOMM 1998), eq. (31), the "full model" approximation::

    B(p) = min( W_max / RTT,  1 / ( RTT sqrt(2 b p / 3) + T_0 min(1, 3 sqrt(3 b p / 8)) p (1 + 32 p^2) ) )

in packets per second, where p is the loss rate, b the packets acknowledged by one ACK, T_0 the retransmission
timeout and W_max the receiver's window in packets.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mailstudy.errors import MailstudyError
from mailstudy.link.model import Session, session_of
from mailstudy.link.profiles import MSS, Profile, get_profile
from mailstudy.link.schedule import rto

SOURCE = Path(__file__).resolve().parent / "ns3_session.cc"
LIBS = ("core", "network", "internet", "point-to-point", "traffic-control")

#: Every ns-3 setting the reference uses, named (the bench prints them). The buffers follow the profile's
#: receive window; the send buffer is large enough that the application never waits for it.
SETTINGS = {
    "cc": "ns3::TcpCubic",  # Linux's default controller (with HyStart, as in Linux)
    "segment": MSS,
    "init_cwnd": 10,
    "sndbuf": 64 * 1024 * 1024,
    "queue_packets": 100_000,  # a FIFO that never drops: DropTail device queue + FifoQueueDisc, no fq_codel
    "min_rto_s": 0.2,  # Linux's TCP_RTO_MIN (ns-3's default is 1 s)
    # An ACK per segment, as mailstudy's link assumes. ns-3's default (2: every second segment, 200 ms timeout)
    # made slow start grow more slowly than ours: measured beyond connection setup on 20-message sessions,
    # NewReno -16.5 % on satellite IMAP download-all and Cubic -5.6 % on satellite POP3, against +0.3 % and
    # -2.1 % with 1 (bench/reference.py --del-ack 2 shows it). Linux grows per acknowledged segment whatever the
    # ACK count (tcp_slow_start: cwnd + acked), which an ACK per segment reproduces.
    "del_ack_count": 1,
    "framing_bytes": 2,  # ns-3's PPP header per packet; the rate is raised by 1502/1500 to give IP the profile's
    "conn_timeout_s": 1.0,  # the SYN's RTO: RFC 6298 2.1 and Linux (ns-3's default ConnTimeout is 3 s)
}


class ReferenceError(MailstudyError, RuntimeError):
    """ns-3 is missing, its driver did not build, or a replayed session did not finish."""


def locate() -> tuple[Path | None, str]:
    """The ns3 wheel's folder (holding ``include/`` and ``lib64/``), or None and why not.

    Looked for: ``$MAILSTUDY_NS3`` (a wheel's ns3 folder), this interpreter's ``ns3`` package (found without
    importing it), and a separate venv ``.ns3venv`` in the checkout (where a 520 MB install can live apart)."""
    candidates = []
    if os.environ.get("MAILSTUDY_NS3"):
        candidates.append(Path(os.environ["MAILSTUDY_NS3"]))
    spec = importlib.util.find_spec("ns3")
    if spec and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    root = Path(__file__).resolve().parents[2]
    candidates += [Path(p) for p in sorted(glob.glob(str(root / ".ns3venv/lib/python3*/site-packages/ns3")))]
    for c in candidates:
        if (c / "include/ns3/core-module.h").exists() and (c / "lib64").is_dir():
            return c, str(c)
    if not shutil.which("g++"):
        return None, "g++ is not installed (apt-get install g++)"
    return None, ("ns-3 is not installed: pip install 'mailstudy[reference]' (ns3==3.44.post0, 520 MB), or set "
                  "MAILSTUDY_NS3 to a wheel's ns3 folder")


def build(prefix: Path | None = None, folder: Path | None = None) -> Path:
    """The driver's binary, compiled on first use (cached by the source's and the prefix's hash)."""
    if prefix is None:
        prefix, why = locate()
        if prefix is None:
            raise ReferenceError(why)
    if folder is None:
        from mailstudy.outputs import project_root

        folder = project_root() / "build" / "ns3"
    key = hashlib.sha256(SOURCE.read_bytes() + str(prefix).encode()).hexdigest()[:16]
    binary = folder / f"ns3_session-{key}"
    if binary.exists():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{binary.name}.{os.getpid()}"
    cmd = ["g++", "-std=c++20", "-O1", "-w", str(SOURCE), f"-I{prefix / 'include'}", f"-L{prefix / 'lib64'}",
           *(f"-lns3.44-{lib}" for lib in LIBS), f"-Wl,-rpath,{prefix / 'lib64'}", "-o", str(tmp)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode:
        tmp.unlink(missing_ok=True)
        first = (out.stderr.strip().splitlines() or ["no message"])[0]
        raise ReferenceError(f"the ns-3 driver did not compile: {first}")
    tmp.replace(binary)  # atomically: a concurrent build finds a whole binary or none
    return binary


def settings_for(profile: Profile, **overrides: Any) -> dict:
    """The ns-3 settings for a profile: :data:`SETTINGS`, its delay, rates and receive window."""
    s = dict(SETTINGS)
    s.update(rtt_s=profile.rtt_s, down_bps=profile.down_bps or 10e9, up_bps=profile.up_bps or 10e9,
             rcvbuf=profile.rwnd_bytes or 64 * 1024 * 1024, loss=profile.loss)
    s.update(overrides)
    return s


def describe(settings: dict) -> str:
    """The settings in one line, as the bench prints them."""
    return (f"controller {settings['cc']}, segment {settings['segment']} B, initial window {settings['init_cwnd']}, "
            f"receive buffer {settings.get('rcvbuf', 'per profile')} B, send buffer {settings['sndbuf']} B, queue: "
            f"FIFO of {settings['queue_packets']} packets (DropTail device queue and FifoQueueDisc, no fq_codel), "
            f"min RTO {settings['min_rto_s']} s, delayed ACK every {settings['del_ack_count']} segments, SACK and "
            f"timestamps on, PPP framing {settings['framing_bytes']} B per packet (rate raised to match), SYN "
            f"timeout {settings['conn_timeout_s']} s; loss: data segments only, either way, seeded (never the "
            f"handshake or a pure ACK)")


def _describe_session(s: Session, settings: dict) -> str:
    lines = [f"setting {k} {v}" for k, v in settings.items()]
    lines.append(f"greeting {s.greeting_s!r} {s.greeting_bytes}")
    lines.append(f"list_pause {s.list_pause_s!r}")
    for f in s.round_trips:
        req = [x for q, u in f.request_pieces() if u for x in (repr(q), str(u))]
        ans = [x for o, d in f.answer_pieces() if d for x in (repr(o), str(d))]
        lines.append(" ".join(["flight", repr(f.pause_s), "1" if f.before_list else "0", str(len(req) // 2), *req,
                               str(len(ans) // 2), *ans]))
    return "\n".join(lines) + "\n"


def run(session_or_flights: Any, profile: str | Profile, binary: Path | None = None, seed: int = 1,
        **overrides: Any) -> dict:
    """ns-3's ``duration_s``, ``time_to_list_s``, ``first_command_s`` and ``last_answer_first_s`` (the first byte
    of the last flight's answer at the client) for a session's flights on a profile, with its counters
    ``dropped``, ``recoveries`` (fast recoveries) and ``timeouts`` (RTOs). A lossy profile loses data segments at
    its rate, drawn from ``seed``."""
    p = get_profile(profile)
    if p.loss_trace or p.down_trace or p.up_trace:
        raise ReferenceError("the ns-3 reference replays fixed-rate links with a loss rate (no traces)")
    binary = binary or build()
    settings = settings_for(p, seed=seed, **overrides)
    text = _describe_session(session_of(session_or_flights), settings)
    out = subprocess.run([str(binary)], input=text, capture_output=True, text=True, timeout=3600,
                         cwd=binary.parent)
    try:
        got = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        got = {"error": out.stderr.strip()[-200:] or "no output"}
    if "error" in got:
        raise ReferenceError(f"ns-3 on {p.name}: {got['error']}")
    return got


def padhye_bps(rtt_s: float, loss: float, rto_s: float | None = None, b: int = 1,
               window_bytes: float | None = None, mss: int = MSS) -> float:
    """Padhye et al.'s bulk throughput (module formula), in payload bit/s. ``b = 1``: every segment acknowledged
    (mailstudy's link); ``rto_s`` defaults to the link's RTO (:func:`mailstudy.link.schedule.rto`)."""
    if not 0 < loss < 1:
        raise ValueError(f"Padhye's formula needs 0 < loss < 1, not {loss!r}")
    t0 = rto(rtt_s) if rto_s is None else rto_s
    per_packet = rtt_s * math.sqrt(2 * b * loss / 3) + t0 * min(1.0, 3 * math.sqrt(3 * b * loss / 8)) * loss * (
        1 + 32 * loss ** 2)
    pps = 1 / per_packet
    if window_bytes:
        pps = min(pps, window_bytes / mss / rtt_s)
    return pps * mss * 8


if __name__ == "__main__":  # build the driver and say where it is (or why not)
    where, why = locate()
    print(build(where) if where else why)
    sys.exit(0 if where else 1)
