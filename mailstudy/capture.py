"""Capture a session's packets beside its trace, and check that the capture holds every byte the client saw.

Why: a number in a chart must be recomputable from the capture beside it (DESIGN.md, "Captures"), and a
capture that silently lost its tail would make that promise false. So every capture is checked against the
client socket's :class:`~mailstudy.trace.Trace`: the reassembled payload each way must equal what the socket
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

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType

from . import __version__
from .trace import DOWN, UP, Trace

__all__ = ["CaptureError", "CaptureReport", "Capture", "choose_backend", "rebuild_pcap", "check_capture",
           "BACKENDS", "DEFAULT_MSS"]

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


class CaptureError(RuntimeError):
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


# ---- choosing a backend --------------------------------------------------------------------------------------
def _tcpdump_path() -> str | None:
    override = os.environ.get("MAILSTUDY_TCPDUMP")
    if override is not None:
        found = shutil.which(override)
        return found
    return shutil.which("tcpdump") or next(
        (p for p in ("/usr/sbin/tcpdump", "/usr/bin/tcpdump", "/sbin/tcpdump") if os.access(p, os.X_OK)), None)


def _effective_caps() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return -1 if os.geteuid() == 0 else 0  # no /proc: trust root


def _have_net_raw() -> bool:
    return bool(_effective_caps() & (1 << CAP_NET_RAW))


def _file_grants_net_raw(path: str) -> bool:
    """True when the program at ``path`` gains CAP_NET_RAW by itself (file capability or setuid root)."""
    try:
        st = os.stat(path)
        if st.st_mode & 0o4000 and st.st_uid == 0:
            return True
        raw = os.getxattr(path, "security.capability")
    except (OSError, AttributeError):
        return False
    if len(raw) < 12:
        return False
    permitted = struct.unpack_from("<I", raw, 4)[0]
    return bool(permitted & (1 << CAP_NET_RAW))


def _scapy_importable() -> str | None:
    try:
        import scapy.all  # noqa: F401
    except Exception as exc:  # ImportError, or scapy failing to set itself up
        return f"scapy cannot be imported ({exc})"
    return None


def _why_not_tcpdump() -> str | None:
    prog = _tcpdump_path()
    if prog is None:
        where = os.environ.get("MAILSTUDY_TCPDUMP")
        src = f"MAILSTUDY_TCPDUMP={where!r} is not an executable" if where is not None else "not on PATH"
        return f"tcpdump is not installed ({src}); install it (apt-get install tcpdump) or choose the rebuilt backend"
    if not (_have_net_raw() or _file_grants_net_raw(prog)):
        return (f"tcpdump ({prog}) needs root or CAP_NET_RAW to capture on lo; run as root, or "
                f"`setcap cap_net_raw+ep {prog}`, or choose the rebuilt backend")
    return None


def _why_not_scapy() -> str | None:
    if not _have_net_raw():
        return "scapy needs root or CAP_NET_RAW to sniff on lo; run as root or choose the rebuilt backend"
    return _scapy_importable()


def choose_backend(requested: str = "auto") -> tuple[str, str]:
    """The backend to use and the reason to tell the user; :class:`CaptureError` when ``requested`` cannot run."""
    if requested not in BACKENDS:
        raise CaptureError(f"unknown capture backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    if requested == "tcpdump":
        why = _why_not_tcpdump()
        if why:
            raise CaptureError(why)
        return "tcpdump", "tcpdump was asked for"
    if requested == "scapy":
        why = _why_not_scapy()
        if why:
            raise CaptureError(why)
        return "scapy", "the scapy sniffer was asked for"
    if requested == "rebuilt":
        why = _scapy_importable()
        if why:
            raise CaptureError(f"the rebuilt backend builds packets with scapy, but {why}")
        return "rebuilt", "a pcap rebuilt from the socket trace was asked for"
    no_tcpdump = _why_not_tcpdump()
    if not no_tcpdump:
        return "tcpdump", "tcpdump is installed and permitted"
    no_scapy = _why_not_scapy()
    if not no_scapy:
        return "scapy", f"scapy sniffer, because {_short(no_tcpdump)}"
    why = _scapy_importable()
    if why:
        raise CaptureError(f"no capture backend can run: {_short(no_tcpdump)}; {why}")
    return "rebuilt", (f"rebuilt from the socket trace (segmentation is ours), because {_short(no_tcpdump)} "
                       f"and {_short(no_scapy)}")


def _short(why: str) -> str:
    return why.split(";")[0]


# ---- time ----------------------------------------------------------------------------------------------------
def perf_to_epoch_offset_ns() -> int:
    """``time.time_ns() - time.perf_counter_ns()``, from the sample with the narrowest bracket of five."""
    best = None
    for _ in range(5):
        a = time.perf_counter_ns()
        wall = time.time_ns()
        b = time.perf_counter_ns()
        cand = (b - a, wall - (a + b) // 2)
        if best is None or cand[0] < best[0]:
            best = cand
    return best[1]


# ---- the capture ---------------------------------------------------------------------------------------------
def _bpf(host: str, ports: list[int]) -> str:
    return f"tcp and host {host} and (" + " or ".join(f"port {int(p)}" for p in ports) + ")"


def _tmp_beside(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    return Path(tmp)


def _publish(tmp: Path | str, path: Path) -> None:
    """Give a finished temporary file the usual permissions (mkstemp makes it 0600) and move it into place."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def _settle(progress, deadline_s: float = SETTLE_MAX_S) -> None:
    """Wait until ``progress()`` (a number that only grows) has not moved for a few polls."""
    last = progress()
    quiet = 0
    deadline = time.monotonic() + deadline_s
    while quiet < SETTLE_QUIET_POLLS and time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        now = progress()
        quiet = quiet + 1 if now == last else 0
        last = now


