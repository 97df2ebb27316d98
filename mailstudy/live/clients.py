"""Python's own imaplib and poplib, with their socket traced: what Python users really use, measured.

Why: the study must measure the stdlib clients as they are. Only the socket under them is swapped for a
:class:`~mailstudy.live.trace.TracedSocket`; nothing else is patched. Pipelining is not something the stdlib
clients offer, so the two helpers below send several commands before reading the replies, using the clients'
own send and read routines (their documented-private ``_command``/``_command_complete`` and
``_putcmd``/``_getlongresp``) rather than a hand-written client.

TLS (:class:`ClientTLS`): ``implicit`` runs the handshake right after connect (IMAPS, POP3S); ``starttls`` reads
the greeting, asks the capabilities, sends STARTTLS (IMAP) or STLS (POP3), runs the handshake and asks the
capabilities again, as RFC 3501 6.2.1 and RFC 2595 4 require (imaplib asks CAPABILITY itself; the POP3 access
strategy's own CAPA is the one after TLS). The TLS layer is :class:`~mailstudy.live.trace.TLSSocket` (so the
records and the protocol's bytes are both traced), not the libraries' own ``starttls``/``stls``, which wrap
the real socket and would hide the records. The certificate is verified against ``cafile`` with the host name
checked; a certificate that does not verify, a TLS version the server does not offer, or a server that does not
offer STARTTLS is a :class:`TLSError`, and the session never goes on in clear text.

COMPRESS=DEFLATE (RFC 4978, :meth:`TracedIMAP4.compress`): sent after login through imaplib's own door for
extensions (``xatom``); from its tagged OK on the socket is a :class:`~mailstudy.live.trace.DeflateSocket` over the
traced one (or over TLS), so both the deflated stream and the protocol's bytes inside are traced. Unlike TLS, a
refusal is not an error: the session goes on uncompressed and says why.
"""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import re
import ssl
from dataclasses import dataclass

from mailstudy.errors import MailstudyError
from mailstudy.live.trace import DeflateSocket, TLSSocket, Trace, traced_connection
from mailstudy.servers.tls import TLS_VERSIONS

#: How a session uses TLS: ``none`` (clear text, the control), ``implicit`` (TLS from the first byte, on the
#: IMAPS/POP3S port), ``starttls`` (clear text until STARTTLS/STLS, on the usual port).
TLS_MODES = ("none", "implicit", "starttls")
_GREETING_CAPS = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)


class TLSError(MailstudyError):
    """TLS could not be set up as asked; the session stops rather than go on in clear text."""


@dataclass(frozen=True)
class ClientTLS:
    """The client's TLS: ``mode`` (:data:`TLS_MODES`), exactly one ``version`` ("1.2" or "1.3"), and the CA
    file the server's certificate must verify against (None: the system's CAs)."""

    mode: str = "none"
    version: str = "1.3"
    cafile: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in TLS_MODES:
            raise ValueError(f"TLS mode must be one of {', '.join(TLS_MODES)}, not {self.mode!r}")
        if self.version not in TLS_VERSIONS:
            raise ValueError(f"TLS version must be one of {', '.join(TLS_VERSIONS)}, not {self.version!r}")

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.minimum_version = ctx.maximum_version = TLS_VERSIONS[self.version]
        return ctx


def start_tls(sock, tls: ClientTLS, host: str, port: int, trace: Trace) -> TLSSocket:
    """Run the TLS handshake over the traced socket ``sock``; a :class:`TLSError` (and the socket closed) when
    it fails."""
    wrapped = TLSSocket(sock, tls.context(), host, trace)
    try:
        wrapped.handshake()
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise TLSError(f"TLS to {host}:{port}: the server's certificate does not verify against "
                       f"{tls.cafile or 'the system CAs'} ({exc.verify_message})") from None
    except ssl.SSLError as exc:
        sock.close()
        reason = exc.reason or str(exc)
        if reason == "WRONG_VERSION_NUMBER":  # what came back is not a TLS record at all
            raise TLSError(f"TLS to {host}:{port}: the server did not answer in TLS ({reason}); is it a "
                           f"clear-text port?") from None
        if "VERSION" in reason.upper() or "PROTOCOL" in reason.upper():
            raise TLSError(f"TLS to {host}:{port}: the server does not offer TLS {tls.version} ({reason})") from None
        if isinstance(exc, ssl.SSLEOFError) or "EOF" in reason.upper():
            # what both servers do when no version is common (measured: Dovecot 2.3 and Python's asyncio close
            # after the ClientHello without an alert), so the version is the likely cause, but not a certain one
            raise TLSError(f"TLS to {host}:{port}: the server closed the connection during the handshake without "
                           f"saying why; does it offer TLS {tls.version} (the only version this client "
                           f"accepts)?") from None
        raise TLSError(f"TLS handshake with {host}:{port} failed: {reason}") from None
    except OSError as exc:
        sock.close()
        raise TLSError(f"TLS handshake with {host}:{port} failed: {exc.strerror or exc}") from None
    return wrapped


