"""Cyrus IMAP 3.6 as a third server: IMAP, POP3 and JMAP (its ``httpd``) over one store, from a private folder.

Why: JMAP (RFC 8620/8621) is measured against IMAP and POP3 on the same mailbox only if one server speaks all
three; Debian's Cyrus does (``cyr_buildinfo``: ``"jmap": true``). Like :mod:`mailstudy.servers.dovecot` this
never touches the system service: a private ``imapd.conf`` and ``cyrus.conf`` in a temporary folder, ``master``
as a tied child in its own process group (a guardian kills the group and removes the folder should mailstudy
die), TERM at stop.

Facts this module relies on (Cyrus 3.6.1, Debian 12; see issue 20 and :mod:`mailstudy.servers.cyrus_install`):

- ``imapd`` and ``pop3d`` come from an extraction of ``cyrus-imapd``/``cyrus-pop3d`` (installing them removes
  Dovecot); ``cyrus.conf`` names every program by its absolute path.
- ``cyrus_user`` is the invoking user (as root: ``nobody``, owner of the private folder), so ``master`` needs no
  root and never tries to become ``cyrus``.
- Passwords are checked: a sasldb (``sasl_auxprop_plugin: sasldb``) in the private folder, written with
  ``db_load`` (``db-util``, a dependency of ``cyrus-common``; Debian's ``saslpasswd2`` is in ``sasl2-bin``, which
  is not installed) as the pairs SASL's sasldb plugin reads: ``USER NUL REALM NUL userPassword`` -> password, the
  realm being the ``servername``.
- ``autocreate_quota: 0`` creates INBOX at the first login; the corpus is delivered by IMAP APPEND (LITERAL+,
  batched: see :meth:`CyrusServer._append`), in order
  (UID n is message n), byte for byte (``munge8bit: no`` keeps 8-bit header bytes; Cyrus refuses bare LF, so a
  message with bare LFs is delivered with CRLF, as Dovecot serves it). Each gets a fixed INTERNALDATE.
- ``servername: mailstudy`` and ``allowapop: no`` keep the host name and the APOP challenge out of the greetings.
  What still varies between runs: the ``SESSIONID=<...>`` in the LOGIN reply (time, pid, a random number).
- Measured on loopback (30 messages, one command per message): about half of Cyrus's per-message responses
  (POP3 RETR, IMAP UID FETCH, JMAP blob GETs) end 40 ms late, Dovecot's not: the pattern of Nagle's algorithm
  holding the response's last small write until the client's delayed ACK. A property of the server as it ships,
  so it is measured, not tuned away; batched fetches (one response) do not show it.
- Measured: the first authenticated JMAP request a fresh ``httpd`` process serves (the session resource) takes
  ~210 ms of server time on this machine kind (one response chunk, so not a TCP stall), a reused process's
  ~0.1 ms; ``prefork=1`` does not remove it (the work is lazy). A fresh server's first JMAP session pays it,
  as a user's first sync would.
- Cyrus logs only to syslog, and without ``/dev/log`` a failed start is silent (``master`` exits 78 when a
  program is missing; a port it cannot bind is only logged). So ``master`` runs in a private mount namespace
  (``unshare``) whose ``/dev`` is a copy of the real one's few device nodes plus a ``log`` that is our own
  datagram socket, drained by a reader thread into ``syslog.log``; a failed start quotes it. Not root,
  the namespace is made as a mapped root, then a nested user namespace maps the invoking uid back, so master
  runs as that user. Where namespaces are not allowed, Cyrus runs without and a failure says that its log was
  not available.
"""

from __future__ import annotations

import functools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import weakref
from pathlib import Path

from mailstudy.processes import Guardian, TiedPopen, group_members, owned_tempdir, popen_tied, sweep_dead, \
    uninterrupted
from mailstudy.servers.base import (Account, FolderServer, PortInUseError, ServerError, check_port_free, free_ports,
                                   wait_for_greeting)
