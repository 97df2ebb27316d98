"""The JSON sidecar FILE.pcap.json beside every capture: how it was made, by whom, and how complete it is.

Why a module of its own: the sidecar is a file format; it has one reader/writer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mailstudy import __version__
from mailstudy.capture.report import CaptureReport
from mailstudy.outputs import sidecar_path, write_atomically

# ---- sidecar -------------------------------------------------------------------------------------------------


def write_sidecar(report: CaptureReport, ports: list[int], meta: dict) -> Path:
    """Write the JSON description of a capture beside it, atomically; returns its path."""
    out = sidecar_path(report.path)
    doc = {
        "pcap": os.path.basename(report.path),
        "backend": report.backend,
        "rebuilt": report.rebuilt,
        "reason": report.reason,
        "ports": list(ports),
        "protocol": meta.get("protocol"),
        "server": meta.get("server"),
        "server_version": meta.get("server_version"),
        "parameters": meta,
        "redaction": "none",
        "complete": report.complete,
        "bytes_up": report.bytes_up,
        "bytes_down": report.bytes_down,
        "trace_bytes_up": report.trace_bytes_up,
        "trace_bytes_down": report.trace_bytes_down,
        "packets": report.packets,
        "dropped": report.dropped,
        "unread_up": report.unread_up,
        "unread_down": report.unread_down,
        "warnings": report.warnings,
        "notes": report.notes,
        "mailstudy_version": __version__,
        "time_offset_ns": report.time_offset_ns,
        "time_offset_meaning": "epoch_ns = trace perf_counter_ns + time_offset_ns",
    }
    return write_atomically(out, json.dumps(doc, indent=2, default=str) + "\n")
