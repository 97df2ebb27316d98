"""Timelines for the energy ledger from a capture: one per client address, every packet of its mail sessions.

Why a module of its own: a pcap can hold several devices, and a radio belongs to one device, so the ledger of a
capture is per client address. The mail sessions are found by the project's one analysis
(:func:`mailstudy.offline.analyze.analyze_pcap`: reader, reassembly, classifier), and the packets by the one
reader (:func:`mailstudy.net.pcap.read_tcp_tuples`); nothing here parses a packet of its own.

Every packet of a client's mail connections counts, pure ACKs, SYN and FIN included: each one keeps the radio
up. Bytes are TCP payload bytes (the project's ``bytes_up``/``bytes_down``), headers are not charged by the
throughput terms. Times are seconds from the client's first packet.

What an address cannot tell: devices behind one address (NAT, or every device of a loopback capture, which all
come from 127.0.0.1) are one timeline. When an address's sessions overlap in time, :class:`ClientTimeline`
says so (``overlapping``): that is one client's parallel connections or several devices, and the capture cannot
tell which; the ledger then treats them as one radio.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

from mailstudy.energy.ledger import Activity
from mailstudy.net.pcap import PACKET_FIELDS, read_tcp_tuples
from mailstudy.offline.analyze import Analysis, analyze_pcap

_T, _SRC, _SPORT, _DST, _DPORT = (PACKET_FIELDS.index(k) for k in ("t", "src", "sport", "dst", "dport"))
_PAYLOAD = PACKET_FIELDS.index("payload")


@dataclass
class ClientTimeline:
    """One client address's mail traffic in a capture, as the ledger's activities (seconds from ``origin``)."""

    address: str
    origin: float  # capture time (s) of the address's first packet
    activities: list[Activity]
    sessions: list[int] = field(default_factory=list)  # SessionAnalysis.index of each of its mail sessions
    servers: list[str] = field(default_factory=list)
    overlapping: bool = False  # two of its sessions were open at once: one radio or several, the pcap can't say

    @property
    def packets(self) -> int:
        return len(self.activities)

    def note(self) -> str | None:
        """One line for a person when the address may hold more than one device, else None."""
        if not self.overlapping:
            return None
        return (f"{self.address}: {len(self.sessions)} sessions overlap in time: one client's parallel connections "
                "or several devices behind one address; a capture cannot tell them apart, so this ledger is one "
                "radio's")


def client_timelines(path: str | os.PathLike, ports: Iterable[int] = (), analysis: Analysis | None = None,
                     all_tcp: bool = False) -> tuple[list[ClientTimeline], Analysis | None]:
    """The timeline of each client address with mail sessions in the capture at ``path`` (ordered by first
    packet), and the :class:`~mailstudy.offline.analyze.Analysis` they came from (pass one to skip the
    analysis). ``ports``: more server ports to treat as mail, as ``mailstudy analyze --port``.

    ``all_tcp``: every TCP connection counts, mail or not (a radio carries them all; a TLS session on a port
    the classifier cannot read is one); the client of each is the side reassembly names (the SYN's sender),
    ``sessions`` then holds connection indexes (tshark's tcp.stream) and no analysis is returned."""
    if all_tcp:
        from mailstudy.net.reassembly import reassemble_tuples

        analysis = None
        conns = [(c.index, c, c.t_syn if c.t_syn is not None else c.t_first)
                 for c in reassemble_tuples(read_tcp_tuples(path))]
    else:
        analysis = analysis or analyze_pcap(path, ports=ports)
        conns = [(s.index, s.connection, s.t_start) for s in analysis.sessions]
    owner: dict[tuple, str] = {}  # (client ip, client port, server ip, server port) -> client ip
    by_addr: dict[str, ClientTimeline] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for index, c, t_start in conns:
        key = (*c.client, *c.server)
        owner[key] = c.client[0]
        tl = by_addr.setdefault(c.client[0], ClientTimeline(c.client[0], 0.0, []))
        tl.sessions.append(index)
        server = f"{c.server[0]}:{c.server[1]}"
        if server not in tl.servers:
            tl.servers.append(server)
        spans.setdefault(c.client[0], []).append((t_start, c.t_last))
    raw = _packets(path, owner)
    out = []
    for addr, tl in by_addr.items():
        pkts = sorted(raw[addr], key=lambda r: r[0])  # a capture may hold packets slightly out of order
        if not pkts:
            continue
        tl.origin = pkts[0][0]
        tl.activities = [Activity(t - tl.origin, up, down) for t, up, down in pkts]
        ordered = sorted(spans[addr])
        tl.overlapping = any(b[0] < a[1] for a, b in zip(ordered, ordered[1:]))
        out.append(tl)
    out.sort(key=lambda tl: tl.origin)
    return out, analysis


def _packets(path, owner: dict[tuple, str]) -> dict[str, list[tuple[float, int, int]]]:
    """``(time, payload up, payload down)`` of every packet of the connections in ``owner`` (client ip, port,
    server ip, port -> the name its packets go under), by name."""
    raw: dict[str, list[tuple[float, int, int]]] = {a: [] for a in owner.values()}
    if owner:
        for p in read_tcp_tuples(path):
            up = owner.get((p[_SRC], p[_SPORT], p[_DST], p[_DPORT]))
            if up is not None:
                raw[up].append((p[_T], len(p[_PAYLOAD]), 0))
                continue
            down = owner.get((p[_DST], p[_DPORT], p[_SRC], p[_SPORT]))
            if down is not None:
                raw[down].append((p[_T], 0, len(p[_PAYLOAD])))
    return raw


def session_activities(path: str | os.PathLike, session) -> list[Activity]:
    """Every packet of one mail session (a :class:`~mailstudy.offline.analyze.SessionAnalysis` of the capture
    at ``path``), pure ACKs, SYN and FIN included, in seconds from its first packet: one connection's radio
    timeline (what the explorer's radio view walks)."""
    c = session.connection
    pkts = sorted(_packets(path, {(*c.client, *c.server): "session"})["session"], key=lambda r: r[0])
    return [Activity(t - pkts[0][0], up, down) for t, up, down in pkts]
