"""Overwrite the credentials in a capture so that it can be shared, and change nothing else.

Why: a capture is the evidence behind every number of the study (docs/design.md: "a number in a chart must be
recomputable from the capture beside it"), so captures get published; the passwords in them must not. Dropping
packets or shortening lines would change the very byte counts, sequence numbers and round trips the capture is
evidence for, so redaction here is *same-length*: every credential byte becomes ``x`` (valid inside an IMAP atom,
a quoted string and base64 alike), CR/LF, quotes and literal markers stay, and the rest of the file is left
byte-identical: same record headers, same timestamps, same link layer, same IP headers (lengths do not change,
so neither does the IP header checksum). Only the TCP checksum of each modified segment is recomputed.

What counts as a credential is the parsers' own definition: their credential spans
(:class:`mailstudy.protocol.events.Span`, kinds :data:`~mailstudy.protocol.events.CREDENTIAL_KINDS`):

- IMAP ``LOGIN`` user and password, each an atom, a quoted string (the characters inside the quotes) or a
  literal (the literal's bytes, synchronizing or LITERAL+);
- IMAP ``AUTHENTICATE`` initial response (SASL-IR) and every SASL line the client sends for it;
- POP3 ``USER`` and ``PASS`` arguments, ``APOP`` name and digest, ``AUTH`` initial response and every SASL line
  the client sends for it. A SASL cancel (``*``) and an empty response (``=`` or an empty line) are not secrets
  and are left alone.

How, in stream offsets (so retransmissions and overlaps are redacted too):

1. The capture is read with :class:`mailstudy.net.pcap.PcapReader` and reassembled with
   :func:`mailstudy.net.reassembly.reassemble`, exactly as the analysis reads it; the reassembler's
   ``on_segment`` watcher hands over every client segment's stream offset (its own connection split and offset
   rule, not a copy of them).
2. Each session's chunks, in the order they became readable, go through the session's protocol parser
   (:mod:`mailstudy.protocol`), which emits the credentials as spans of the client stream: which client line is
   a SASL line, which ``+`` is for a literal, refused synchronizing literals and STARTTLS follow its rules, the
   same ones the analysis and the replay use.
3. Ranges map back to sequence offsets (gaps in the client stream are skipped the way the reassembler skips
   them) and from there to *every* packet whose payload covers them: the first copy, retransmissions, overlaps.
4. The input is copied to a temporary file beside the output; the covered payload bytes are overwritten in place
   at their file offsets (the reader gives each packet's ``tcp_offset``: no second walk of the records or the
   link and IP headers) and each modified segment's TCP checksum is recomputed over the IPv4 or IPv6
   pseudo-header (:mod:`mailstudy.net.checksum`); then the temporary file replaces the output atomically. A
   segment cut by the snap length (or the first fragment of a fragmented IP packet) cannot be summed whole: its
   checksum is updated incrementally (RFC 1624), which keeps it right if it was right.

Loopback captures carry *partial* checksums (checksum offload: tshark flags nearly every packet of a loopback
capture as bad); a redacted segment gets a complete, correct checksum, every other packet keeps its bytes.

Encrypted sessions (implicit TLS, or after STARTTLS/STLS/COMPRESS) hold no readable credential after the switch
and are not scanned past it. Sessions that are neither IMAP nor POP3 (by
:mod:`mailstudy.protocol.classify`, the analysis's classifier) are copied unchanged and listed in the report.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import socket
import struct
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from mailstudy.capture.sidecar import sidecar_path
from mailstudy.errors import MailstudyError
from mailstudy.net.checksum import tcp_checksum, updated_checksum
from mailstudy.net.layouts import TCP, TH_FIN
from mailstudy.net.pcap import PcapError, PcapReader, PcapStats, TcpPacket
from mailstudy.net.reassembly import reassemble
from mailstudy.outputs import publish, tmp_beside, write_atomically
from mailstudy.protocol import feed_all, make_parser
from mailstudy.protocol.classify import classify
from mailstudy.protocol.events import CREDENTIAL_KINDS, Encrypted, Span

__all__ = ["FILLER", "KINDS", "RedactError", "SessionRedaction", "RedactionReport", "find_credentials",
           "redact_pcap"]

FILLER = b"x"
KINDS = CREDENTIAL_KINDS
_SUM_AT = TCP.offsets["sum"]
_SEQ_AT = TCP.offsets["seq"]
_OFF_AT = TCP.offsets["off_x2"]


class RedactError(MailstudyError, ValueError):
    """Redaction cannot be done (unreadable input, OUT == IN, a stream that cannot be mapped); one line."""


@dataclass
class SessionRedaction:
    index: int  # TcpConnection.index
    protocol: str  # "imap" | "pop3" | "" (not a mail session: not scanned)
    client: tuple[str, int]
    server: tuple[str, int]
    credentials: list[Span] = field(default_factory=list)  # the parser's credential spans
    encrypted: bool = False  # the scan stopped at TLS/COMPRESS


@dataclass
class RedactionReport:
    """What :func:`redact_pcap` did."""

    input: str
    output: str
    sessions: list[SessionRedaction] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)  # kind -> number of credentials
    bytes: int = 0  # credential bytes in the client streams (each stream byte once)
    bytes_overwritten: int = 0  # payload bytes overwritten in the file (retransmitted copies count again)
    packets: int = 0  # packets modified
    checksums_fixed: int = 0  # modified packets whose original TCP checksum did not verify (offload)
    checksums_incremental: int = 0  # modified packets cut short: checksum updated per RFC 1624
    sidecar: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fields(self) -> list[str]:
        return [k for k in KINDS if self.kinds.get(k)]

    @property
    def mail_sessions(self) -> int:
        return sum(1 for s in self.sessions if s.protocol)


# ---- credentials: the parsers' spans ----------------------------------------------------------------------------
def find_credentials(protocol: str, chunks: Iterable) -> tuple[list[Span], bool]:
    """Credentials in one session: ``chunks`` are ``StreamChunk``s (or ``(direction, data)`` pairs) in order.

    Returns the parser's credential spans (offsets in the client stream) and whether the session went
    encrypted (implicit TLS, STARTTLS/STLS, COMPRESS: nothing readable after that).
    """
    parser = make_parser(protocol)
    parser.keep_payloads = False
    found: list[Span] = []
    encrypted = False
    for e in feed_all(parser, chunks):
        if e.__class__ is Span and e.secret and e.end > e.start:
            found.append(e)
        elif e.__class__ is Encrypted:
            encrypted = True
    return found, encrypted


# ---- pass 1: where every client segment sits in its stream -------------------------------------------------------
class _UpState:
    """One client stream's segments as the reassembler placed them: ``(offset, length, packet)``, and its FIN."""

    __slots__ = ("fin", "segs")

    def __init__(self) -> None:
        self.fin: int | None = None
        self.segs: list[tuple[int, int, TcpPacket]] = []


