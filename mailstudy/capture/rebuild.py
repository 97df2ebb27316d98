"""A pcap rebuilt from the client socket's trace, for when no capture may run (no root, no CAP_NET_RAW).

Why a module of its own: honest TCP/IP framing with real timestamps and payloads, but segmentation is ours, so
it is marked as rebuilt in its sidecar and every result.
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

from mailstudy.capture.report import DEFAULT_MSS, ETH_LO, SNAPLEN, CaptureError
from mailstudy.live.trace import UP, Trace, perf_to_epoch_offset_ns
from mailstudy.outputs import publish, tmp_beside


# ---- rebuilt -------------------------------------------------------------------------------------------------
def rebuild_pcap(trace: Trace, path: str | os.PathLike, mss: int = DEFAULT_MSS,
                 time_offset_ns: int | None = None) -> None:
    """Write a pcap of ``trace``'s session built with scapy: Ethernet (as Linux frames loopback) / IPv4 / TCP.

    The handshake is stamped at ``trace.t_connect_ns``; each chunk becomes segments of at most ``mss`` payload
    bytes stamped with the chunk's time, followed by one ACK from the other side; the session ends with a
    FIN exchange at the last chunk's time. Initial sequence numbers are derived from the ports (deterministic).
    ``time_offset_ns`` turns perf_counter times into epoch times (measured now when not given).
    """
    from scapy.layers.inet import IP, TCP
    from scapy.utils import PcapWriter

    if not 1 <= mss <= 65495:
        raise CaptureError(f"mss must be 1-65495 (an IPv4 packet holds at most 65535 bytes), not {mss}")
    if trace.local is None or trace.remote is None:
        raise CaptureError("cannot rebuild a capture: the trace has no addresses (the session never connected)")
    offset = perf_to_epoch_offset_ns() if time_offset_ns is None else time_offset_ns
    (c_ip, c_port), (s_ip, s_port) = tuple(trace.local[:2]), tuple(trace.remote[:2])
    isn = {"c": zlib.crc32(f"client {c_port}".encode()), "s": zlib.crc32(f"server {s_port}".encode())}
    nxt = {"c": (isn["c"] + 1) & 0xFFFFFFFF, "s": (isn["s"] + 1) & 0xFFFFFFFF}
    ip_id = {"c": 0, "s": 0}
    ends = {"c": (c_ip, c_port, s_ip, s_port), "s": (s_ip, s_port, c_ip, c_port)}
    out: list[tuple[int, bytes]] = []
    last_t = [trace.t_connect_ns]

    def emit(side: str, t_ns: int, flags: str, seq: int, ack: int | None, payload: bytes = b"",
             options=None) -> None:
        src, sport, dst, dport = ends[side]
        ip_id[side] = (ip_id[side] + 1) & 0xFFFF
        tcp = TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=(ack or 0) & 0xFFFFFFFF, flags=flags,
                  window=65535, options=options or [])
        pkt = IP(src=src, dst=dst, id=ip_id[side], flags="DF", ttl=64) / tcp
        if payload:
            pkt = pkt / payload
        t = max(t_ns, last_t[0])
        last_t[0] = t
        out.append((t, ETH_LO + bytes(pkt)))

    other = {"c": "s", "s": "c"}
    t0 = trace.t_connect_ns or (trace.chunks[0].t if trace.chunks else time.perf_counter_ns())
    emit("c", t0, "S", isn["c"], None, options=[("MSS", mss)])
    emit("s", t0, "SA", isn["s"], nxt["c"], options=[("MSS", mss)])
    emit("c", t0, "A", nxt["c"], nxt["s"])
    for chunk in trace.chunks:
        side = "c" if chunk.direction == UP else "s"
        data = chunk.data
        for i in range(0, len(data), mss):
            seg = data[i:i + mss]
            emit(side, chunk.t, "PA" if i + mss >= len(data) else "A", nxt[side], nxt[other[side]], seg)
            nxt[side] = (nxt[side] + len(seg)) & 0xFFFFFFFF
        if data:
            emit(other[side], chunk.t, "A", nxt[other[side]], nxt[side])
    t_end = trace.t_end_ns
    emit("c", t_end, "FA", nxt["c"], nxt["s"])
    nxt["c"] = (nxt["c"] + 1) & 0xFFFFFFFF
    emit("s", t_end, "FA", nxt["s"], nxt["c"])
    nxt["s"] = (nxt["s"] + 1) & 0xFFFFFFFF
    emit("c", t_end, "A", nxt["c"], nxt["s"])

    path = Path(path)
    tmp = tmp_beside(path)
    try:
        w = PcapWriter(str(tmp), linktype=1, nano=True, snaplen=SNAPLEN, sync=False)
        w.write_header(None)
        for t, frame in out:
            sec, ns = divmod(t + offset, 1_000_000_000)
            w.write_packet(frame, sec=sec, usec=ns)
        w.close()
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
