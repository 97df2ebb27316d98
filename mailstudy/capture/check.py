"""The trace check: a capture is complete only when its payload bytes each way equal what the client's socket saw.

Why a module of its own: every backend, tcpdump, scapy or rebuilt, is held to the same check.
"""

from __future__ import annotations

import os

from mailstudy.capture.report import CaptureReport
from mailstudy.live.trace import DOWN, UP, Trace


def check_capture(path: str | os.PathLike, trace: Trace) -> CaptureReport:
    """Compare the pcap at ``path`` with ``trace``: the connection from the trace's local port must carry
    the trace's bytes each way, byte for byte. Bytes after the last one the client read (a reply the client
    closed without reading) are counted in ``unread_up``/``unread_down`` and noted, not held against the
    capture. Returns a report with ``complete``, warnings and notes filled in."""
    from mailstudy.net.pcap import PcapError, PcapStats, read_tcp
    from mailstudy.net.reassembly import reassemble

    t_up, t_down = trace.stream(UP, wire=True), trace.stream(DOWN, wire=True)  # with TLS: its records
    report = CaptureReport(path=str(path), backend="", reason="", rebuilt=False, complete=False, bytes_up=0,
                           bytes_down=0, trace_bytes_up=len(t_up), trace_bytes_down=len(t_down), packets=0,
                           dropped=0)
    if trace.local is None:
        report.warnings.append("the trace has no local address (the session never connected): nothing to check")
        return report
    stats = PcapStats()
    try:
        conns = reassemble(read_tcp(path, stats))
    except PcapError as exc:
        report.warnings.append(f"capture unreadable: {exc}")
        return report
    report.packets = stats.tcp_packets
    report.warnings.extend(stats.warnings[:10])
    mine = [c for c in conns if c.client[1] == trace.local[1] and c.client[0] == trace.local[0]]
    if not mine:
        report.warnings.append(f"no connection from {trace.local[0]}:{trace.local[1]} in the capture "
                               f"({len(conns)} other connection(s)): the capture missed the session")
        return report
    # Port reuse can put several connections on one client port: the one that matches wins, else the biggest.
    conn = next((c for c in mine if c.stream(UP).startswith(t_up) and c.stream(DOWN).startswith(t_down)),
                max(mine, key=lambda c: c.bytes_up + c.bytes_down))
    c_up, c_down = conn.stream(UP), conn.stream(DOWN)
    report.bytes_up, report.bytes_down = len(c_up), len(c_down)
    report.complete = c_up.startswith(t_up) and c_down.startswith(t_down)
    report.unread_up, report.unread_down = (len(c_up) - len(t_up), len(c_down) - len(t_down)) \
        if report.complete else (0, 0)
    for name, got, want in (("up", c_up, t_up), ("down", c_down, t_down)):
        if got == want:
            continue
        if got.startswith(want):
            report.notes.append(f"the capture holds {len(got) - len(want)} bytes {name} after the last byte the "
                                f"client's socket read (sent, but never read before the client closed)")
        elif len(got) < len(want) and want.startswith(got):
            report.warnings.append(f"capture incomplete {name}: {len(want) - len(got)} of {len(want)} bytes "
                                   f"the client's socket saw are missing (the tail)")
        else:
            at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            missing = max(0, len(want) - len(got))
            report.warnings.append(f"capture incomplete {name}: it differs from the client's socket from byte "
                                   f"{at} on ({len(got)} captured vs {len(want)} seen; {missing} missing)")
    if not report.complete:
        report.warnings.extend(conn.warnings[:10])
    return report
