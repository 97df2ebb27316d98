"""A pcap rebuilt from the client socket's trace, for when no capture may run (no root, no CAP_NET_RAW).

Why a module of its own: honest TCP/IP framing with real timestamps and payloads, but segmentation is ours, so
it is marked as rebuilt in its sidecar and every result. The frames are built by :mod:`mailstudy.net.pcap_write`
(the pcap reader's mirror: same declared layouts, right IP and TCP checksums), byte for byte what scapy built
here before, in a fraction of the time.
"""

from __future__ import annotations

import os
import time
import zlib

from mailstudy.capture.report import DEFAULT_MSS, ETH_LO, SNAPLEN, CaptureError
from mailstudy.live.trace import UP, Trace, perf_to_epoch_offset_ns
from mailstudy.net.layouts import TH_ACK, TH_FIN, TH_PUSH, TH_SYN
from mailstudy.net.pcap_write import ip_packet, mss_option, pcap_bytes, tcp_segment, write_capture


# ---- rebuilt -------------------------------------------------------------------------------------------------
def rebuild_pcap(trace: Trace, path: str | os.PathLike, mss: int = DEFAULT_MSS,
                 time_offset_ns: int | None = None) -> None:
    """Write a pcap of ``trace``'s session: Ethernet (as Linux frames loopback) / IPv4 / TCP.

    The handshake is stamped at ``trace.t_connect_ns``; each chunk becomes segments of at most ``mss`` payload
    bytes stamped with the chunk's time, followed by one ACK from the other side; the session ends with a
    FIN exchange at the last chunk's time. Initial sequence numbers are derived from the ports (deterministic).
    ``time_offset_ns`` turns perf_counter times into epoch times (measured now when not given).
    """
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

    def emit(side: str, t_ns: int, flags: int, seq: int, ack: int | None, payload: bytes = b"",
             options: bytes = b"") -> None:
        src, sport, dst, dport = ends[side]
        ip_id[side] = (ip_id[side] + 1) & 0xFFFF
        tcp = tcp_segment(sport, dport, seq, ack or 0, flags, payload, options)
        ip = ip_packet(src, dst, tcp, checksums=True, id=ip_id[side])
        t = max(t_ns, last_t[0])
        last_t[0] = t
        out.append((t + offset, ETH_LO + ip))

    other = {"c": "s", "s": "c"}
    t0 = trace.t_connect_ns or (trace.on_wire[0].t if trace.on_wire else time.perf_counter_ns())
    emit("c", t0, TH_SYN, isn["c"], None, options=mss_option(mss))
    emit("s", t0, TH_SYN | TH_ACK, isn["s"], nxt["c"], options=mss_option(mss))
    emit("c", t0, TH_ACK, nxt["c"], nxt["s"])
    for chunk in trace.on_wire:  # with TLS: the records, as they crossed the socket
        side = "c" if chunk.direction == UP else "s"
        data = chunk.data
        for i in range(0, len(data), mss):
            seg = data[i:i + mss]
            emit(side, chunk.t, TH_PUSH | TH_ACK if i + mss >= len(data) else TH_ACK, nxt[side],
                 nxt[other[side]], seg)
            nxt[side] = (nxt[side] + len(seg)) & 0xFFFFFFFF
        if data:
            emit(other[side], chunk.t, TH_ACK, nxt[other[side]], nxt[side])
    t_end = trace.t_end_ns
    emit("c", t_end, TH_FIN | TH_ACK, nxt["c"], nxt["s"])
    nxt["c"] = (nxt["c"] + 1) & 0xFFFFFFFF
    emit("s", t_end, TH_FIN | TH_ACK, nxt["s"], nxt["c"])
    nxt["s"] = (nxt["s"] + 1) & 0xFFFFFFFF
    emit("c", t_end, TH_ACK, nxt["c"], nxt["s"])
    write_capture(path, pcap_bytes(out, linktype=1, nano=True, snaplen=SNAPLEN))

