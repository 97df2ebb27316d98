"""Open the TLS sessions of a capture with a key log: each becomes a mail session like a plain one, marked
decrypted.

Why a module of its own: :func:`mailstudy.offline.analyze.analyze_pcap` reads what crosses the wire; a key log
is an extra input that only the explorer (and a curious student) has. This module reads the capture's TLS
connections again, decrypts them with :mod:`mailstudy.net.tls13`, tells the protocol from the decrypted greeting
(:mod:`mailstudy.protocol.classify`, as for plain captures) and analyzes them with the one parser
(:func:`~mailstudy.offline.analyze.analyze_connection`).

What the numbers mean for a decrypted session: its exchanges and byte counts are the protocol's bytes inside
TLS (what the plain captures count); the TLS bytes on the wire are named in the session's first warning, so
nothing is hidden. Connections with TLS from the first byte are decrypted, and so are STARTTLS/STLS sessions:
their plain-text start is kept as captured, the TLS after the upgrade is decrypted, and the parser reads on
(``decrypted``), its ``Encrypted`` event marking "encrypted from here". Without a key log (or when it does not
open the connection) a STARTTLS session stays as the plain analysis left it: counted, not read, after STARTTLS.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from mailstudy.net.pcap import read_tcp
from mailstudy.net.reassembly import reassemble
from mailstudy.net.tls13 import TlsDecryptError, decrypt_chunks, parse_keylog, starts_with_client_hello
from mailstudy.offline.analyze import Analysis, analyze_connection
from mailstudy.protocol.classify import classify
from mailstudy.protocol.events import Encrypted
from mailstudy.wire import UP

__all__ = ["add_decrypted_sessions"]


def _split_at_tls(chunks: list) -> tuple[list, list]:
    """A STARTTLS/STLS connection's chunks cut where TLS begins: ``(plain, tls)``. The client's TLS begins with
    the first chunk that starts with a ClientHello, the server's with the first chunk after it that starts with
    a TLS handshake record (both sides wait for the other before their first record, so each begins a segment);
    ``tls`` is empty when no ClientHello is found (a COMPRESS session, or none at all)."""
    up_at = next((i for i, c in enumerate(chunks) if c[0] == UP and starts_with_client_hello(c[2])), None)
    if up_at is None:
        return chunks, []
    down_at = next((i for i, c in enumerate(chunks) if i > up_at and c[0] != UP and c[2][:2] == b"\x16\x03"),
                   len(chunks))
    plain = [c for i, c in enumerate(chunks) if i < (up_at if c[0] == UP else down_at)]
    tls = [c for i, c in enumerate(chunks) if i >= (up_at if c[0] == UP else down_at)]
    return plain, tls


def add_decrypted_sessions(analysis: Analysis, keylog: str | os.PathLike) -> Analysis:
    """Decrypt every TLS connection of ``analysis.path`` with ``keylog`` and put the mail sessions found among
    ``analysis.sessions`` (replacing the encrypted session of the same connection), in the file's order and
    numbered again. TLS from the first byte (IMAPS, POP3S) and TLS after STARTTLS/STLS are both opened: a
    STARTTLS session keeps its plain-text start and reads on inside TLS, its ``Encrypted`` event marking where
    encryption begins. A connection that does not decrypt becomes a warning of the file."""
    keys = parse_keylog(Path(keylog).read_text(errors="replace"))
    name = Path(keylog).name
    by_conn = {s.connection.index: s for s in analysis.sessions}
    opened: list[str] = []  # the prefix of analyze_pcap's "not analyzed" warning for each decrypted connection
    upgraded = 0  # STARTTLS sessions opened
    for conn in reassemble(read_tcp(analysis.path)):
        up_start = next((c[2] for c in conn.chunk_tuples if c[0] == UP), b"")
        before = by_conn.get(conn.index)
        if starts_with_client_hello(up_start):
            plain_start, tls = [], conn.chunk_tuples
        elif before is not None and any(e.__class__ is Encrypted for e in before.events):
            plain_start, tls = _split_at_tls(conn.chunk_tuples)
            if not tls:
                continue
        else:
            continue
        try:
            plain = decrypt_chunks(tls, keys)
        except TlsDecryptError as exc:
            analysis.warnings.append(f"TCP stream {conn.index}: not decrypted with {name}: {exc}")
            continue
        inner = replace(conn, chunk_tuples=plain_start + plain.chunks)
        inner.bytes_up = sum(len(c[2]) for c in inner.chunk_tuples if c[0] == UP)
        inner.bytes_down = sum(len(c[2]) for c in inner.chunk_tuples if c[0] != UP)
        protocol, why = classify(conn.server[1], inner.chunk_tuples)
        if protocol is None:
            analysis.warnings.append(f"TCP stream {conn.index}: decrypted with {name}, but not IMAP or POP3 inside")
            continue
        where = "inside TLS" if not plain_start else "before STARTTLS and inside TLS after it"
        note = (f"decrypted with {name}: the bytes are {protocol.upper()}'s {where} "
                f"({inner.bytes_up:,} up / {inner.bytes_down:,} down); on the wire TLS carried "
                f"{plain.tls_bytes[UP]:,} up / {plain.tls_bytes['down']:,} down")
        session = analyze_connection(inner, protocol, 0, note=note, decrypted=bool(plain_start))
        session.encrypted = True
        session.metrics["encrypted"] = True
        session.decrypted = True
        by_conn[conn.index] = session
        if plain_start:
            upgraded += 1
        else:
            opened.append(f"TCP stream {conn.index} (")
    if opened or upgraded:
        analysis.sessions = [by_conn[k] for k in sorted(by_conn)]
        for i, s in enumerate(analysis.sessions):
            s.index = i
    if opened:
        analysis.warnings = [w for w in analysis.warnings if not w.startswith(tuple(opened))]
        analysis.non_mail -= len(opened)
        if not analysis.non_mail:  # the file's summary of skipped connections counted the ones now opened
            analysis.warnings = [w for w in analysis.warnings if "not IMAP or POP3 (server port" not in w]
    return analysis
