"""The live capturers: tcpdump (preferred) and scapy's sniffer on the loopback interface.

Why a module of its own: starting, settling and stopping a capturing child process is the fragile part of
capturing; it lives apart from choosing a backend, checking the result and writing the sidecar.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

from mailstudy.capture.check import check_capture
from mailstudy.capture.choose import choose_backend, tcpdump_path
from mailstudy.capture.rebuild import rebuild_pcap
from mailstudy.capture.report import (
    READY_TIMEOUT_S,
    SETTLE_MAX_S,
    SETTLE_POLL_S,
    SETTLE_QUIET_POLLS,
    SNAPLEN,
    STOP_TIMEOUT_S,
    CaptureError,
    CaptureReport,
)
from mailstudy.capture.sidecar import write_sidecar
from mailstudy.live.trace import Trace, perf_to_epoch_offset_ns
from mailstudy.outputs import OutputError, check_output, publish, tmp_beside
from mailstudy.processes import Guardian, TiedPopen, popen_tied, uninterrupted

# the method each capturing backend runs for start, stop and abort ("rebuilt" captures nothing: it has none)
_BACKEND_STEPS = {
    "tcpdump": {"start": "_start_tcpdump", "stop": "_stop_tcpdump", "abort": "_kill_tcpdump"},
    "scapy": {"start": "_start_scapy", "stop": "_stop_scapy", "abort": "_close_scapy"},
}

# ---- the capture ---------------------------------------------------------------------------------------------
def _bpf(host: str, ports: list[int]) -> str:
    return f"tcp and host {host} and (" + " or ".join(f"port {int(p)}" for p in ports) + ")"




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
        try:
            check_output(self.path, sidecar=True, what="capture")
        except OutputError as exc:
            raise CaptureError(str(exc)) from None
        self.backend, self.reason = choose_backend(backend)
        self.rebuilt = self.backend == "rebuilt"
        self.time_offset_ns = 0
        self.dropped = 0
        self.started = False
        self.stopped = False
        self._proc: TiedPopen | None = None
        self._stderr: list[str] = []
        self._stderr_thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tmp: Path | None = None
        self._guardian: Guardian | None = None
        self._sniffer = None
        self._sock = None
        self._frames: list[tuple[float, bytes]] = []

    # -- lifecycle -----------------------------------------------------------------------------------------
    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if et is not None and issubclass(et, KeyboardInterrupt):
            self.abort()  # Ctrl-C, TERM or HUP: a partial capture is no result; leave nothing behind
            return
        try:
            self.stop()
        except CaptureError:
            if et is None:
                raise  # otherwise the session's own error is the one to see

    def start(self) -> "Capture":
        if self.started:
            return self
        self.time_offset_ns = perf_to_epoch_offset_ns()
        self._backend_step("start")
        self.started = True
        return self

    def stop(self) -> None:
        if not self.started or self.stopped:
            return
        self.stopped = True
        self._backend_step("stop")

    def abort(self) -> None:
        """Stop capturing at once and remove what was written so far (no pcap appears at ``path``)."""
        self.stopped = True
        self._backend_step("abort")

    def _backend_step(self, step: str) -> None:
        """Run this backend's method for ``step`` (see ``_BACKEND_STEPS``); the rebuilt backend has none."""
        name = _BACKEND_STEPS.get(self.backend, {}).get(step)
        if name is not None:
            getattr(self, name)()

    # -- tcpdump -------------------------------------------------------------------------------------------
    def _start_tcpdump(self) -> None:
        prog = tcpdump_path()
        if prog is None:  # pragma: no cover - choose_backend checked
            raise CaptureError("tcpdump is not installed")
        self._guardian = Guardian()  # first, so that a kill -9 from here on leaves no .part file behind
        try:
            self._launch_tcpdump(prog)
        except BaseException as exc:  # Ctrl-C, TERM or HUP included: leave nothing behind
            self._kill_tcpdump()
            if not isinstance(exc, OSError):
                raise
            raise CaptureError(f"cannot run tcpdump ({prog}): {exc.strerror or exc}") from exc

    def _launch_tcpdump(self, prog: str) -> None:
        with uninterrupted():
            self._tmp = tmp_beside(self.path)
            self._guardian.watch(self._tmp)
        cmd = [prog, "-i", "lo", "--immediate-mode", "-B", "32768", "--time-stamp-precision=nano", "-U",
               "-s", str(SNAPLEN), "-w", str(self._tmp)]
        if os.geteuid() == 0:
            cmd[1:1] = ["-Z", "root"]
        cmd.append(_bpf(self.host, self.ports))
        with uninterrupted():  # a stop signal may not come between starting tcpdump and holding its handle
            self._proc = popen_tied(cmd, guardian=self._guardian, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")

        def read_stderr(stream=self._proc.stderr) -> None:
            for line in stream:
                self._stderr.append(line.rstrip("\n"))
                if "listening on" in line:
                    self._ready.set()
            self._ready.set()  # ended: whoever waits must look at the exit status

        self._stderr_thread = threading.Thread(target=read_stderr, name="tcpdump-stderr", daemon=True)
        self._stderr_thread.start()
        if not self._ready.wait(READY_TIMEOUT_S) or self._proc.poll() is not None:
            said = "; ".join(line for line in self._stderr if line.strip())[-400:]
            raise CaptureError(f"tcpdump did not start listening within {READY_TIMEOUT_S:.0f} s"
                               f" ({said or 'it said nothing'})")

    def _kill_tcpdump(self) -> None:
        """Kill tcpdump, remove its unfinished file and stand its guardian down (each step only once)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        guardian, self._guardian = self._guardian, None
        if guardian is not None:
            guardian.release()

    def _file_size(self) -> int:
        try:
            return os.path.getsize(self._tmp) if self._tmp else 0
        except OSError:
            return 0

    def _stop_tcpdump(self) -> None:
        try:
            self._finish_tcpdump()
        finally:
            self._kill_tcpdump()  # after a clean stop: exited already, and its file was published

    def _finish_tcpdump(self) -> None:
        proc = self._proc
        assert proc is not None and self._tmp is not None
        _settle(self._file_size)  # -U: the file grows with every packet tcpdump has taken from the kernel
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise CaptureError(f"tcpdump did not stop within {STOP_TIMEOUT_S:.0f} s of SIGINT; killed it") from None
        if self._stderr_thread:
            self._stderr_thread.join(5)
        text = "\n".join(self._stderr)
        m = re.search(r"(\d+) packets? dropped by kernel", text)
        if m is None:
            raise CaptureError(f"tcpdump ended (exit {proc.returncode}) without its packet counts: "
                               f"{text[-300:]!r}")
        self.dropped = int(m.group(1))
        if self.dropped:
            raise CaptureError(f"tcpdump: {self.dropped} packets dropped by kernel, so the capture is "
                               f"incomplete; run fewer sessions at once or give tcpdump a larger -B buffer")
        publish(self._tmp, self.path)

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

        tmp = tmp_beside(self.path)
        try:
            w = PcapWriter(str(tmp), linktype=1, nano=True, snaplen=SNAPLEN, sync=False)
            w.write_header(None)
            for t, frame in self._frames:
                sec = int(t)
                w.write_packet(frame, sec=sec, usec=int(round((t - sec) * 1e9)))
            w.close()
            publish(tmp, self.path)
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