def _watcher(ups: dict[int, _UpState]):
    """A :func:`~mailstudy.net.reassembly.reassemble` ``on_segment`` watcher that notes every client segment."""

    def on_segment(conn: int, direction: int, off: int, p: TcpPacket) -> None:
        if direction != 0:
            return
        st = ups.get(conn)
        if st is None:
            st = ups[conn] = _UpState()
        n = len(p.payload)
        if n:
            st.segs.append((off, n, p))
        if p.flags & TH_FIN and st.fin is None:
            st.fin = off + n

    return on_segment


def _coverage(st: _UpState) -> list[tuple[int, int]]:
    """Merged ``[a, b)`` sequence-offset intervals the capture holds of one client stream (>= 0, before FIN)."""
    spans = []
    for off, n, _p in st.segs:
        a, b = max(off, 0), off + n
        if st.fin is not None:
            b = min(b, st.fin)
        if b > a:
            spans.append((a, b))
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _to_seq(cover: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """Stream range (gaps left out) -> sequence-offset ranges."""
    out = []
    pos = 0
    for a, b in cover:
        n = b - a
        lo, hi = max(start, pos), min(end, pos + n)
        if lo < hi:
            out.append((a + lo - pos, a + hi - pos))
        pos += n
        if pos >= end:
            break
    return out


# ---- pass 2: the packets' bytes, at the file offsets the reader gave --------------------------------------------
def _patch_one(mm, p: TcpPacket, ranges: list[tuple[int, int]], report: RedactionReport) -> None:
    """Overwrite ``ranges`` of packet ``p``'s payload in ``mm`` and make its TCP checksum right again."""
    tcp = p.tcp_offset
    if tcp < 0 or struct.unpack_from("!I", mm, tcp + _SEQ_AT)[0] != p.seq:
        raise RedactError(f"record #{p.index}: the file changed under the redaction; nothing written")
    ps = tcp + ((mm[tcp + _OFF_AT] >> 4) << 2)
    end = ps + len(p.payload)
    old = bytes(mm[tcp:end])
    for a, b in ranges:
        mm[ps + a:ps + b] = FILLER * (b - a)
        report.bytes_overwritten += b - a
    new = bytes(mm[tcp:end])
    stored = struct.unpack_from("!H", mm, tcp + _SUM_AT)[0]
    if not p.truncated:
        src, dst = (socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip) for ip in (p.src, p.dst))
        if tcp_checksum(src, dst, old) != stored:
            report.checksums_fixed += 1
        csum = tcp_checksum(src, dst, new)
    else:  # cut short: update over the changed 16-bit words only
        report.checksums_incremental += 1
        lo = (min(a for a, _ in ranges) + ps - tcp) & ~1
        hi = max(b for _, b in ranges) + ps - tcp
        hi += hi & 1
        csum = updated_checksum(stored, old[lo:hi], new[lo:hi])
    struct.pack_into("!H", mm, tcp + _SUM_AT, csum)
    report.packets += 1


