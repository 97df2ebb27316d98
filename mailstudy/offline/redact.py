"""Overwrite the credentials in a capture so that it can be shared, and change nothing else.

Why: a capture is the evidence behind every number of the study (DESIGN.md: "a number in a chart must be
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
   :func:`mailstudy.net.reassembly.reassemble`, exactly as the analysis reads it; alongside, every client segment's
   sequence offset is noted (same connection split, same offset rule as the reassembler).
2. Each session's chunks, in the order they became readable, go through the session's protocol parser
   (:mod:`mailstudy.protocol`), which emits the credentials as spans of the client stream: which client line is
   a SASL line, which ``+`` is for a literal, refused synchronizing literals and STARTTLS follow its rules, the
   same ones the analysis and the replay use.
3. Ranges map back to sequence offsets (gaps in the client stream are skipped the way the reassembler skips
   them) and from there to *every* packet whose payload covers them: the first copy, retransmissions, overlaps.
4. The input is copied to a temporary file beside the output; the covered payload bytes are overwritten in place
   at their file offsets (records are walked again with ``struct``: the reader does not hand out file offsets)
   and each modified segment's TCP checksum is recomputed over the IPv4 or IPv6 pseudo-header; then the
   temporary file replaces the output atomically. A segment cut by the snap length (or the first fragment of a
   fragmented IP packet) cannot be summed whole: its checksum is updated incrementally (RFC 1624), which keeps
   it right if it was right.

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
import struct
import sys
import tempfile
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from mailstudy.net.pcap import (
    _PCAP_MAGIC,
    _PCAPNG_SHB,
    PcapError,
    PcapReader,
    PcapStats,
    TcpPacket,
    _decode,
)
from mailstudy.net.reassembly import ConnectionTable, reassemble
from mailstudy.protocol import feed_all, make_parser
from mailstudy.protocol.classify import classify
from mailstudy.protocol.events import CREDENTIAL_KINDS, Encrypted, Span

__all__ = ["FILLER", "KINDS", "RedactError", "SessionRedaction", "RedactionReport", "find_credentials",
           "redact_pcap"]

FILLER = b"x"
KINDS = CREDENTIAL_KINDS
_M32 = 0xFFFFFFFF
_SYN, _FIN, _RST = 0x02, 0x01, 0x04


class RedactError(ValueError):
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
    __slots__ = ("base", "hi", "fin", "segs")

    def __init__(self) -> None:
        self.base: int | None = None
        self.hi = 0
        self.fin: int | None = None
        self.segs: list[tuple[int, int, int, int]] = []  # (offset, length, record index, raw seq)


def _tap(packets: Iterator[TcpPacket], table: ConnectionTable,
         ups: dict[int, _UpState]) -> Iterator[TcpPacket]:
    """Pass packets through unchanged while noting each client segment's offset (the reassembler's rule 3)."""
    for p in packets:
        tr, di = table.lookup(p)
        if di == 0:
            st = ups.get(tr.index)
            if st is None:
                st = ups[tr.index] = _UpState()
            f = p.flags
            seq = p.seq
            if f & _SYN:
                seq = (seq + 1) & _M32
                if st.base is None:
                    st.base = seq
            elif st.base is None:
                st.base = seq
            data = p.payload
            if data or f & (_FIN | _RST):
                x = ((seq - st.base) - st.hi) & _M32
                off = st.hi + (x - 0x100000000 if x & 0x80000000 else x)
                if data:
                    st.segs.append((off, len(data), p.index, p.seq))
                    if st.fin is None or off < st.fin:
                        st.hi = max(st.hi, off + len(data))
                if f & _FIN and st.fin is None:
                    st.fin = off + len(data)
        yield p


def _coverage(st: _UpState) -> list[tuple[int, int]]:
    """Merged ``[a, b)`` sequence-offset intervals the capture holds of one client stream (>= 0, before FIN)."""
    spans = []
    for off, n, _i, _s in st.segs:
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


# ---- pass 2: records and their file offsets ----------------------------------------------------------------------
def _records(mm) -> Iterator[tuple[int, int, int, int, int]]:
    """``(index, frame offset, captured length, original length, link type)`` per packet record, numbered as
    :class:`~mailstudy.net.pcap.PcapReader` numbers them (the reader does not give file offsets, hence this walk)."""
    magic = struct.unpack_from("<I", mm, 0)[0]
    n = len(mm)
    if magic in _PCAP_MAGIC:
        endian, _frac, hlen = _PCAP_MAGIC[magic]
        lt = struct.unpack_from(endian + "I", mm, 20)[0] & 0xFFFF
        rec = struct.Struct(endian + "IIII").unpack_from
        pos, index = 24, 0
        while pos + hlen <= n:
            _s, _f, incl, orig = rec(mm, pos)
            start = pos + hlen
            if start + incl > n:
                return
            index += 1
            yield index, start, incl, orig, lt
            pos = start + incl
        return
    if magic != _PCAPNG_SHB:
        return
    endian = "<"
    ifaces: list[tuple[int, int]] = []
    pos, index = 0, 0
    while pos + 12 <= n:
        if struct.unpack_from("<I", mm, pos)[0] == _PCAPNG_SHB:
            endian = "<" if struct.unpack_from("<I", mm, pos + 8)[0] == 0x1A2B3C4D else ">"
            ifaces = []
        btype, blen = struct.unpack_from(endian + "II", mm, pos)
        if blen < 12 or blen % 4 or pos + blen > n:
            return
        body, bend = pos + 8, pos + blen - 4
        pos += blen
        if btype in (6, 2):
            if bend - body < 20:
                continue
            ifid, _h, _l, incl, orig = struct.unpack_from(endian + "IIIII", mm, body)
            if btype == 2:
                ifid = ifid >> 16 if endian == ">" else ifid & 0xFFFF
            index += 1
            if body + 20 + incl <= bend and ifid < len(ifaces):
                yield index, body + 20, incl, orig, ifaces[ifid][0]
        elif btype == 3:
            if bend - body < 4 or not ifaces:
                continue
            orig = struct.unpack_from(endian + "I", mm, body)[0]
            lt, snap = ifaces[0]
            index += 1
            yield index, body + 4, min(orig, bend - body - 4, snap or orig), orig, lt
        elif btype == 1 and bend - body >= 8:
            lt, _r, snap = struct.unpack_from(endian + "HHI", mm, body)
            ifaces.append((lt, snap))
        elif btype == 1:
            ifaces.append((1, 0))


def _locate(buf, off: int, end: int, lt: int) -> tuple[bytes, int, int]:
    """``(pseudo-header without length, TCP header offset, IP end)`` of a frame ``_decode`` accepted as TCP.

    ``_decode`` (mailstudy.net.pcap) does not return header offsets, so the walk to the TCP header is repeated here.
    """
    if lt == 1:
        et = (buf[off + 12] << 8) | buf[off + 13]
        off += 14
        while et in (0x8100, 0x88A8, 0x9100):
            et = (buf[off + 2] << 8) | buf[off + 3]
            off += 4
    elif lt == 113:
        off += 16
    elif lt == 276:
        off += 20
    elif lt in (0, 108):
        off += 4
    if buf[off] >> 4 == 4:
        ihl = (buf[off] & 15) << 2
        totlen = (buf[off + 2] << 8) | buf[off + 3]
        ip_end = off + totlen if totlen and off + totlen <= end else end
        return bytes(buf[off + 12:off + 20]) + b"\x00\x06", off + ihl, ip_end
    plen = (buf[off + 4] << 8) | buf[off + 5]
    nh = buf[off + 6]
    pseudo = bytes(buf[off + 8:off + 40])
    tcp = off + 40
    ip_end = tcp + plen if plen and tcp + plen <= end else end
    while nh != 6:
        if nh == 44:
            hlen = 8
        elif nh == 51:
            hlen = (buf[tcp + 1] + 2) << 2
        else:
            hlen = (buf[tcp + 1] + 1) << 3
        nh = buf[tcp]
        tcp += hlen
    return pseudo + b"\x00\x00\x00\x06", tcp, ip_end


def _sum16(data: bytes) -> int:
    """Ones-complement sum of 16-bit big-endian words (odd length padded with a zero byte)."""
    if len(data) & 1:
        data += b"\x00"
    s = sum(memoryview(data).cast("H"))  # native order; RFC 1071: byte order only swaps the folded result
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    if sys.byteorder == "little":
        s = ((s & 0xFF) << 8) | (s >> 8)
    return s


def _tcp_checksum(pseudo: bytes, segment: bytes) -> int:
    n = len(segment)
    length = struct.pack("!H", n) if len(pseudo) == 10 else struct.pack("!I", n)
    head = pseudo[:8] + b"\x00\x06" + length if len(pseudo) == 10 else pseudo[:32] + length + b"\x00\x00\x00\x06"
    return ~_sum16(head + segment[:16] + b"\x00\x00" + segment[18:]) & 0xFFFF


def _fold_add(a: int, b: int) -> int:
    s = a + b
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


# ---- the whole job -----------------------------------------------------------------------------------------------
def _same_file(a: str, b: str) -> bool:
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def sidecar_of(path: str | os.PathLike) -> Path:
    """``FILE.pcap`` -> ``FILE.pcap.json`` (as mailstudy.capture writes it)."""
    return Path(f"{os.fspath(path)}.json")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    table = ConnectionTable()
    ups: dict[int, _UpState] = {}
    try:
        conns = reassemble(_tap(iter(PcapReader(src, stats)), table, ups))
    except PcapError as e:
        raise RedactError(str(e)) from None
    except OSError as e:
        raise RedactError(f"cannot read {src}: {e.strerror or e}") from None
    report.warnings.extend(stats.warnings)

    # which bytes of which packet: record index -> (raw seq, payload length, [(a, b) in the payload])
    patches: dict[int, tuple[int, int, list[tuple[int, int]]]] = {}
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
        segs = sorted(st.segs)
        starts = [s[0] for s in segs]
        longest = max(s[1] for s in segs)
        for cred in creds:
            report.kinds[cred.kind] = report.kinds.get(cred.kind, 0) + 1
            report.bytes += cred.end - cred.start
            for a, b in _to_seq(cover, cred.start, cred.end):
                i = max(0, bisect_right(starts, a - longest) - 1)
                for off, n, index, seq in segs[i:]:
                    if off >= b:
                        break
                    lo, hi = max(a, off), min(b, off + n)
                    if lo < hi:
                        patches.setdefault(index, (seq, n, []))[2].append((lo - off, hi - off))
    _write(src, dst, patches, report)
    side = sidecar_of(src)
    if side.is_file():
        out = _copy_sidecar(side, dst, report)
        report.sidecar = str(out) if out else None
    return report


def _write(src: str, dst: str, patches: dict, report: RedactionReport) -> None:
    dst_path = Path(dst)
    fd, tmp = tempfile.mkstemp(dir=dst_path.parent, prefix=f".{dst_path.name}.", suffix=".part")
    os.close(fd)
    try:
        try:
            shutil.copyfile(src, tmp)
        except OSError as e:
            raise RedactError(f"cannot copy {src} to {dst}: {e.strerror or e}") from None
        if patches:
            with open(tmp, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as mm:
                _patch(mm, patches, report)
                mm.flush()
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _patch(mm, patches: dict, report: RedactionReport) -> None:
    last = max(patches)
    done = 0
    for index, start, incl, orig, lt in _records(mm):
        if index > last:
            break
        job = patches.get(index)
        if job is None:
            continue
        seq, n, ranges = job
        r = _decode(mm, start, start + incl, lt)
        if r.__class__ is not tuple or r[4] != seq or r[8] - r[7] != n:
            raise RedactError(f"record #{index}: the file changed under the redaction, or its records could "
                              f"not be walked again; nothing written")
        ps, short = r[7], r[9]
        pseudo, tcp, ip_end = _locate(mm, start, start + incl, lt)
        old = bytes(mm[tcp:ip_end])
        for a, b in ranges:
            mm[ps + a:ps + b] = FILLER * (b - a)
            report.bytes_overwritten += b - a
        new = bytes(mm[tcp:ip_end])
        stored = struct.unpack_from("!H", mm, tcp + 16)[0]
        whole = not short and orig <= incl
        if whole:
            if _tcp_checksum(pseudo, old) != stored:
                report.checksums_fixed += 1
            csum = _tcp_checksum(pseudo, new)
        else:  # RFC 1624: HC' = ~(~HC + ~m + m') over the changed words
            report.checksums_incremental += 1
            lo = min(a for a, _ in ranges) + ps - tcp
            hi = max(b for _, b in ranges) + ps - tcp
            lo &= ~1
            hi += hi & 1
            m_old, m_new = _sum16(old[lo:hi]), _sum16(new[lo:hi])
            csum = ~_fold_add(_fold_add(~stored & 0xFFFF, ~m_old & 0xFFFF), m_new) & 0xFFFF
        struct.pack_into("!H", mm, tcp + 16, csum)
        report.packets += 1
        done += 1
    if done != len(patches):
        raise RedactError(f"only {done} of {len(patches)} packets to redact were found again in the file; "
                          f"nothing written")


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
    out = sidecar_of(dst)
    _atomic_write_bytes(out, (json.dumps(doc, indent=2, default=str) + "\n").encode())
    return out
