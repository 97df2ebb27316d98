"""Decrypt a captured TLS 1.3 connection with its key log: the plaintext each side sent, with each record's time.

Why: the example ``captures/imaps.pcap`` lies beside ``imaps.keylog`` (what Python's ``ssl`` writes with
``keylog_filename``, the NSS key log format Wireshark reads). A student should see the IMAP inside it with the
same parser as every plain capture. Why our own code: tshark decrypts (``-o tls.keylog_file:``), but its
decrypted bytes come as hex dumps per frame with no per-record times we could feed the parser, and scapy's TLS
layer decrypts only inside its own sniffing session (on this capture, ``rdpcap`` with ``conf.tls_nss_filename``
left every record encrypted). The arithmetic is short and fixed by RFC 8446: traffic keys from the logged
secrets (section 7.3, HKDF-Expand-Label of section 7.1), per-record nonces (section 5.3), AEAD from the
``cryptography`` library; tests check the result against tshark with the same key log.

Scope: TLS 1.3 with the three common AEAD suites, and TLS 1.2 with its AEAD suites (``CLIENT_RANDOM`` lines:
:mod:`mailstudy.net.tls12`), from the connection's first TLS byte (IMAPS, POP3S, or the TLS after STARTTLS:
:mod:`mailstudy.offline.decrypt` cuts the chunks there). Key updates and CBC suites are refused with a one-line
:class:`TlsDecryptError`.
Pure: bytes and times in, bytes and times out; no file, no socket.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from mailstudy.errors import MailstudyError
from mailstudy.net import tls12
from mailstudy.wire import DOWN, UP

__all__ = ["TlsDecryptError", "Decrypted", "parse_keylog", "decrypt_chunks", "starts_with_client_hello"]

HANDSHAKE, APPLICATION_DATA, CHANGE_CIPHER_SPEC, ALERT = 22, 23, 20, 21
#: cipher suite -> (hash name, key length); RFC 8446 appendix B.4
SUITES = {0x1301: ("sha256", 16), 0x1302: ("sha384", 32), 0x1303: ("sha256", 32)}
SECRETS = {UP: ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"),
           DOWN: ("SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0")}


class TlsDecryptError(MailstudyError, ValueError):
    """The connection cannot be decrypted with this key log; the message says why, on one line."""


@dataclass
class Decrypted:
    """The plaintext of one connection: ``(direction, t, data)`` chunks in capture order, one per record."""

    chunks: list = field(default_factory=list)
    records: dict = field(default_factory=lambda: {UP: 0, DOWN: 0})  # application data records decrypted
    tls_bytes: dict = field(default_factory=lambda: {UP: 0, DOWN: 0})  # TLS bytes on the wire
    suite: int = 0


def parse_keylog(text: str) -> dict[bytes, dict[str, bytes]]:
    """``{client_random: {label: secret}}`` from an NSS key log (comments and unknown lines skipped)."""
    out: dict[bytes, dict[str, bytes]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or line.startswith("#"):
            continue
        try:
            out.setdefault(bytes.fromhex(parts[1]), {})[parts[0]] = bytes.fromhex(parts[2])
        except ValueError:
            continue
    return out


def starts_with_client_hello(up: bytes) -> bool:
    """Whether a client stream begins with a TLS handshake record holding a ClientHello."""
    return len(up) >= 6 and up[0] == HANDSHAKE and up[1] == 3 and up[5] == 1


def _records(stream: bytes):
    """``(start, end, type, body)`` of each whole record of a stream."""
    pos = 0
    while pos + 5 <= len(stream):
        kind, length = stream[pos], struct.unpack_from(">H", stream, pos + 3)[0]
        if pos + 5 + length > len(stream):
            return
        yield pos, pos + 5 + length, kind, stream[pos + 5:pos + 5 + length]
        pos += 5 + length


def _expand_label(secret: bytes, label: str, length: int, hash_name: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    full = b"tls13 " + label.encode()
    info = struct.pack(">H", length) + bytes([len(full)]) + full + b"\x00"
    algorithm = hashes.SHA256() if hash_name == "sha256" else hashes.SHA384()
    return HKDFExpand(algorithm=algorithm, length=length, info=info).derive(secret)


def _aead(suite: int, secret: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    hash_name, key_len = SUITES[suite]
    key = _expand_label(secret, "key", key_len, hash_name)
    iv = _expand_label(secret, "iv", 12, hash_name)
    return (ChaCha20Poly1305(key) if suite == 0x1303 else AESGCM(key)), iv


def _hello_fields(up: bytes, down: bytes) -> tuple[bytes, int, bytes]:
    """(client random, cipher suite, server random) from the ClientHello and the ServerHello."""
    if not starts_with_client_hello(up) or len(up) < 43:
        raise TlsDecryptError("the client's first bytes are not a TLS ClientHello")
    client_random = up[11:43]
    first = next(_records(down), None)
    if first is None or first[2] != HANDSHAKE or first[3][:1] != b"\x02":
        raise TlsDecryptError("the server's first bytes are not a TLS ServerHello")
    body = first[3]
    sid_len = body[38]
    suite = struct.unpack_from(">H", body, 39 + sid_len)[0]
    return client_random, suite, body[6:38]


def _times(chunks: list, direction: str):
    """(stream bytes, [(end offset, t, capture position)]) of one direction."""
    marks, data, end = [], [], 0
    for pos, (d, t, chunk) in enumerate(chunks):
        if d == direction:
            data.append(chunk)
            end += len(chunk)
            marks.append((end, t, pos))
    return b"".join(data), marks


def _decrypt_direction(chunks: list, direction: str, suite: int, secrets: dict, out: Decrypted) -> list:
    from cryptography.exceptions import InvalidTag

    stream, marks = _times(chunks, direction)
    ends = [m[0] for m in marks]
    names = SECRETS[direction]
    missing = [n for n in names if n not in secrets]
    if missing:
        why = "a TLS 1.2 key log (CLIENT_RANDOM)" if "CLIENT_RANDOM" in secrets else "no line for this connection"
        raise TlsDecryptError(f"the key log has {why}: only TLS 1.3 traffic secrets ({', '.join(missing)}) "
                              f"can be used here")
    keys = [_aead(suite, secrets[n]) for n in names]
    stage, seq = 0, 0
    found = []
    for start, end, kind, body in _records(stream):
        out.tls_bytes[direction] += end - start
        if kind != APPLICATION_DATA:
            continue
        header = stream[start:start + 5]
        while True:
            aead, iv = keys[stage]
            nonce = bytes(a ^ b for a, b in zip(iv, (b"\x00" * 4) + struct.pack(">Q", seq)))
            try:
                inner = aead.decrypt(nonce, body, header)
                break
            except InvalidTag:
                if stage + 1 >= len(keys):
                    raise TlsDecryptError(f"a {direction} record at stream offset {start} does not decrypt with "
                                          f"the key log (a key update, or the wrong key log)") from None
                stage, seq = stage + 1, 0
        seq += 1
        plain = inner.rstrip(b"\x00")
        if not plain or plain[-1] != APPLICATION_DATA:
            continue  # handshake messages, alerts: not the protocol's bytes
        found.append(_placed(marks, ends, end, direction, plain[:-1]))
        out.records[direction] += 1
    return found


def _placed(marks: list, ends: list, end: int, direction: str, plain: bytes) -> tuple:
    """A record's plaintext as ``(capture position, direction, t, plain)``: stamped with the time of the packet
    that completed the record (``marks``/``ends`` from :func:`_times`)."""
    from bisect import bisect_left

    _, t, pos = marks[min(bisect_left(ends, end), len(marks) - 1)]
    return pos, direction, t, plain


def _decrypt_tls12(chunks: list, suite: int, secrets: dict, client_random: bytes, server_random: bytes,
                   out: Decrypted) -> list:
    """Both directions of a TLS 1.2 connection (:mod:`mailstudy.net.tls12`), as ``_decrypt_direction`` gives."""
    master = secrets.get("CLIENT_RANDOM")
    if master is None:
        raise TlsDecryptError("the connection is TLS 1.2 and the key log has no CLIENT_RANDOM line (its master "
                              "secret) for it")
    keys = tls12.key_block(suite, master, client_random, server_random)
    found = []
    for direction, side in ((UP, "client"), (DOWN, "server")):
        stream, marks = _times(chunks, direction)
        ends = [m[0] for m in marks]
        records = list(_records(stream))
        out.tls_bytes[direction] += sum(end - start for start, end, _k, _b in records)
        for _start, end, kind, plain in tls12.decrypt_records(records, keys[side], TlsDecryptError):
            if kind == APPLICATION_DATA and plain:
                found.append(_placed(marks, ends, end, direction, plain))
                out.records[direction] += 1
    return found


def decrypt_chunks(chunks: list, keylog: dict[bytes, dict[str, bytes]]) -> Decrypted:
    """Decrypt a connection's ``(direction, t, data)`` chunks (TLS 1.3 from the first byte) with ``keylog``
    (:func:`parse_keylog`). Each application-data record becomes one chunk stamped with the time of the packet
    that completed it, in capture order."""
    up = b"".join(c[2] for c in chunks if c[0] == UP)
    down = b"".join(c[2] for c in chunks if c[0] == DOWN)
    client_random, suite, server_random = _hello_fields(up, down)
    if suite not in SUITES and suite not in tls12.SUITES:
        raise TlsDecryptError(f"cipher suite 0x{suite:04x} is not a TLS 1.3 suite or a TLS 1.2 AEAD suite this "
                              f"reader knows")
    secrets = keylog.get(client_random)
    if secrets is None:
        raise TlsDecryptError("the key log has no secrets for this connection's client random")
    out = Decrypted(suite=suite)
    if suite in tls12.SUITES:
        found = _decrypt_tls12(chunks, suite, secrets, client_random, server_random, out)
    else:
        found = (_decrypt_direction(chunks, UP, suite, secrets, out)
                 + _decrypt_direction(chunks, DOWN, suite, secrets, out))
    found.sort(key=lambda f: f[0])
    out.chunks = [(d, t, data) for _, d, t, data in found]
    return out