from mailstudy.servers.cyrus_install import APT_HINT, common_version, find_programs

BIN = Path("/usr/lib/cyrus/bin")
DB_LOAD = "/usr/bin/db_load"
#: the name Cyrus gives itself in greetings, and the SASL realm of every account
SERVERNAME = "mailstudy"
TMPFS_ROOTS = ("/dev/shm",)
#: conf/ subfolders Cyrus expects to exist (issue 20)
CONF_DIRS = ("db", "proc", "socket", "lock", "log", "user", "quota", "sieve")
#: APPENDs written at once before their replies are read (bounded: a batch is held in memory)
APPEND_BATCH = 64
#: INTERNALDATE of initial message i: this plus i seconds (same every run, as Dovecot's Maildir mtimes)
_BASE_TIME = 1_600_000_000
_SAFE_USER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: the long form of the LOGIN reply varies by its SESSIONID; counts that must repeat exactly subtract this
SESSIONID_TEXT = re.compile(rb" SESSIONID=<[^>]*>")

# Run inside the new mount namespace: a private /dev with the usual device nodes and our syslog socket as
# /dev/log, then exec the rest of the arguments. Shell: it runs for any user; each mount is one exec.
_NAMESPACE_SH = r"""
set -e
d=$1; sock=$2; shift 2
mkdir "$d"
for n in null zero full random urandom tty ptmx; do
  [ -e "/dev/$n" ] || continue
  : > "$d/$n"; mount --bind "/dev/$n" "$d/$n"
done
for n in shm pts mqueue hugepages; do
  [ -d "/dev/$n" ] || continue
  mkdir "$d/$n"; mount --rbind "/dev/$n" "$d/$n"
done
for n in fd stdin stdout stderr core; do
  if [ -L "/dev/$n" ]; then cp -P "/dev/$n" "$d/$n"; fi
done
: > "$d/log"; mount --bind "$sock" "$d/log"
mount --rbind "$d" /dev
exec "$@"
"""

