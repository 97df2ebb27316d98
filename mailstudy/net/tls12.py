"""Decrypt one direction of a captured TLS 1.2 connection with its key log's master secret (``CLIENT_RANDOM``).

Why: a client that stops at TLS 1.2 (or a server that does) writes ``CLIENT_RANDOM <client random> <master
secret>`` lines instead of TLS 1.3's traffic secrets; :mod:`mailstudy.net.tls13` reads the handshake and hands
the connection here. The arithmetic is fixed by the RFCs and short: the key block from the master secret
(RFC 5246 section 6.3, the PRF of section 5 with the suite's hash), AES-GCM records with a 4-byte salt and an
8-byte explicit nonce (RFC 5288 section 3), ChaCha20-Poly1305 records with the nonce XORed with the sequence
number (RFC 7905 section 2), and additional data of sequence number, type, version and plaintext length (RFC 5246
section 6.2.3.3). The AEADs come from the ``cryptography`` library; tests compare with tshark's decryption.

Scope: the AEAD suites (AES-GCM, ChaCha20-Poly1305) with ECDHE, DHE or RSA key exchange; CBC suites and
renegotiation are refused with a one-line :class:`~mailstudy.net.tls13.TlsDecryptError` raised by the caller's
type (``error``). Records are decrypted from the direction's ChangeCipherSpec on (its Finished is sequence 0).
"""

from __future__ import annotations

import hmac
import struct

__all__ = ["SUITES", "key_block", "decrypt_records"]

#: cipher suite -> (AEAD, key length, hash name); RFC 5288, RFC 5289, RFC 7905
SUITES = {
    0x009C: ("gcm", 16, "sha256"), 0x009D: ("gcm", 32, "sha384"),  # RSA
    0x009E: ("gcm", 16, "sha256"), 0x009F: ("gcm", 32, "sha384"),  # DHE-RSA
    0xC02B: ("gcm", 16, "sha256"), 0xC02C: ("gcm", 32, "sha384"),  # ECDHE-ECDSA
    0xC02F: ("gcm", 16, "sha256"), 0xC030: ("gcm", 32, "sha384"),  # ECDHE-RSA
    0xCCA8: ("chacha", 32, "sha256"), 0xCCA9: ("chacha", 32, "sha256"), 0xCCAA: ("chacha", 32, "sha256"),
}
CHANGE_CIPHER_SPEC = 20


def _prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    """The TLS 1.2 PRF: P_hash(secret, label + seed) (RFC 5246 section 5)."""
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return out[:length]


def key_block(suite: int, master: bytes, client_random: bytes, server_random: bytes) -> dict[str, tuple]:
    """``{"client": (aead, iv), "server": (aead, iv)}``: each side's write key as a ``cryptography`` AEAD and
    its IV (the GCM salt of 4 bytes, or ChaCha20's 12), from the key block (RFC 5246 section 6.3; AEAD suites
    have no MAC key)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    kind, key_len, hash_name = SUITES[suite]
    iv_len = 4 if kind == "gcm" else 12
    block = _prf(master, b"key expansion", server_random + client_random, 2 * (key_len + iv_len), hash_name)
    ck, sk = block[:key_len], block[key_len:2 * key_len]
    civ, siv = block[2 * key_len:2 * key_len + iv_len], block[2 * key_len + iv_len:]
    make = AESGCM if kind == "gcm" else ChaCha20Poly1305
    return {"client": (make(ck), civ, kind), "server": (make(sk), siv, kind)}


def decrypt_records(records, key: tuple, error) -> list[tuple[int, int, int, bytes]]:
    """``(start, end, type, plaintext)`` of every record after the direction's ChangeCipherSpec, decrypted
    with ``key`` (one side of :func:`key_block`); ``records`` are ``(start, end, type, body)`` and ``error`` the
    exception type to raise (with a one-line message) when a record does not decrypt."""
    from cryptography.exceptions import InvalidTag

    aead, iv, kind = key
    out = []
    seq = None  # None until ChangeCipherSpec
    for start, end, ctype, body in records:
        if seq is None:
            if ctype == CHANGE_CIPHER_SPEC:
                seq = 0
            continue
        if kind == "gcm":
            nonce, sealed = iv + body[:8], body[8:]
        else:
            nonce, sealed = bytes(a ^ b for a, b in zip(iv, b"\x00" * 4 + struct.pack(">Q", seq))), body
        aad = struct.pack(">QBHH", seq, ctype, 0x0303, len(sealed) - 16)
        try:
            plain = aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise error(f"a TLS 1.2 record at stream offset {start} does not decrypt with the key log's master "
                        f"secret (the wrong key log?)") from None
        out.append((start, end, ctype, plain))
        seq += 1
    return out
