"""One interface for every mail server mailstudy runs: start on free loopback ports, deliver, stop.

Why: a study must not care whether it talks to the embedded pymap-based server or to Debian's Dovecot. Each
server runs in its own process (an in-process server shares the GIL with the client and distorts timings) and
listens on 127.0.0.1 only.
"""

from __future__ import annotations

import abc
import imaplib
import socket
import time
from dataclasses import dataclass
from types import TracebackType

from mailstudy.errors import MailstudyError
from mailstudy.servers.tls import CertificateError, check_versions, run_certificate

HOST = "127.0.0.1"


class ServerError(MailstudyError, RuntimeError):
    """A server could not be started, or stopped working; the message says why and what to do."""


class PortInUseError(ServerError):
    """A server could not listen because something else holds one of its ports."""


#: the exit status of a server child process whose listen failed because a port was taken
EXIT_PORT_IN_USE = 3

#: how often :meth:`MailServer.start` picks new ports when ports it chose itself were taken before the server
#: bound them (another process, or a client's outgoing connection, can take a free port in between)
PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class Account:
    user: str
    password: str


DEFAULT_ACCOUNT = Account("alice", "wonderland-42")


def free_port(host: str = HOST) -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` distinct TCP ports that were free on ``host`` a moment ago.

    All ``n`` sockets stay bound until every port is chosen: asking for one port at a time can return the same
    port twice, since the kernel may hand out a port again as soon as its socket is closed.
    """
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def check_port_free(port: int, host: str = HOST) -> None:
    """Raise :class:`ServerError` naming the port when something already listens on it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except PermissionError as exc:
            raise ServerError(f"no permission to listen on port {port} on {host}: ports below 1024 need root "
                              f"or the CAP_NET_BIND_SERVICE capability; choose a port from 1024 up") from exc
        except OSError as exc:
            raise PortInUseError(f"port {port} on {host} is already in use ({exc.strerror}); "
                                 f"choose another port or stop what listens there") from exc


def wait_for_greeting(port: int, prefix: bytes, timeout: float, host: str = HOST) -> bytes:
    """Connect until the server greets with a line starting with ``prefix``; raise ServerError on timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic())) as s:
                line = s.makefile("rb").readline()
                if line.startswith(prefix):
                    return line
                last = ServerError(f"unexpected greeting on port {port}: {line[:80]!r}")
        except OSError as exc:
            last = exc
        time.sleep(0.02)
    raise ServerError(f"no greeting on {host}:{port} within {timeout:.1f} s ({last})")


class MailServer(abc.ABC):
    """A running (or startable) IMAP + POP3 server on 127.0.0.1.

    Subclasses implement :meth:`_start`, :meth:`_stop` and :attr:`version`. ``mailboxes`` maps each user to the
    raw RFC 5322 messages (bytes, CRLF line ends) in their INBOX at start; ``accounts`` lists the logins.
    ``disabled`` names POP3/IMAP capabilities to switch off for this run (e.g. ``{"UIDL", "PIPELINING"}``),
    where the server supports switching them off.

    ``tls=True`` serves TLS too (:mod:`mailstudy.servers.tls`): the process's certificate, written at start in
    the server's private folder (its path, the CA file a client verifies with, is :attr:`tls_ca`), implicit TLS on
    ``imaps_port`` and ``pop3s_port``, and STARTTLS (IMAP) and STLS (POP3) offered on the clear-text ports;
    ``tls_versions`` are the TLS versions it offers. Without TLS nothing of this exists and the clear-text
    ports offer no STARTTLS: a clear-text session's bytes are what they always were.

    ``compress=True`` offers COMPRESS=DEFLATE (RFC 4978) on IMAP after login (Dovecot: its ``imap_zlib``
    plugin; embedded: :mod:`mailstudy.servers.imap_compress`). Off by default, so that a session's bytes (the
    capability list after login) are what they were before it existed; a study asks for it. Debian's Cyrus
    offers it whatever is asked (built with zlib; measured).
    """

    name: str = "abstract"

    def __init__(self, accounts: list[Account] | None = None,
                 mailboxes: dict[str, list[bytes]] | None = None, *,
                 disabled: frozenset[str] | set[str] = frozenset(),
                 imap_port: int | None = None, pop3_port: int | None = None,
                 start_timeout: float = 15.0, tls: bool = False,
                 tls_versions: tuple[str, ...] | list[str] = ("1.2", "1.3"), compress: bool = False) -> None:
        self.compress = bool(compress)
        self.accounts = list(accounts or [DEFAULT_ACCOUNT])
        self.mailboxes = {a.user: [] for a in self.accounts}
        for user, msgs in (mailboxes or {}).items():
            if user not in self.mailboxes:
                raise ValueError(f"mailbox for unknown user {user!r}")
            self.mailboxes[user] = list(msgs)
        self.disabled = frozenset(c.upper() for c in disabled)
        self.host = HOST
        self._want_imap_port = imap_port
        self._want_pop3_port = pop3_port
        self.imap_port: int = 0
        self.pop3_port: int = 0
        self.tls = bool(tls)
        self.tls_versions = check_versions(tls_versions)
        self.imaps_port: int | None = None  # implicit TLS (with tls=True)
        self.pop3s_port: int | None = None
        self.certificate = None  # a mailstudy.servers.tls.Certificate once started with tls=True
        self.start_timeout = start_timeout
        self.running = False
        #: ``progress(items, total, desc)`` may wrap delivering the initial messages in a progress bar
        self.progress = lambda items, total, desc: items

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> "MailServer":
        if self.running:
            return self
        for p in (self._want_imap_port, self._want_pop3_port):
            if p:
                check_port_free(p)
        wanted = {p for p in (self._want_imap_port, self._want_pop3_port) if p}
        for attempt in range(1, PORT_ATTEMPTS + 1):
            # two more distinct ports than needed leave enough that are not the user's own (check_port_free has
            # just released those)
            need = 4 if self.tls else 2
            imap_port, pop3_port, *tls_ports = [p for p in free_ports(need + 2) if p not in wanted][:need]
            self.imap_port = self._want_imap_port or imap_port
            self.pop3_port = self._want_pop3_port or pop3_port
            self.imaps_port, self.pop3s_port = tls_ports or (None, None)
            try:
                self._start()
                break
            except PortInUseError as exc:  # ports we picked were taken before the server bound them: pick again
                if wanted:  # a port the user asked for is never swapped for another
                    raise
                if attempt == PORT_ATTEMPTS:
                    raise PortInUseError(f"{exc} (after {PORT_ATTEMPTS} sets of free ports were each taken "
                                         f"before the server could listen)") from exc
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self.running = False
            self._stop()

    def __enter__(self) -> "MailServer":
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @abc.abstractmethod
    def _start(self) -> None: ...

    @abc.abstractmethod
    def _stop(self) -> None: ...

    @property
    @abc.abstractmethod
    def version(self) -> str: ...

    # -- mail ----------------------------------------------------------------------------------------------
    @property
    def account(self) -> Account:
        """The first account: the one a study uses unless told otherwise."""
        return self.accounts[0]

    def password_of(self, user: str) -> str:
        for a in self.accounts:
            if a.user == user:
                return a.password
        raise KeyError(user)

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Put one new message into ``user``'s folder while the server runs (over IMAP APPEND)."""
        self.deliver_many(user, [raw], folder)

    def deliver_many(self, user: str, raws: list[bytes], folder: str = "INBOX") -> None:
        """Put new messages into ``user``'s folder in this order, one APPEND each over one connection (a fleet
        delivers the mail that arrives between two polls this way: a login per message cost more than the
        polls)."""
        if not self.running:
            raise ServerError("deliver() needs a running server; call start() first")
        with imaplib.IMAP4(self.host, self.imap_port, timeout=10) as c:
            c.login(user, self.password_of(user))
            for raw in raws:
                typ, data = c.append(folder, None, None, raw)
                if typ != "OK":
                    raise ServerError(f"APPEND to {folder} failed: {data!r}")
            c.logout()

    def _make_certificate(self, folder) -> None:
        """With TLS: this process's certificate in the server's private ``folder`` (:attr:`certificate`)."""
        try:
            self.certificate = run_certificate(folder)
        except CertificateError as exc:
            raise ServerError(str(exc)) from None

    @property
    def tls_ca(self) -> str | None:
        """The CA file a client verifies this server's certificate with (None without TLS or before start)."""
        return str(self.certificate.cert) if self.certificate is not None else None

    def ports_for(self, protocol: str, tls: str = "none") -> int:
        """The port a session of ``protocol`` (imap, pop3) connects to with ``tls`` (none, starttls, implicit)."""
        if tls != "none" and not self.tls:
            raise ServerError(f"this {self.name} server was started without TLS; start it with tls=True for "
                              f"a {tls} TLS session")
        if tls == "implicit":
            return self.imaps_port if protocol == "imap" else self.pop3s_port
        return self.imap_port if protocol == "imap" else self.pop3_port

    def describe(self) -> dict:
        out = {"server": self.name, "server_version": self.version, "host": self.host,
               "imap_port": self.imap_port, "pop3_port": self.pop3_port}
        if self.tls:
            out.update(imaps_port=self.imaps_port, pop3s_port=self.pop3s_port,
                       server_tls_versions=" ".join(self.tls_versions))
        return out


class FolderServer(MailServer):
    """A server that runs as a child process from a private folder (``workdir``) and logs to a file there:
    Dovecot and Cyrus. Its process id while it runs and what it logged are read the same way for both."""

    #: The log file's name inside ``workdir``.
    LOG_NAME = "server.log"

    _proc = None  # the master process (a subprocess.Popen) while started
    workdir = None  # the private folder (a Path) while started

    @property
    def pid(self) -> int | None:
        """The master process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _read(self, name: str) -> str:
        if self.workdir is None:
            return ""
        try:
            return (self.workdir / name).read_text(errors="replace")
        except OSError:
            return ""

    def log_text(self) -> str:
        """What the server logged so far (empty when there is nothing, or it could not be collected)."""
        return self._read(self.LOG_NAME)