class SyslogReader(threading.Thread):
    """Drains the instance's /dev/log into a file, one line per datagram.

    A thread, not a process: a child Python may not be runnable by the user Cyrus runs as (a venv's interpreter
    under /root), and it only wakes for the few lines Cyrus logs per session. It must drain: a full datagram
    queue would block every Cyrus process that logs."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        super().__init__(name="cyrus-syslog", daemon=True)
        self.sock, self.path = sock, path
        self.sock.settimeout(1.0)  # a stop is seen within a second even if shutdown() wakes nothing
        self._stop_flag = threading.Event()

    def run(self) -> None:
        with open(self.path, "ab", buffering=0) as out:
            while True:  # until stop()'s empty datagram, after every line queued before it
                try:
                    data = self.sock.recv(65536)
                except TimeoutError:
                    if self._stop_flag.is_set():
                        break
                    continue
                except OSError:
                    break
                if data:
                    out.write(data.rstrip(b"\n") + b"\n")
                elif self._stop_flag.is_set():
                    break

    def stop(self) -> None:
        self._stop_flag.set()
        try:  # shutdown() does not wake a datagram recv(): an empty datagram does, at once, not after the timeout
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as poke:
                poke.sendto(b"", self.sock.getsockname())
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.join(timeout=5)
        self.sock.close()




def _reason_missing() -> str | None:
    for name, pkg in (("master", "cyrus-common"), ("httpd", "cyrus-caldav")):
        if not os.access(BIN / name, os.X_OK):
            return f"Cyrus's {name} is missing ({BIN / name}: package {pkg} not installed); {APT_HINT}"
    if find_programs() is None:
        return (f"Cyrus's imapd and pop3d are not extracted for cyrus-common {common_version()}; run: "
                f"python3 -m mailstudy.servers.cyrus_install (as root, for every user)")
    return None


def cyrus_available() -> str | None:
    """None when Cyrus can be run here, else the reason (one line naming the package, for ``pytest.skip``)."""
    reason = _reason_missing()
    if reason:
        return reason
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            return "running as root, Cyrus runs as user 'nobody', and there is no such user"
    else:
        try:
            pwd.getpwuid(os.geteuid())
        except KeyError:
            return f"uid {os.geteuid()} has no user name; Cyrus's cyrus_user needs one"
    return None


@functools.lru_cache(maxsize=None)
def namespace_command() -> tuple[tuple[str, ...], str | None]:
    """(argv prefix that runs a command in a private mount namespace, None) or ((), why not)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return (), "unshare (util-linux) is missing"
    if os.geteuid() == 0:
        prefix = (unshare, "--mount", "--propagation", "private")
    else:
        prefix = (unshare, "--mount", "--propagation", "private", "--user", "--map-root-user")
    out = subprocess.run([*prefix, "/bin/sh", "-c", "mount --bind /dev/null /dev/null"], capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        return (), f"a private mount namespace is not allowed here ({out.stderr.strip()[:120]})"
    return prefix, None


def _terminate(proc: TiedPopen | None, reader: SyslogReader | None, workdir: Path | None) -> None:
    """TERM to master (it stops its services and exits), then SIGKILL whatever is left in its group; stop the
    syslog reader; remove the private folder."""
    if proc is not None:
        pgid = proc.pid
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(200):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                break
            if proc.poll() is not None and not group_members(pgid):
                break
            time.sleep(0.005)
        if proc.poll() is None:
            proc.wait(timeout=5)
    if reader is not None:
        reader.stop()
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
    if proc is not None:
        proc.release()


class CyrusServer(FolderServer):
    """Cyrus on 127.0.0.1: IMAP, POP3 and HTTP (JMAP at ``/jmap/``, discovery at ``/.well-known/jmap``).

    Every start writes a fresh private folder and delivers ``mailboxes`` anew. ``http_port`` is the JMAP port
    (chosen like the others when not given). ``disabled`` is not supported (Cyrus's capabilities are its own).
    ``programs`` names other ``imapd``/``pop3d`` builds than the extraction found by :func:`find_programs`.
    """

    LOG_NAME = "syslog.log"

    name = "cyrus"

    def __init__(self, accounts: list[Account] | None = None,
                 mailboxes: dict[str, list[bytes]] | None = None, *,
                 disabled: frozenset[str] | set[str] = frozenset(),
                 imap_port: int | None = None, pop3_port: int | None = None, http_port: int | None = None,
                 start_timeout: float = 15.0, programs: dict[str, str | os.PathLike] | None = None,
                 tls: bool = False, tls_versions: tuple[str, ...] | list[str] = ("1.2", "1.3"),
                 idled: bool = False) -> None:
        if tls:  # refused, never served in clear text instead (the TLS sessions' rule)
            raise ServerError("TLS is not set up for Cyrus yet; run TLS sessions on --server dovecot or embedded")
        super().__init__(accounts, mailboxes, disabled=disabled, imap_port=imap_port, pop3_port=pop3_port,
                         start_timeout=start_timeout)
        if self.disabled:
            raise ValueError(f"Cyrus cannot switch off {', '.join(sorted(self.disabled))} here; use the embedded "
                             f"server for that study")
        for a in self.accounts:
            if not _SAFE_USER.match(a.user):
                raise ValueError(f"user name {a.user!r} is not allowed for Cyrus (use lower-case letters, digits, "
                                 f"._-)")
            if any(c in a.password for c in "\r\n\0"):
                raise ValueError(f"password of {a.user!r} must not contain CR, LF or NUL")
        self._want_http_port = http_port
        #: run Cyrus's ``idled`` so IMAP IDLE hears of new mail at once; off by default as in Debian's
        #: /etc/cyrus.conf, where imapd then polls every ``imapidlepoll`` (60 s) while a client IDLEs
        self.idled = idled
        #: ``{"imapd": PATH, "pop3d": PATH}`` to run instead of the extraction :func:`find_programs` finds
        self.programs = {k: Path(v) for k, v in programs.items()} if programs else None
        self.http_port: int = 0
        self.workdir: Path | None = None
        self._proc: TiedPopen | None = None
        self._reader: SyslogReader | None = None
        self._finalizer: weakref.finalize | None = None
        self._logged_note = ""

    # -- configuration -------------------------------------------------------------------------------------
    @staticmethod
    def _cyrus_user() -> tuple[str, int, int]:
        if os.geteuid() == 0:
            p = pwd.getpwnam("nobody")
        else:
            p = pwd.getpwuid(os.geteuid())
        return p.pw_name, p.pw_uid, p.pw_gid

    def _imapd_conf(self, wd: Path, user: str) -> str:
        return f"""# generated by mailstudy.servers.cyrus; not the system config
configdirectory: {wd / 'conf'}
partition-default: {wd / 'spool'}
cyrus_user: {user}
servername: {SERVERNAME}
conversations: 1
httpmodules: jmap
allowplaintext: yes
allowapop: no
autocreate_quota: 0
munge8bit: no
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {wd / 'sasldb2'}
sasl_mech_list: PLAIN LOGIN
"""

    def _cyrus_conf(self, wd: Path, programs: dict[str, Path]) -> str:
        conf = wd / "imapd.conf"
        return f"""# generated by mailstudy.servers.cyrus
START {{
}}
SERVICES {{
  imap cmd="{programs['imapd']} -C {conf}" listen="127.0.0.1:{self.imap_port}" prefork=0
  pop3 cmd="{programs['pop3d']} -C {conf}" listen="127.0.0.1:{self.pop3_port}" prefork=0
  http cmd="{BIN / 'httpd'} -C {conf}" listen="127.0.0.1:{self.http_port}" prefork=0
}}
EVENTS {{
}}
DAEMON {{
{self._daemons(programs)}}}
"""

    def _daemons(self, programs: dict[str, Path]) -> str:
        if not self.idled:
            return ""
        idled = programs["imapd"].parent / "idled"
        if not os.access(idled, os.X_OK):
            raise ServerError(f"Cyrus's idled is not at {idled} (it comes with imapd from cyrus-imapd)")
        return f'  idled cmd="{idled} -C {self.workdir / "imapd.conf"}"\n'


    def _write_sasldb(self, wd: Path) -> None:
        """The accounts' passwords as SASL's sasldb plugin reads them (see the module docstring)."""
        def text(value: str) -> str:  # db_load -T: a backslash is written twice, \XX is a byte in hex
            return value.replace("\\", "\\\\")

        pairs = "".join(f"{text(a.user)}\\00{SERVERNAME}\\00userPassword\n{text(a.password)}\n"
                        for a in self.accounts)
        (wd / "sasldb.txt").write_text(pairs, encoding="utf-8")
        try:
            out = subprocess.run([DB_LOAD, "-T", "-t", "hash", "-f", str(wd / "sasldb.txt"), str(wd / "sasldb2")],
                                 capture_output=True, text=True, timeout=30)
        except OSError as exc:
            raise ServerError(f"cannot run {DB_LOAD} ({exc.strerror}) to write Cyrus's password database; "
                              f"install db-util") from exc
        finally:
            (wd / "sasldb.txt").unlink(missing_ok=True)
        if out.returncode != 0:
            raise ServerError(f"db_load could not write Cyrus's password database: {out.stderr.strip()[:200]}")

    # -- lifecycle -----------------------------------------------------------------------------------------
    def _start(self) -> None:
        reason = cyrus_available()
        if reason and not (self.programs and "not extracted" in reason):
            raise ServerError(reason)
        programs = self.programs or find_programs()
        taken = {self.imap_port, self.pop3_port}
        if self._want_http_port:
            check_port_free(self._want_http_port)
            self.http_port = self._want_http_port
        else:
            self.http_port = next(p for p in free_ports(4) if p not in taken and p != self._want_imap_port
                                  and p != self._want_pop3_port)
        user, uid, gid = self._cyrus_user()
        prefix, why_no_ns = namespace_command()
        self._logged_note = "" if not why_no_ns else f" (Cyrus logs only to syslog, not collected here: {why_no_ns})"
        guardian = Guardian()
        wd: Path | None = None
        self._proc = self._reader = None
        try:
            sweep_dead()
            with uninterrupted():
                wd = owned_tempdir("cyrus", dir=next((r for r in TMPFS_ROOTS if os.access(r, os.W_OK)), None))
                guardian.watch(wd)
            self.workdir = wd
            for sub in CONF_DIRS:
                (wd / "conf" / sub).mkdir(parents=True)
            (wd / "spool").mkdir()
            (wd / "imapd.conf").write_text(self._imapd_conf(wd, user))
            self._write_sasldb(wd)
            (wd / "cyrus.conf").write_text(self._cyrus_conf(wd, programs))
            argv = [str(BIN / "master"), "-C", str(wd / "imapd.conf"), "-M", str(wd / "cyrus.conf"),
                    "-p", str(wd / "master.pid"), "-D"]
            if prefix:
                sock_path = wd / "syslog.sock"
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    sock.bind(str(sock_path))
                    os.chmod(sock_path, 0o666)  # Cyrus's processes run as cyrus_user
                except BaseException:
                    sock.close()
                    raise
                self._reader = SyslogReader(sock, wd / "syslog.log")
                self._reader.start()
                inner = [] if os.geteuid() == 0 else [shutil.which("unshare"), f"--map-user={uid}",
                                                      f"--map-group={gid}"]
                argv = [*prefix, "/bin/sh", "-c", _NAMESPACE_SH, "sh", str(wd / "dev"), str(sock_path),
                        *inner, *argv]
            if os.geteuid() == 0:
                os.chmod(wd, 0o755)
                for root, dirs, files in os.walk(wd):
                    for name in dirs + files:
                        os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
                os.chown(wd, uid, gid)
            with open(wd / "master.stderr", "wb") as err, uninterrupted():
                self._proc = popen_tied(argv, group=True, guardian=guardian, stdin=subprocess.DEVNULL,
                                        stdout=err, stderr=err, cwd=wd)
        except BaseException as exc:
            _terminate(self._proc, self._reader, wd)
            guardian.release()
            self._proc = self._reader = None
            if not isinstance(exc, OSError):
                raise
            raise ServerError(f"cannot prepare or run Cyrus in {wd}: {exc}") from exc
        self._finalizer = weakref.finalize(self, _terminate, self._proc, self._reader, wd)
        try:
            self._wait_ready()
            self._deliver_initial()
        except BaseException:
            self._finalizer()
            self._finalizer = None
            self._proc = self._reader = None
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        for port, prefix in ((self.imap_port, b"* OK"), (self.pop3_port, b"+OK"), (self.http_port, None)):
            while True:
                if self._proc.poll() is not None:
                    raise self._failure(f"Cyrus's master exited with status {self._proc.returncode}")
                bind = self._bind_failure()
                if bind:
                    raise bind
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._failure(f"Cyrus did not answer on port {port} within {self.start_timeout:.1f} s")
                try:
                    if prefix is None:
                        socket.create_connection((self.host, port), timeout=min(0.25, left)).close()
                    else:
                        wait_for_greeting(port, prefix, timeout=min(0.25, left), host=self.host)
                    break
                except (ServerError, OSError):
                    time.sleep(0.02)

    def _bind_failure(self) -> PortInUseError | None:
        m = re.search(r"unable to bind to (\w+)\S* socket: Address already in use", self.log_text())
        if m:
            port = {"imap": self.imap_port, "pop3": self.pop3_port, "http": self.http_port}.get(m.group(1))
            # a port the user asked for is not retried with others (MailServer.start retries on PortInUseError)
            kind = ServerError if m.group(1) == "http" and self._want_http_port else PortInUseError
            return kind(f"Cyrus could not listen: port {port} on {self.host} ({m.group(1)}) is already in use; "
                        f"choose other ports or stop what listens there")
        return None

    def _deliver_initial(self) -> None:
        """APPEND every initial message in order (UID n is message n), each with a fixed INTERNALDATE."""
        for a in self.accounts:
            msgs = self.mailboxes[a.user]
            self._append(a.user, list(self.progress(msgs, len(msgs), f"delivering to {a.user}")), "INBOX",
                         dated=True)

    def _failure(self, what: str) -> ServerError:
        lines = self.log_text().strip().splitlines()
        lines += [ln for ln in self._read("master.stderr").strip().splitlines() if ln]
        if not lines:
            return ServerError(f"{what}; nothing was logged{self._logged_note}")
        return ServerError(f"{what}; last lines of its log:\n" + "\n".join(lines[-15:]))

    def _stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self._proc = self._reader = None

    def deliver_many(self, user: str, raws: list[bytes], folder: str = "INBOX") -> None:
        if not self.running:
            raise ServerError("deliver() needs a running server; call start() first")
        self._append(user, raws, folder, dated=False)

    def _append(self, user: str, raws: list[bytes], folder: str, dated: bool) -> None:
        """APPEND ``raws`` in order over one connection, with LITERAL+ and in batches without waiting.

        Not imaplib: its APPEND waits for the server's continuation and then writes the literal and its CRLF
        apart, and against Cyrus each message then waited ~48 ms for a delayed ACK (1000 messages: 57 s). Cyrus
        announces LITERAL+ (RFC 7888), so a batch of APPENDs is one write and one wait; TCP_NODELAY besides.
        """
        import imaplib

        def literal(data: bytes) -> bytes:
            return b"{%d+}\r\n%s" % (len(data), data)

        with socket.create_connection((self.host, self.imap_port), timeout=60) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = sock.makefile("rb")

            def expect(tags: list[bytes]) -> None:
                pending = set(tags)
                while pending:
                    line = reader.readline(1 << 20)
                    if not line:
                        raise ServerError(f"Cyrus closed the connection while {user!r} was delivered to")
                    tag, _, rest = line.partition(b" ")
                    if tag in pending:
                        pending.discard(tag)
                        if not rest.startswith(b"OK"):
                            raise ServerError(f"Cyrus refused {tag.decode()} for {user!r}: "
                                              f"{rest.decode(errors='replace').strip()[:200]}")

            reader.readline(1 << 20)  # greeting
            sock.sendall(b"L LOGIN " + literal(user.encode()) + b" " + literal(self.password_of(user).encode())
                         + b"\r\n")
            expect([b"L"])  # the first login creates INBOX (autocreate_quota)
            box = folder.encode()
            for start in range(0, len(raws), APPEND_BATCH):
                out, tags = [], []
                for i in range(start, min(start + APPEND_BATCH, len(raws))):
                    tag = b"A%d" % i
                    date = (imaplib.Time2Internaldate(_BASE_TIME + i).encode() + b" ") if dated else b""
                    out.append(tag + b" APPEND " + literal(box) + b" " + date + literal(crlf(raws[i])) + b"\r\n")
                    tags.append(tag)
                sock.sendall(b"".join(out))
                expect(tags)
            sock.sendall(b"Z LOGOUT\r\n")

    # -- introspection -------------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return f"Cyrus IMAP {common_version() or 'unknown'}"



def crlf(raw: bytes) -> bytes:
    """``raw`` with every bare LF made CRLF (Cyrus refuses bare LF in APPEND; Dovecot serves it as CRLF)."""
    if b"\n" not in raw.replace(b"\r\n", b""):
        return raw
    return re.sub(rb"(?<!\r)\n", b"\r\n", raw)

