"""Which capture backend may run here, and why: tcpdump or scapy need root or CAP_NET_RAW, rebuilt always works.

Why a module of its own: the choice is asked before any capture starts (a CLI checks it up front), and a test
can switch privileges off here without touching the capturers.
"""

from __future__ import annotations

import os
import shutil
import struct

from mailstudy.capture.report import BACKENDS, CAP_NET_RAW, CaptureError


# ---- choosing a backend --------------------------------------------------------------------------------------
def tcpdump_path() -> str | None:
    """Where tcpdump is (``MAILSTUDY_TCPDUMP`` names another program), or None; the chooser and the capturer ask."""
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
    prog = tcpdump_path()
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
