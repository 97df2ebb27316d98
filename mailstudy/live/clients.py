"""Python's own imaplib and poplib, with their socket traced: what Python users really use, measured.

Why: the study must measure the stdlib clients as they are. Only the socket under them is swapped for a
:class:`~mailstudy.live.trace.TracedSocket`; nothing else is patched. Pipelining is not something the stdlib
clients offer, so the two helpers below send several commands before reading the replies, using the clients'
own send and read routines (their documented-private ``_command``/``_command_complete`` and
``_putcmd``/``_getlongresp``) rather than a hand-written client.
"""

from __future__ import annotations

import imaplib
import poplib

from mailstudy.live.trace import Trace, traced_connection


class TracedIMAP4(imaplib.IMAP4):
    """``imaplib.IMAP4`` whose socket records every chunk into ``trace``."""

    def __init__(self, host: str, port: int, trace: Trace, timeout: float | None = 30.0) -> None:
        self.trace = trace
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):  # noqa: D401 - imaplib hook
        return traced_connection(self.host, self.port, timeout, self.trace)

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

        ``window=0`` sends them all before reading any reply. Returns ``(status, data)`` per command; the
        untagged responses they produce accumulate in ``untagged_responses`` as imaplib always does.
        """
        window = window or len(commands)
        results: list[tuple[str, list]] = []
        in_flight: list[str] = []
        for args in commands:
            in_flight.append(self._command(name, *args))
            if len(in_flight) >= window:
                results.append(self._command_complete(name, in_flight.pop(0)))
        while in_flight:
            results.append(self._command_complete(name, in_flight.pop(0)))
        return results


class TracedPOP3(poplib.POP3):
    """``poplib.POP3`` whose socket records every chunk into ``trace``."""

    def __init__(self, host: str, port: int, trace: Trace, timeout: float = 30.0) -> None:
        self.trace = trace
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):  # noqa: D401 - poplib hook
        return traced_connection(self.host, self.port, timeout, self.trace)

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