class Capture:
    """Capture the TCP traffic of ``ports`` on ``host`` into the pcap at ``path`` (see the module doc).

    Use as a context manager around one session, then call :meth:`finish` with the session's trace::

        with Capture("s.pcap", [server.imap_port, server.pop3_port]) as cap:
            result = run_session(...)
        report = cap.finish(result.trace, meta)

    The pcap appears at ``path`` only when the capture stopped cleanly (it is written beside it first).
    """

    def __init__(self, path: str | os.PathLike, ports: list[int], backend: str = "auto",
                 host: str = "127.0.0.1") -> None:
        self.path = Path(path)
        self.ports = [int(p) for p in ports]
        if not self.ports or any(not 0 < p < 65536 for p in self.ports):
            raise CaptureError(f"ports must be 1-65535 and at least one, not {ports!r}")
        self.host = host
        if not self.path.parent.is_dir():
            raise CaptureError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        self.backend, self.reason = choose_backend(backend)
        self.rebuilt = self.backend == "rebuilt"
        self.time_offset_ns = 0
        self.dropped = 0
        self.started = False
        self.stopped = False
        self._proc: subprocess.Popen | None = None
        self._stderr: list[str] = []
        self._stderr_thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tmp: Path | None = None
        self._sniffer = None
        self._sock = None
        self._frames: list[tuple[float, bytes]] = []

    # -- lifecycle -----------------------------------------------------------------------------------------
    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.stop()
        except CaptureError:
            if et is None:
                raise  # otherwise the session's own error is the one to see

    def start(self) -> "Capture":
        if self.started:
            return self
        self.time_offset_ns = perf_to_epoch_offset_ns()
        if self.backend == "tcpdump":
            self._start_tcpdump()
        elif self.backend == "scapy":
            self._start_scapy()
        self.started = True
        return self

    def stop(self) -> None:
        if not self.started or self.stopped:
            return
        self.stopped = True
        if self.backend == "tcpdump":
            self._stop_tcpdump()
        elif self.backend == "scapy":
            self._stop_scapy()

    # -- tcpdump -------------------------------------------------------------------------------------------
    def _start_tcpdump(self) -> None:
        prog = _tcpdump_path()
        if prog is None:  # pragma: no cover - choose_backend checked
            raise CaptureError("tcpdump is not installed")
        self._tmp = _tmp_beside(self.path)
        cmd = [prog, "-i", "lo", "--immediate-mode", "-B", "32768", "--time-stamp-precision=nano", "-U",
               "-s", str(SNAPLEN), "-w", str(self._tmp)]
        if os.geteuid() == 0:
            cmd[1:1] = ["-Z", "root"]
        cmd.append(_bpf(self.host, self.ports))
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True, errors="replace")
        except OSError as exc:
            self._tmp.unlink(missing_ok=True)
            raise CaptureError(f"cannot run tcpdump ({prog}): {exc.strerror or exc}") from exc

        def read_stderr(stream=self._proc.stderr) -> None:
            for line in stream:
                self._stderr.append(line.rstrip("\n"))
                if "listening on" in line:
                    self._ready.set()
            self._ready.set()  # ended: whoever waits must look at the exit status

        self._stderr_thread = threading.Thread(target=read_stderr, name="tcpdump-stderr", daemon=True)
        self._stderr_thread.start()
        if not self._ready.wait(READY_TIMEOUT_S) or self._proc.poll() is not None:
            self._kill_tcpdump()
            said = "; ".join(line for line in self._stderr if line.strip())[-400:]
            self._tmp.unlink(missing_ok=True)
            raise CaptureError(f"tcpdump did not start listening within {READY_TIMEOUT_S:.0f} s"
                               f" ({said or 'it said nothing'})")

    def _kill_tcpdump(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def _file_size(self) -> int:
        try:
            return os.path.getsize(self._tmp) if self._tmp else 0
        except OSError:
            return 0

    def _stop_tcpdump(self) -> None:
        assert self._proc is not None and self._tmp is not None
        _settle(self._file_size)  # -U: the file grows with every packet tcpdump has taken from the kernel
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill_tcpdump()
            self._tmp.unlink(missing_ok=True)
            raise CaptureError(f"tcpdump did not stop within {STOP_TIMEOUT_S:.0f} s of SIGINT; killed it")
        if self._stderr_thread:
            self._stderr_thread.join(5)
        text = "\n".join(self._stderr)
        m = re.search(r"(\d+) packets? dropped by kernel", text)
        if m is None:
            self._tmp.unlink(missing_ok=True)
            raise CaptureError(f"tcpdump ended (exit {self._proc.returncode}) without its packet counts: "
                               f"{text[-300:]!r}")
        self.dropped = int(m.group(1))
        if self.dropped:
            self._tmp.unlink(missing_ok=True)
            raise CaptureError(f"tcpdump: {self.dropped} packets dropped by kernel, so the capture is "
                               f"incomplete; run fewer sessions at once or give tcpdump a larger -B buffer")
        _publish(self._tmp, self.path)

    # -- scapy ---------------------------------------------------------------------------------------------
    def _start_scapy(self) -> None:
        from scapy.sendrecv import AsyncSniffer

        sock_cls = _raw_l2socket_class()
        try:
            # No filter at construction: scapy compiles it with snap length 65,535, so the kernel would cut
            # every full-size loopback frame (65,549 B) by 14 bytes. _attach_filter compiles our own.
            with _quiet_scapy():  # it warns that it cannot name lo's link type; we read frames raw anyway
                self._sock = sock_cls(iface="lo", nofilter=1)
            _attach_filter(self._sock.ins, _bpf(self.host, self.ports))
        except CaptureError:
            if self._sock is not None:
                self._sock.close()
            raise
        except Exception as exc:  # scapy raises several kinds here (permission, interface)
            if self._sock is not None:
                self._sock.close()
            raise CaptureError(f"scapy cannot open a capture socket on lo: {exc}") from exc
        ins = self._sock.ins
        try:
            ins.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: past rmem_max (needs NET_ADMIN)
        except OSError:
            ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        _flush(ins)  # frames that arrived before the filter was attached
        self._read_drops()  # PACKET_STATISTICS resets on read: start counting now
        self._frames = []
        frames = self._frames

        def keep(pkt) -> None:
            frames.append((float(pkt.time), bytes(pkt)))

        self._sniffer = AsyncSniffer(opened_socket=self._sock, prn=keep, store=False,
                                     started_callback=self._ready.set)
        self._sniffer.start()
        if not self._ready.wait(READY_TIMEOUT_S):
            self._close_scapy()
            raise CaptureError(f"the scapy sniffer did not start within {READY_TIMEOUT_S:.0f} s")

    def _read_drops(self) -> int:
        try:
            raw = self._sock.ins.getsockopt(263, 6, 8)  # SOL_PACKET, PACKET_STATISTICS: packets, drops
            return struct.unpack("II", raw)[1]
        except OSError:
            return 0

    def _close_scapy(self) -> None:
        if self._sniffer is not None and self._sniffer.running:
            try:
                self._sniffer.stop()
            except Exception:  # noqa: BLE001 - a sniffer that cannot stop must not hide the real error
                pass
        if self._sock is not None:
            self._sock.close()

    def _stop_scapy(self) -> None:
        _settle(lambda: len(self._frames))
        self.dropped = self._read_drops()
        self._close_scapy()
        if self.dropped:
            raise CaptureError(f"scapy sniffer: {self.dropped} packets dropped by kernel, so the capture is "
                               f"incomplete; use tcpdump, or run fewer sessions at once")
        from scapy.utils import PcapWriter

        tmp = _tmp_beside(self.path)
        try:
            w = PcapWriter(str(tmp), linktype=1, nano=True, snaplen=SNAPLEN, sync=False)
            w.write_header(None)
            for t, frame in self._frames:
                sec = int(t)
                w.write_packet(frame, sec=sec, usec=int(round((t - sec) * 1e9)))
            w.close()
            _publish(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._frames = []

    # -- the check -----------------------------------------------------------------------------------------
    def finish(self, trace: Trace, meta: dict | None = None) -> CaptureReport:
        """Write the pcap (rebuilt backend), check it against ``trace``, write the sidecar; return the report.

        A capture that lacks bytes the client saw is reported with ``complete=False`` and a warning saying how
        many bytes are missing each way; it does not raise.
        """
        meta = dict(meta or {})
        if self.started and not self.stopped:
            self.stop()
        if self.rebuilt:
            self.time_offset_ns = self.time_offset_ns or perf_to_epoch_offset_ns()
            rebuild_pcap(trace, self.path, time_offset_ns=self.time_offset_ns)
        elif not self.path.exists():
            raise CaptureError(f"no capture at {self.path}: the capture was never started and stopped")
        report = check_capture(self.path, trace)
        report.backend, report.reason, report.rebuilt = self.backend, self.reason, self.rebuilt
        report.dropped = self.dropped
        report.time_offset_ns = self.time_offset_ns
        report.sidecar_path = str(write_sidecar(report, self.ports, meta))
        return report


def _attach_filter(sock: socket.socket, expr: str) -> None:
    """Compile ``expr`` with libpcap (through scapy) for Ethernet and attach it to ``sock``, accepting whole
    frames up to SNAPLEN bytes (scapy's own compile returns 65,535, which truncates loopback frames)."""
    from scapy.arch.common import compile_filter, free_filter
    from scapy.libs.structures import sock_fprog

    try:
        bp = compile_filter(expr, linktype=1)
    except Exception as exc:  # ImportError (no libpcap) or Scapy_Exception (bad filter)
        raise CaptureError(f"cannot compile the capture filter {expr!r}: {exc}") from exc
    try:
        for i in range(bp.bf_len):
            ins = bp.bf_insns[i]
            if ins.code == 0x06 and ins.k > 0:  # BPF_RET|BPF_K with a nonzero snap length: accept whole
                ins.k = SNAPLEN
        fp = sock_fprog(bp.bf_len, bp.bf_insns)
        sock.setsockopt(socket.SOL_SOCKET, 26, fp)  # SO_ATTACH_FILTER; the kernel copies the program
    finally:
        free_filter(bp)


@contextlib.contextmanager
def _quiet_scapy():
    log = logging.getLogger("scapy.runtime")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _flush(sock: socket.socket) -> None:
    import select

    while select.select([sock], [], [], 0)[0]:
        sock.recv(SNAPLEN)


def _raw_l2socket_class():
    """scapy's Linux ``L2Socket`` (outgoing copies dropped: each loopback frame once), reading up to SNAPLEN
    bytes and handing back frames undissected (``Raw``), which keeps the sniffer thread fast."""
    from scapy.arch.linux import L2Socket, get_last_packet_timestamp
    from scapy.config import conf

    class RawL2Socket(L2Socket):
        desc = "mailstudy: whole loopback frames, each once, undissected"

        def recv_raw(self, x=SNAPLEN):
            pkt, sa_ll, ts = self._recv_raw(self.ins, SNAPLEN)
            if sa_ll[2] == socket.PACKET_OUTGOING:
                return None, None, None
            if ts is None:
                ts = get_last_packet_timestamp(self.ins)
            return conf.raw_layer, pkt, ts

    return RawL2Socket


def check_capture(path: str | os.PathLike, trace: Trace) -> CaptureReport:
    """Compare the pcap at ``path`` with ``trace``: the connection from the trace's local port must carry
    the trace's bytes each way, byte for byte. Bytes after the last one the client read (a reply the client
    closed without reading) are counted in ``unread_up``/``unread_down`` and noted, not held against the
    capture. Returns a report with ``complete``, warnings and notes filled in."""
    from .pcap import PcapError, PcapStats, read_tcp
    from .reassembly import reassemble

    t_up, t_down = trace.stream(UP), trace.stream(DOWN)
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


# ---- sidecar -------------------------------------------------------------------------------------------------
def sidecar_path(path: str | os.PathLike) -> Path:
    """``FILE.pcap`` -> ``FILE.pcap.json``."""
    return Path(f"{os.fspath(path)}.json")


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
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2, default=str)
            fh.write("\n")
        _publish(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


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
    t0 = trace.t_connect_ns or (trace.chunks[0].t_ns if trace.chunks else time.perf_counter_ns())
    emit("c", t0, "S", isn["c"], None, options=[("MSS", mss)])
    emit("s", t0, "SA", isn["s"], nxt["c"], options=[("MSS", mss)])
    emit("c", t0, "A", nxt["c"], nxt["s"])
    for chunk in trace.chunks:
        side = "c" if chunk.direction == UP else "s"
        data = chunk.data
        for i in range(0, len(data), mss):
            seg = data[i:i + mss]
            emit(side, chunk.t_ns, "PA" if i + mss >= len(data) else "A", nxt[side], nxt[other[side]], seg)
            nxt[side] = (nxt[side] + len(seg)) & 0xFFFFFFFF
        if data:
            emit(other[side], chunk.t_ns, "A", nxt[other[side]], nxt[side])
    t_end = trace.t_end_ns
    emit("c", t_end, "FA", nxt["c"], nxt["s"])
    nxt["c"] = (nxt["c"] + 1) & 0xFFFFFFFF
    emit("s", t_end, "FA", nxt["s"], nxt["c"])
    nxt["s"] = (nxt["s"] + 1) & 0xFFFFFFFF
    emit("c", t_end, "A", nxt["c"], nxt["s"])

    path = Path(path)
    tmp = _tmp_beside(path)
    try:
        w = PcapWriter(str(tmp), linktype=1, nano=True, snaplen=SNAPLEN, sync=False)
        w.write_header(None)
        for t, frame in out:
            sec, ns = divmod(t + offset, 1_000_000_000)
            w.write_packet(frame, sec=sec, usec=ns)
        w.close()
        _publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