def _open(host: str, port: int, timeout, trace: Trace, tls: ClientTLS | None):
    sock = traced_connection(host, port, timeout, trace)
    if tls is not None and tls.mode == "implicit":
        return start_tls(sock, tls, host, port, trace)
    return sock


class _Traced:
    """What both traced clients add to the standard library's: the trace, the TLS, a socket opened through them
    (the libraries' own ``_create_socket`` hook) and, with STARTTLS, the upgrade right after the greeting."""

    def __init__(self, host: str, port: int, trace: Trace, timeout: float | None = 30.0,
                 tls: ClientTLS | None = None) -> None:
        self.trace = trace
        self.tls = tls
        super().__init__(host, port, timeout=timeout)
        if tls is not None and tls.mode == "starttls":
            self._upgrade()

    def _create_socket(self, timeout):  # noqa: D401 - imaplib's and poplib's hook
        return _open(self.host, self.port, timeout, self.trace, self.tls)

    def _upgrade(self) -> None:
        raise NotImplementedError


class TracedIMAP4(_Traced, imaplib.IMAP4):
    """``imaplib.IMAP4`` whose socket records every chunk into ``trace``.

    Two things a client other than imaplib does differently, at its profile's asking: ``greeting_caps`` takes the
    capabilities from the greeting's ``[CAPABILITY ...]`` code instead of asking CAPABILITY at connect (NeoMutt,
    mbsync; a greeting without the code is asked as imaplib asks), and :meth:`use_tags` tags the next commands as
    that client does (``a0000``, ``1``): a tag's bytes count in every command.
    """

    def __init__(self, host: str, port: int, trace: Trace, timeout: float | None = 30.0,
                 tls: ClientTLS | None = None, greeting_caps: bool = False) -> None:
        self.greeting_caps = greeting_caps
        self.tag_digits = 0
        super().__init__(host, port, trace, timeout=timeout, tls=tls)

    def _get_capabilities(self) -> None:  # noqa: D401 - imaplib's, after the greeting (and after STARTTLS)
        found = _GREETING_CAPS.search(self.welcome or b"") if self.greeting_caps else None
        if found is None or self._tls_established:
            super()._get_capabilities()
            return
        self.capabilities = tuple(found.group(1).decode("ascii", "replace").upper().split())

    def use_tags(self, prefix: str, digits: int, first: int) -> None:
        """Tag every later command ``prefix`` + its number from ``first``, zero-padded to ``digits``."""
        self.tagpre = prefix.encode()
        self.tagre = re.compile(rb"(?P<tag>" + re.escape(self.tagpre) + rb"\d+) (?P<type>[A-Z]+) (?P<data>.*)",
                                re.ASCII)
        self.tagnum, self.tag_digits = first, digits

    def _new_tag(self) -> bytes:  # imaplib's, with the number zero-padded as the client pads it
        tag = self.tagpre + str(self.tagnum).zfill(self.tag_digits).encode()
        self.tagnum += 1
        self.tagged_commands[tag] = None
        return tag

    def _upgrade(self) -> None:
        self._starttls()

    def _starttls(self) -> None:
        """What ``imaplib.IMAP4.starttls`` does, with the traced TLS layer: STARTTLS, handshake, CAPABILITY."""
        if "STARTTLS" not in self.capabilities:
            self.shutdown()
            raise TLSError(f"IMAP server {self.host}:{self.port} does not offer STARTTLS; not going on in clear text")
        typ, data = self._simple_command("STARTTLS")
        if typ != "OK":
            self.shutdown()
            raise TLSError(f"IMAP server {self.host}:{self.port} refused STARTTLS: {data!r:.200}")
        self.sock = start_tls(self.sock, self.tls, self.host, self.port, self.trace)
        self.file = self.sock.makefile("rb")
        self._tls_established = True
        self._get_capabilities()

    def compress(self) -> str | None:
        """``COMPRESS DEFLATE``; None once compression is on, else the server's refusal (nothing changed)."""
        try:  # imaplib knows no COMPRESS; xatom is its way for extensions
            typ, data = self.xatom("COMPRESS", "DEFLATE")
        except self.error as exc:  # a BAD: imaplib raises it
            typ, data = "BAD", [str(exc).encode()]
        if typ != "OK":
            return f"the server refused COMPRESS DEFLATE: {b' '.join(d for d in data if d).decode(errors='replace')}"
        self.sock = DeflateSocket(self.sock, self.trace)
        self.file = self.sock.makefile("rb")
        return None

    def shutdown(self) -> None:
        """After LOGOUT, read what the server still sends until it closes, then close as imaplib does.

        imaplib returns from LOGOUT as soon as it sees ``* BYE``, so whether the tagged OK after it was read
        (and traced) depended on how the bytes happened to be split: byte counts varied from run to run. Reading
        to the server's close makes the session's bytes what really crossed the wire.
        """
        if self.state == "LOGOUT":
            try:
                self.sock.settimeout(5.0)
                while self.file.read1(65536):
                    pass
            except (OSError, ValueError):
                pass
        super().shutdown()

    def pipelined(self, name: str, commands: list[tuple], window: int = 0) -> list[tuple[str, list]]:
        """Send ``commands`` (argument tuples for ``name``, e.g. ``UID``) with up to ``window`` tags in flight.

        ``window=0`` sends them all before reading any reply. The commands sent together go in one write, as a
        pipelining client writes them (mbsync, NeoMutt: one buffer), so the server cannot answer between them.
        Returns ``(status, data)`` per command; the untagged responses they produce accumulate in
        ``untagged_responses`` as imaplib always does.
        """
        window = window or len(commands)
        results: list[tuple[str, list]] = []
        in_flight: list[str] = []
        pending = list(commands)
        while pending or in_flight:
            with self.one_write():
                while pending and len(in_flight) < window:
                    in_flight.append(self._command(name, *pending.pop(0)))
            results.append(self._command_complete(name, in_flight.pop(0)))
        return results

    @contextlib.contextmanager
    def one_write(self):
        """Everything imaplib sends inside the block goes to the socket in one ``sendall`` at its end."""
        self._held = bytearray()
        try:
            yield
        finally:
            held, self._held = bytes(self._held), None
            if held:
                super().send(held)

    def send(self, data: bytes) -> None:  # imaplib's, held while inside one_write()
        if getattr(self, "_held", None) is not None:
            self._held += data
        else:
            super().send(data)