# ---- the whole job -----------------------------------------------------------------------------------------------
def _same_file(a: str, b: str) -> bool:
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def redact_pcap(src: str | os.PathLike, dst: str | os.PathLike) -> RedactionReport:
    """Write ``dst``: ``src`` with every IMAP/POP3 credential overwritten (see the module doc); returns a report.

    Raises :class:`RedactError` (one line) when ``src`` cannot be read as a capture, ``dst`` is ``src``, or a
    client stream cannot be mapped back to its packets (then nothing is written).
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if _same_file(src, dst):
        raise RedactError(f"the output must not be the input ({os.path.basename(dst)}): redaction never edits "
                          f"the original capture")
    out_dir = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(out_dir):
        raise RedactError(f"cannot write {dst}: folder {out_dir} does not exist")
    report = RedactionReport(src, dst)
    stats = PcapStats()
    ups: dict[int, _UpState] = {}
    try:
        conns = reassemble(PcapReader(src, stats), on_segment=_watcher(ups))
    except PcapError as e:
        raise RedactError(str(e)) from None
    except OSError as e:
        raise RedactError(f"cannot read {src}: {e.strerror or e}") from None
    if stats.compression:  # tcp_offset counts decompressed bytes: patching the compressed file would corrupt it
        raise RedactError(f"{os.path.basename(src)} is {stats.compression}-compressed: decompress it first, then "
                          f"redact the plain capture")
    report.warnings.extend(stats.warnings)

    # which bytes of which packet: record index -> (packet, [(a, b) in the payload])
    patches: dict[int, tuple[TcpPacket, list[tuple[int, int]]]] = {}
    for conn in conns:
        proto = classify(conn.server[1], conn.chunk_tuples)[0] or ""
        sr = SessionRedaction(conn.index, proto, conn.client, conn.server)
        report.sessions.append(sr)
        if not proto:
            if conn.bytes_up:
                report.warnings.append(f"session {conn.index} ({conn.client[0]}:{conn.client[1]} -> "
                                       f"{conn.server[0]}:{conn.server[1]}) is neither IMAP nor POP3: not scanned")
            continue
        creds, sr.encrypted = find_credentials(proto, conn.chunks)
        sr.credentials = creds
        if not creds:
            continue
        st = ups.get(conn.index)
        cover = _coverage(st) if st else []
        if sum(b - a for a, b in cover) != conn.bytes_up:
            raise RedactError(f"session {conn.index}: cannot map its client stream back to the packets "
                              f"({conn.bytes_up} bytes reassembled, {sum(b - a for a, b in cover)} found); "
                              f"nothing written")
        if conn.gaps:
            report.warnings.append(f"session {conn.index}: the capture has gaps; credentials in missing bytes "
                                   f"were never captured, those after a gap may be missed")
        segs = sorted(st.segs, key=lambda seg: seg[:2])
        starts = [s[0] for s in segs]
        longest = max(s[1] for s in segs)
        for cred in creds:
            report.kinds[cred.kind] = report.kinds.get(cred.kind, 0) + 1
            report.bytes += cred.end - cred.start
            for a, b in _to_seq(cover, cred.start, cred.end):
                i = max(0, bisect_right(starts, a - longest) - 1)
                for off, n, p in segs[i:]:
                    if off >= b:
                        break
                    lo, hi = max(a, off), min(b, off + n)
                    if lo < hi:
                        patches.setdefault(p.index, (p, []))[1].append((lo - off, hi - off))
    _write(src, dst, patches, report)
    side = sidecar_path(src)
    if side.is_file():
        out = _copy_sidecar(side, dst, report)
        report.sidecar = str(out) if out else None
    return report


def _write(src: str, dst: str, patches: dict, report: RedactionReport) -> None:
    tmp = tmp_beside(Path(dst))
    try:
        try:
            shutil.copyfile(src, tmp)
        except OSError as e:
            raise RedactError(f"cannot copy {src} to {dst}: {e.strerror or e}") from None
        if patches:
            with open(tmp, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as mm:
                for _index, (p, ranges) in sorted(patches.items()):
                    _patch_one(mm, p, ranges, report)
                mm.flush()
        publish(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _copy_sidecar(side: Path, dst: str, report: RedactionReport) -> Path | None:
    try:
        doc = json.loads(side.read_text())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        report.warnings.append(f"sidecar {side.name} is not readable JSON ({e}); not copied")
        return None
    if "pcap" in doc:
        doc["pcap"] = os.path.basename(dst)
    doc["redaction"] = {"done": True, "fields": report.fields, "bytes": report.bytes}
    return write_atomically(sidecar_path(dst), json.dumps(doc, indent=2, default=str) + "\n")
