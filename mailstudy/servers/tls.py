"""TLS for the servers: a generated certificate and the TLS versions a server offers.

Why a module of its own: both servers (the embedded one and Dovecot) serve TLS from the same kind of
certificate, written into their private folder at every start, and the client verifies it against that same
file (the certificate is its own CA). The key pair is made once per process (:func:`run_certificate`) and copied
into each server's folder: making an RSA key costs about 0.1-0.5 CPU s, and a study starts servers hundreds of
times (issue 17: ``make study`` in 15 minutes). :func:`make_certificate` still makes a fresh one when asked.
Made with the ``openssl`` command, as the IMAPS example does (no new dependency). RSA 2048 with a fixed serial
number, not ECDSA: an ECDSA signature's DER length varies by a byte or two from one key to the next, so the
handshake's byte count would vary between runs; RSA's does not.

A server offers TLS 1.2 and 1.3 unless told otherwise (``versions``); a client asks for one of them.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mailstudy.errors import MailstudyError

class CertificateError(MailstudyError, RuntimeError):
    """The server's certificate could not be made (a server turns it into its ServerError)."""


#: The names the command line and the rows use, in order, with what Python's ssl module calls them.
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
#: What Dovecot 2.3's ``ssl_min_protocol`` calls them.
DOVECOT_NAMES = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}
#: The name the certificate is made for: the loopback address the servers (and the link) listen on.
CERT_HOST = "127.0.0.1"


def check_versions(versions) -> tuple[str, ...]:
    """``versions`` as a sorted tuple of known names; ValueError naming the accepted ones otherwise."""
    out = tuple(sorted(set(versions)))
    bad = [v for v in out if v not in TLS_VERSIONS]
    if bad or not out:
        raise ValueError(f"TLS versions must be among {', '.join(TLS_VERSIONS)}, not {list(versions)!r}")
    return out


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for :data:`CERT_HOST`: ``cert`` is also the CA file a client verifies with."""

    cert: Path
    key: Path


def make_certificate(folder: Path, days: int = 2) -> Certificate:
    """A fresh RSA 2048 key and a self-signed certificate for 127.0.0.1 in ``folder`` (CertificateError if
    openssl is missing or fails)."""
    if shutil.which("openssl") is None:
        raise CertificateError("TLS needs the openssl command to make the server's certificate; "
                          "install it with: apt-get install openssl")
    cert, key = folder / "tls-cert.pem", folder / "tls-key.pem"
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
           "-days", str(days), "-subj", "/CN=mailstudy test server", "-set_serial", "1",
           "-addext", f"subjectAltName=IP:{CERT_HOST}"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CertificateError(f"openssl could not make the server's certificate: {exc}") from exc
    if out.returncode != 0:
        raise CertificateError(f"openssl could not make the server's certificate: {out.stderr.strip()[-300:]}")
    return Certificate(cert, key)


#: This process's certificate and key as bytes, made by the first :func:`run_certificate` (keyed by ``days``).
_THIS_PROCESS: dict[int, tuple[bytes, bytes]] = {}


def run_certificate(folder: Path, days: int = 2) -> Certificate:
    """This process's certificate (made by :func:`make_certificate` at the first call) written into ``folder``,
    the key readable by its owner only. A study's servers share it: the handshake's bytes are the same as with a
    fresh one (same key type and size, same serial and names)."""
    folder = Path(folder)
    if days not in _THIS_PROCESS:
        made = make_certificate(folder, days)
        _THIS_PROCESS[days] = (made.cert.read_bytes(), made.key.read_bytes())
        return made
    cert, key = folder / "tls-cert.pem", folder / "tls-key.pem"
    cert.write_bytes(_THIS_PROCESS[days][0])
    key.touch(mode=0o600)
    key.write_bytes(_THIS_PROCESS[days][1])
    return Certificate(cert, key)


def server_context(cert: Certificate, versions: tuple[str, ...]) -> ssl.SSLContext:
    """An SSL context for a server offering exactly ``versions`` (the embedded server's listeners)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    ctx.minimum_version = TLS_VERSIONS[min(versions)]
    ctx.maximum_version = TLS_VERSIONS[max(versions)]
    return ctx