class TracedPOP3(_Traced, poplib.POP3):
    """``poplib.POP3`` whose socket records every chunk into ``trace``."""

    def _upgrade(self) -> None:
        self._stls()

    def _stls(self) -> None:
        """What ``poplib.POP3.stls`` does, with the traced TLS layer: CAPA (is STLS offered?), STLS, handshake.
        The caller asks CAPA again (RFC 2595 4: capabilities learned before TLS are discarded)."""
        try:
            caps = self.capa()
        except poplib.error_proto:
            caps = {}
        if "STLS" not in caps:
            self.close()
            raise TLSError(f"POP3 server {self.host}:{self.port} does not offer STLS; not going on in clear text")
        self._shortcmd("STLS")
        self.sock = start_tls(self.sock, self.tls, self.host, self.port, self.trace)
        self.file = self.sock.makefile("rb")
        self._tls_established = True

    def pipelined(self, lines: list[str], multiline: bool) -> list[tuple[bytes, list[bytes]]]:
        """Send every command line at once, then read the replies in order (RFC 2449 PIPELINING).

        A multi-line reply is read with poplib's own ``_getlongresp`` (which un-stuffs dots); a single-line one
        with ``_getresp``. poplib raises ``error_proto`` on ``-ERR``; the remaining replies are still read so
        the session stays in step.
        """
        # One sendall for the whole flight, as a pipelining client does (RFC 2449 section 6.6).
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode(self.encoding))
        out: list[tuple[bytes, list[bytes]]] = []
        first_error: poplib.error_proto | None = None
        for _ in lines:
            try:
                if multiline:
                    resp, body, _octets = self._getlongresp()
                    out.append((resp, body))
                else:
                    out.append((self._getresp(), []))
            except poplib.error_proto as exc:
                first_error = first_error or exc
                out.append((exc.args[0] if exc.args else b"-ERR", []))
        if first_error is not None:
            raise first_error
        return out
