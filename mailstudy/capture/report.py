"""What a capture reports (backend, why, packets, completeness) and the one error every capture failure raises.

Why a module of its own: the capture backends, the trace check and the sidecar all speak these two nouns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailstudy.errors import MailstudyError

BACKENDS = ("auto", "tcpdump", "scapy", "rebuilt")
DEFAULT_MSS = 65483  # Linux's full loopback segment: 65,535 B IPv4 packet - 20 IP - 32 TCP (with timestamps)
SNAPLEN = 262144  # tcpdump's default; above the largest loopback frame (65,549 B)
CAP_NET_RAW = 13
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
SETTLE_POLL_S = 0.02  # drain: poll the capture's progress this often ...
SETTLE_QUIET_POLLS = 5  # ... and stop once it has not moved for this many polls ...
SETTLE_MAX_S = 3.0  # ... or after this long
ETH_LO = b"\x00" * 12 + b"\x08\x00"  # the Ethernet header Linux puts on loopback frames (zero MACs, IPv4)


class CaptureError(MailstudyError, RuntimeError):
    """A capture could not be started or lost packets; the message says why and what to do."""


@dataclass
class CaptureReport:
    """What one capture holds and whether it matches the client's trace."""

    path: str
    backend: str
    reason: str
    rebuilt: bool
    complete: bool
    bytes_up: int  # reassembled payload bytes client -> server in the capture
    bytes_down: int
    trace_bytes_up: int  # what the client's socket sent / received
    trace_bytes_down: int
    packets: int  # TCP packets in the file
    dropped: int  # packets the kernel dropped (tcpdump, scapy); 0 for rebuilt
    warnings: list[str] = field(default_factory=list)
    sidecar_path: str = ""
    time_offset_ns: int = 0
    # Bytes the capture holds after the last byte the client read: a server may send its last line (IMAP's
    # tagged LOGOUT reply after "* BYE") after the client stopped reading. Not a loss: the capture is complete.
    unread_up: int = 0
    unread_down: int = 0
    notes: list[str] = field(default_factory=list)
