"""Open the TLS sessions of a capture with a key log: each becomes a mail session like a plain one, marked
decrypted.

Why a module of its own: :func:`mailstudy.offline.analyze.analyze_pcap` reads what crosses the wire; a key log
is an extra input that only the explorer (and a curious student) has. This module reads the capture's TLS
connections again, decrypts them with :mod:`mailstudy.net.tls13`, tells the protocol from the decrypted greeting
(:mod:`mailstudy.protocol.classify`, as for plain captures) and analyzes them with the one parser
(:func:`~mailstudy.offline.analyze.analyze_connection`).

What the numbers mean for a decrypted session: its exchanges and byte counts are the protocol's bytes inside
TLS (what the plain captures count); the TLS bytes on the wire are named in the session's first warning, so
nothing is hidden. Only connections with TLS from the first byte are decrypted; a STARTTLS session stays
marked "encrypted from here" (the parser counts, not reads, what follows STARTTLS).
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
from mailstudy.wire import UP

__all__ = ["add_decrypted_sessions"]


def add_decrypted_sessions(analysis: Analysis, keylog: str | os.PathLike) -> Analysis:
    """Decrypt every TLS-from-the-start connection of ``analysis.path`` with ``keylog`` and put the mail
    sessions found among ``analysis.sessions`` (replacing an encrypted session of the same connection), in the
    file's order and numbered again. A connection that does not decrypt becomes a warning of the file."""
    keys = parse_keylog(Path(keylog).read_text(errors="replace"))
    by_conn = {s.connection.index: s for s in analysis.sessions}
    opened: list[str] = []  # the prefix of analyze_pcap's "not analyzed" warning for each decrypted connection
    for conn in reassemble(read_tcp(analysis.path)):
        up_start = next((c[2] for c in conn.chunk_tuples if c[0] == UP), b"")
        if not starts_with_client_hello(up_start):
            continue
        try:
            plain = decrypt_chunks(conn.chunk_tuples, keys)
        except TlsDecryptError as exc:
            analysis.warnings.append(f"TCP stream {conn.index}: not decrypted with {Path(keylog).name}: {exc}")
            continue
        inner = replace(conn, chunk_tuples=plain.chunks)
        inner.bytes_up = sum(len(c[2]) for c in plain.chunks if c[0] == UP)
        inner.bytes_down = sum(len(c[2]) for c in plain.chunks if c[0] != UP)
        protocol, why = classify(conn.server[1], plain.chunks)
        if protocol is None:
            analysis.warnings.append(f"TCP stream {conn.index}: decrypted with {Path(keylog).name}, but not IMAP "
                                     f"or POP3 inside")
            continue
        note = (f"decrypted with {Path(keylog).name}: the bytes are {protocol.upper()}'s inside TLS "
                f"({inner.bytes_up:,} up / {inner.bytes_down:,} down); on the wire TLS carried "
                f"{plain.tls_bytes[UP]:,} up / {plain.tls_bytes['down']:,} down")
        session = analyze_connection(inner, protocol, 0, note=note)
        session.encrypted = True
        session.metrics["encrypted"] = True
        session.decrypted = True
        by_conn[conn.index] = session
        opened.append(f"TCP stream {conn.index} (")
    if opened:
        analysis.sessions = [by_conn[k] for k in sorted(by_conn)]
        for i, s in enumerate(analysis.sessions):
            s.index = i
        analysis.warnings = [w for w in analysis.warnings if not w.startswith(tuple(opened))]
        analysis.non_mail -= len(opened)
        if not analysis.non_mail:  # the file's summary of skipped connections counted the ones now opened
            analysis.warnings = [w for w in analysis.warnings if "not IMAP or POP3 (server port" not in w]
    return analysis
