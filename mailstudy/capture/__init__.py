"""Capture a session's packets beside its trace, and check that the capture holds every byte the client saw.

Why: a number in a chart must be recomputable from the capture beside it (docs/design.md, "Captures"), and a
capture that silently lost its tail would make that promise false. So every capture is checked against the
client socket's :class:`~mailstudy.live.trace.Trace`: the reassembled payload each way must equal what the socket
sent and received, byte for byte, or the capture is reported *incomplete* (never silently passed off).

Three backends behind one interface (:class:`Capture`, a context manager, then :meth:`Capture.finish`):

- ``tcpdump`` (preferred): ``tcpdump -i lo --immediate-mode -B 32768 --time-stamp-precision=nano -U -w FILE
  'tcp and host H and (port P1 or port P2)'``; ready when stderr says ``listening on``; stopped with SIGINT once
  the file has stopped growing (``-U`` writes each packet at once, so the file size shows what tcpdump has);
  a nonzero "dropped by kernel" fails the capture. Without immediate mode tcpdump loses the tail while
  reporting 0 dropped (measured). As root, ``-Z root`` keeps the file owned by the caller.
- ``scapy`` (pure-Python fallback, needs CAP_NET_RAW): scapy's defaults lose most packets on ``lo``; the
  measured fixes are applied: an ``L2Socket`` (``conf.L2listen`` sees every loopback frame twice), a forced
  64 MiB receive buffer, a snap length of 256 KiB (loopback frames reach 65,549 B; scapy reads 65,535), start
  only after ``started_callback``, and drain until the packet count stops rising before ``stop()``. Frames are
  kept raw (no dissection, which is what makes scapy slow) and written with scapy's ``PcapWriter`` in
  nanosecond format. Kernel drops are read from ``PACKET_STATISTICS``.
- ``rebuilt`` (no privileges): a pcap built with scapy from the trace itself (:func:`rebuild_pcap`): honest
  IPv4/TCP framing (handshake, correct sequence and acknowledgement numbers, checksums, FIN exchange), real
  payloads and real timestamps, but the segmentation is ours (each socket call split at ``mss``). It is marked
  ``rebuilt`` in the report, the sidecar and every result row.

``auto`` picks tcpdump if installed and permitted, else scapy if permitted, else rebuilt, and says why.

Timestamps: the trace clock is ``time.perf_counter_ns()``; a capture's clock is the epoch. At capture start
this module records ``time_offset_ns = time.time_ns() - time.perf_counter_ns()`` (the sample with the
narrowest bracket of five) and stores it in the report and the sidecar, so trace times can be put on the
capture's clock (``t_epoch_ns = t_perf_ns + time_offset_ns``). The rebuilt backend uses it for its timestamps.

Beside every pcap a JSON sidecar ``FILE.pcap.json`` (written atomically) says which backend made it, whether
it was rebuilt, why that backend, ports, protocol, server and version, the parameters, redaction status
(``none``: captures on this machine are not redacted; a separate tool does that), completeness, byte and packet
counts, drops, the mailstudy version and the time offset.

Environment: ``MAILSTUDY_TCPDUMP`` names the tcpdump program to use instead of the one on ``PATH``; a value
that is not an executable file makes tcpdump count as missing (the tests use this to simulate a machine
without tcpdump).
"""

from mailstudy.capture.capturer import Capture
from mailstudy.capture.check import check_capture
from mailstudy.capture.choose import choose_backend
from mailstudy.capture.rebuild import rebuild_pcap
from mailstudy.capture.report import BACKENDS, DEFAULT_MSS, CaptureError, CaptureReport
from mailstudy.capture.sidecar import sidecar_path, write_sidecar

__all__ = ["CaptureError", "CaptureReport", "Capture", "choose_backend", "rebuild_pcap", "check_capture",
           "sidecar_path", "write_sidecar", "BACKENDS", "DEFAULT_MSS"]
