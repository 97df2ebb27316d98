"""Debian's Dovecot as the reference IMAP + POP3 server, run from a private directory.

Why: the embedded server is ours; Dovecot is what real users talk to. A study must be able to repeat every
measurement against it without touching the system service: this module writes a complete config (no include of
/etc/dovecot), a passwd-file and Maildirs into a private directory, runs ``dovecot -F -c CONF`` as a child process
on two free loopback ports and stops it with TERM, leaving no process behind. The master is started through
:func:`mailstudy.processes.popen_tied` with a guardian for its process group: when mailstudy is killed (even
``kill -9``) the master gets SIGKILL, and the guardian kills the rest of the group and removes the private
directory (Dovecot 2.3.19's log and stats processes, and a session process with a client still connected, were
measured to outlive a SIGKILLed master by 10 s and more).

Facts this module relies on (Dovecot 2.3.19, Debian 12):

- Rootless: when not root, ``default_internal_user``/``default_internal_group``/``default_login_user`` are the
  invoking user and the anvil/imap-login/pop3-login services have ``chroot =``. As root the usual ``dovecot`` /
  ``dovenull`` users run the helpers and the mail is owned by ``nobody`` (userdb uid 0 is refused).
- Maildir files written before start get their UIDs in file-name order on the first scan; the names used here
  sort in list order, so UID n is ``mailboxes[user][n-1]``. Files are stored byte for byte as given;
  ``S=`` (file size) and ``W=`` (size with CRLF line ends) in the name spare Dovecot a stat/read per message.
  IMAP BODY[] and POP3 RETR return CRLF messages exactly; bare LFs are sent as CRLF (RFC822.SIZE and POP3 LIST
  then count the CRLF size).
- POP3 capabilities (TOP, UIDL, PIPELINING, ...) are compiled into Dovecot and cannot be switched off; IMAP
  capabilities can be hidden with ``imap_capability`` (the commands still work if sent). An explicit
  ``imap_capability`` also replaces the short pre-login list in the greeting, so the greeting grows.
- The auth penalty (every later login from 127.0.0.1 delayed after one failure) is off so that sessions do not
  depend on earlier ones; the fixed ``auth_failure_delay`` (2 s per failed login) is Dovecot's default.
- TLS (``tls=True``): ``ssl = yes`` with a certificate made at start in the private directory, implicit TLS
  on the ``imaps``/``pop3s`` listeners, STARTTLS and STLS offered on the clear-text ones.
- COMPRESS (``compress=True``): the ``imap_zlib`` plugin in ``protocol imap``; it adds ``COMPRESS=DEFLATE`` last
  to the capability list after login and answers ``tag OK Begin compression.``.
- Private files live under /dev/shm when it has room (1000 Maildir files: ~5 ms there, ~0.3 s on a disk /tmp).
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
import weakref
from pathlib import Path

from mailstudy.processes import (
    Guardian,
    TiedPopen,
    group_members,
    owned_tempdir,
    popen_tied,
    sweep_dead,
    uninterrupted,
)
from mailstudy.servers.base import Account, FolderServer, PortInUseError, ServerError, wait_for_greeting
from mailstudy.servers.tls import DOVECOT_NAMES

DOVECOT = "/usr/sbin/dovecot"
LIBEXEC = "/usr/lib/dovecot"
#: The plugin that gives Dovecot 2.3 COMPRESS=DEFLATE (package dovecot-core).
IMAP_ZLIB = "/usr/lib/dovecot/modules/lib30_imap_zlib_plugin.so"
#: What imap_zlib adds to the capability list after login (last).
COMPRESS_CAPABILITY = "COMPRESS=DEFLATE"
TMPFS_ROOTS = ("/dev/shm",)
ZOMBIE_GRACE = 0.15  # seconds the master gets to reap its exited children at stop
INSTALL_HINT = "install it with: apt-get install dovecot-imapd dovecot-pop3d"
#: Dovecot appends how long a command took to its tagged OK: "(0.001 + 0.000 secs)", with a third figure when
#: the command waited ("(0.001 + 0.000 + 0.001 secs)"): the only part of its replies whose length changes
#: between identical runs. Counts that must repeat exactly subtract the bytes this matches.
TIMING_TEXT = re.compile(rb" \(\d+\.\d{3} \+ \d+\.\d{3}(?: \+ \d+\.\d{3})? secs\)")
#: What Dovecot sends an IDLE client every ``imap_idle_notify_interval`` (2 min) of wall-clock time.
IDLE_NOTICE = re.compile(rb"\* OK Still here\r\n")

# CAPABILITY after LOGIN as Dovecot 2.3.19 announces it with this module's config (imap_capability unset).
# Used only to build ``imap_capability`` when IMAP capabilities are disabled.
IMAP_CAPABILITIES_2_3 = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
    "I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE "
    "SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
).split()
# Hiding a capability also hides those that imply it (RFC 7162: QRESYNC implies CONDSTORE; RFC 5256/5267).
IMAP_IMPLIED_BY = {"CONDSTORE": ("QRESYNC",), "SORT": ("SORT=DISPLAY", "ESORT"), "ESEARCH": ("ESORT",)}
# IMAP capabilities imaplib cannot work without.
IMAP_REQUIRED = frozenset({"IMAP4REV1"})
# What Dovecot's POP3 CAPA lists (before and after login); none of it can be switched off.
POP3_BUILT_IN = frozenset({"TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "USER", "SASL"})
# Never announced without TLS (ssl = no, plaintext allowed): disabling them changes nothing.
ALREADY_ABSENT = frozenset({"STLS", "STARTTLS", "LOGINDISABLED"})

# Maildir file names: 10-digit seconds then a 9-digit sequence, so name order == list order == UID order.
_BASE_TIME = 1_600_000_000
_SAFE_USER = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
_SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, minus the NUL


def dovecot_available(binary: str = DOVECOT) -> str | None:
    """None when Dovecot can be run here, else the reason (for ``pytest.skip``)."""
    if not os.access(binary, os.X_OK):
        return f"Dovecot is not installed ({binary} missing); {INSTALL_HINT}"
    for prog in ("imap", "imap-login", "pop3", "pop3-login"):
        if not os.access(os.path.join(LIBEXEC, prog), os.X_OK):
            pkg = "dovecot-pop3d" if prog.startswith("pop3") else "dovecot-imapd"
            return f"Dovecot's {prog} is missing ({pkg} not installed); {INSTALL_HINT}"
    try:
        _version(binary)
    except ServerError as exc:
        return str(exc)
    if os.geteuid() != 0:
        try:
            pwd.getpwuid(os.geteuid())
            grp.getgrgid(os.getegid())
        except KeyError:
            return f"uid {os.geteuid()} has no user/group name; rootless Dovecot needs one"
    else:
        for user in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(user)
            except KeyError:
                return f"system user {user!r} is missing (it comes with dovecot-core); {INSTALL_HINT}"
    return None


@functools.lru_cache(maxsize=None)
def _version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except OSError as exc:
        raise ServerError(f"cannot run {binary} ({exc.strerror}); {INSTALL_HINT}") from exc
    if out.returncode != 0 or not out.stdout.strip():
        raise ServerError(f"{binary} --version failed: {(out.stderr or out.stdout).strip()[:200]}")
    return out.stdout.strip()


def _scratch_root(need: int) -> str | None:
    """A RAM-backed directory for the private dir when it has room (creating 1000 files on a disk-backed /tmp
    takes ~0.3 s, on tmpfs ~5 ms, and Dovecot's index writes then cost no disk latency); else None, which means
    the system's temporary directory."""
    for root in TMPFS_ROOTS:
        try:
            st = os.statvfs(root)
        except OSError:
            continue
        if os.access(root, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize > 2 * need + (64 << 20):
            return root
    return None


def maildir_name(index: int, raw: bytes) -> str:
    """Name of message ``index`` (0-based) in cur/: sorts in index order; S= file size, W= size with CRLF."""
    virtual = len(raw) + raw.count(b"\n") - raw.count(b"\r\n")
    return f"{_BASE_TIME + index}.M{index:09d}P0.mailstudy,S={len(raw)},W={virtual}:2,"


def _terminate(proc: TiedPopen | None, workdir: Path | None, remove: bool) -> None:
    """Stop Dovecot's master and anything left in its process group; optionally remove the private dir.

    TERM makes the master stop every service and wait for it; then it only keeps its log process and sleeps a
    fixed second before exiting. Once every other process in the group has exited (zombies count as exited),
    the group is killed: no session or mail process exists any more, and each stop is one second shorter.
    """
    if proc is not None:
        pgid = proc.pid  # start_new_session: the master leads its own process group
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            done_at = None  # when only the log process and exited-but-unreaped children were left
            while proc.poll() is None and time.monotonic() < deadline:
                others = [cmd for pid, cmd in group_members(pgid, zombies=True).items() if pid != proc.pid]
                if all(cmd.endswith("/log") for cmd in others):
                    break
                if all(cmd == "" or cmd.endswith("/log") for cmd in others):  # "" = a zombie
                    # Give the master a moment to reap them; else init does once the master is gone.
                    done_at = done_at or time.monotonic()
                    if time.monotonic() - done_at > ZOMBIE_GRACE:
                        break
                time.sleep(0.005)
        for _ in range(200):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                break
            if proc.poll() is None:
                try:
                    proc.wait(timeout=0.01)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is not None and not group_members(pgid):
                break
        if proc.poll() is None:
            proc.wait(timeout=5)
    if remove and workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
    if proc is not None:
        proc.release()


def _login_service(protocol: str, port: int | None, tls_port: int | None = None) -> str:
    """The config of one protocol's login service: plain text on ``port`` at 127.0.0.1, implicit TLS on
    ``tls_port`` (None: that listener off)."""
    tls = f"\n    address = 127.0.0.1\n    port = {tls_port}" if tls_port else "\n    port = 0"
    return f"""service {protocol}-login {{
  chroot =
  inet_listener {protocol} {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener {protocol}s {{{tls}
  }}
}}
"""


class DovecotServer(FolderServer):
    """Dovecot on 127.0.0.1 from a private directory (``workdir``, else a temporary one removed at stop).

    Every start rewrites the config, the passwd-file and the Maildirs from ``accounts``/``mailboxes``: a study
    always starts from the same state. ``extra_config`` is appended to the generated config verbatim.
    """

    LOG_NAME = "dovecot.log"

    name = "dovecot"

    def __init__(self, accounts: list[Account] | None = None,
                 mailboxes: dict[str, list[bytes]] | None = None, *,
                 disabled: frozenset[str] | set[str] = frozenset(),
                 imap_port: int | None = None, pop3_port: int | None = None,
                 start_timeout: float = 15.0, workdir: str | os.PathLike | None = None,
                 binary: str = DOVECOT, extra_config: str = "", tls: bool = False,
                 tls_versions: tuple[str, ...] | list[str] = ("1.2", "1.3"), compress: bool = False) -> None:
        super().__init__(accounts, mailboxes, disabled=disabled, imap_port=imap_port, pop3_port=pop3_port,
                         start_timeout=start_timeout, tls=tls, tls_versions=tls_versions, compress=compress)
        if self.compress and not os.path.exists(IMAP_ZLIB):
            raise ServerError(f"Dovecot's COMPRESS plugin {IMAP_ZLIB} is missing; apt-get install dovecot-core")
        for a in self.accounts:
            if not _SAFE_USER.match(a.user):
                raise ValueError(f"user name {a.user!r} is not allowed for Dovecot (use letters, digits, ._@+-)")
            if any(c in a.password for c in ":\r\n\0"):
                raise ValueError(f"password of {a.user!r} must not contain ':', CR, LF or NUL")
        self.imap_capability = self._imap_capability(self.disabled, self.compress)
        if self.tls and "1.3" not in self.tls_versions:
            raise ValueError("Dovecot 2.3 cannot stop offering TLS 1.3 (it has ssl_min_protocol, no maximum); "
                             "use the embedded server to offer TLS 1.2 alone")
        self.binary = binary
        self.extra_config = extra_config
        self._user_workdir = Path(workdir).resolve() if workdir is not None else None
        self.workdir: Path | None = None
        self._proc: TiedPopen | None = None
        self._finalizer: weakref.finalize | None = None

    # -- configuration -------------------------------------------------------------------------------------
    @staticmethod
    def _imap_capability(disabled: frozenset[str], compress: bool = False) -> str | None:
        """The ``imap_capability`` value hiding ``disabled``, or None to keep Dovecot's default.

        Raises ValueError for what Dovecot cannot switch off (its POP3 CAPA is compiled in) or does not know.
        """
        pop3 = sorted(disabled & POP3_BUILT_IN)
        if pop3:
            raise ValueError(f"Dovecot cannot switch off POP3 capability {', '.join(pop3)}: its POP3 CAPA is "
                             f"built in; use the embedded server for that study")
        if disabled & IMAP_REQUIRED:
            raise ValueError("IMAP4rev1 cannot be disabled: imaplib refuses servers without it")
        imap = disabled - ALREADY_ABSENT
        unknown = sorted(imap - {c.upper() for c in IMAP_CAPABILITIES_2_3})
        if unknown:
            raise ValueError(f"Dovecot cannot switch off capability {', '.join(unknown)}; IMAP capabilities it "
                             f"can hide: {' '.join(IMAP_CAPABILITIES_2_3[1:])}")
        if not imap:
            return None
        hidden = set(imap)
        for cap in imap:
            hidden.update(IMAP_IMPLIED_BY.get(cap, ()))
        extra = [COMPRESS_CAPABILITY] if compress else []  # where imap_zlib puts it: last
        return " ".join([c for c in IMAP_CAPABILITIES_2_3 if c.upper() not in hidden] + extra)

    def _identities(self) -> tuple[str, str, str, int, int]:
        """(internal user, internal group, login user, mail uid, mail gid) for this process's privileges."""
        if os.geteuid() != 0:
            try:
                user = pwd.getpwuid(os.geteuid()).pw_name
                group = grp.getgrgid(os.getegid()).gr_name
            except KeyError as exc:
                raise ServerError(f"uid {os.geteuid()} has no user/group name; rootless Dovecot needs one") from exc
            return user, group, user, os.geteuid(), os.getegid()
        try:
            internal = pwd.getpwnam("dovecot")
            pwd.getpwnam("dovenull")
        except KeyError as exc:
            raise ServerError(f"system user {exc.args[0]} is missing; {INSTALL_HINT}") from exc
        try:
            owner = pwd.getpwnam("nobody")
            uid, gid = owner.pw_uid, owner.pw_gid
        except KeyError:
            uid, gid = internal.pw_uid, internal.pw_gid
        return "dovecot", grp.getgrgid(internal.pw_gid).gr_name, "dovenull", uid, gid

    def _config(self, wd: Path, ids: tuple[str, str, str, int, int]) -> str:
        internal_user, internal_group, login_user, uid, gid = ids
        cap = f"imap_capability = {self.imap_capability}\n" if self.imap_capability is not None else ""
        return f"""# generated by mailstudy.servers.dovecot; not the system config
base_dir = {wd / 'run'}
state_dir = {wd / 'state'}
instance_name = mailstudy
protocols = imap pop3
listen = 127.0.0.1
{self._ssl_config()}
{self._compress_config()}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_cache_size = 0
log_path = {wd / 'dovecot.log'}
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
mail_location = maildir:~/Maildir
mail_max_userip_connections = 1000
pop3_uidl_format = %08Xu%08Xv
{cap}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {wd / 'passwd'}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={wd / 'mail'}/%u
}}
service anvil {{
  chroot =
  # no auth penalty: one failed login must not slow every later login from 127.0.0.1 for minutes
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{_login_service("imap", self.imap_port, self.imaps_port)}{_login_service("pop3", self.pop3_port, self.pop3s_port)}\
{self.extra_config}
"""

    def _compress_config(self) -> str:
        """With ``compress``: the ``imap_zlib`` plugin for IMAP (COMPRESS=DEFLATE, RFC 4978; its compression level
        is Dovecot's default, ``imap_zlib_compress_level`` unset); else nothing."""
        if not self.compress:
            return ""
        return "protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}"

    def _ssl_config(self) -> str:
        """``ssl = no``, or with TLS the certificate made at start and the lowest version offered (Dovecot 2.3
        has ``ssl_min_protocol`` only: it always offers the highest its OpenSSL has, TLS 1.3 here)."""
        if not self.tls:
            return "ssl = no"
        cert = self.certificate
        return (f"ssl = yes\nssl_cert = <{cert.cert}\nssl_key = <{cert.key}\n"
                f"ssl_min_protocol = {DOVECOT_NAMES[min(self.tls_versions)]}")

    def _write_tree(self, wd: Path, ids: tuple[str, str, str, int, int]) -> None:
        """Config, passwd-file and one Maildir per account, owned so that Dovecot's processes can use them."""
        internal_user, _, _, uid, gid = ids
        as_root = os.geteuid() == 0
        for sub in ("run", "state", "mail"):  # base_dir must not survive a switch between root and non-root
            shutil.rmtree(wd / sub, ignore_errors=True)
            if (wd / sub).exists():
                raise ServerError(f"cannot clear {wd / sub} (left by a run as another user?); remove it or "
                                  f"choose another workdir")
        for name in ("dovecot.log", "master.stderr"):
            (wd / name).unlink(missing_ok=True)
        (wd / "run").mkdir(mode=0o755)
        (wd / "state").mkdir(mode=0o750)
        if as_root:
            os.chmod(wd, 0o755)  # mail processes run as the mail uid and must reach their home
        passwd = wd / "passwd"
        passwd.write_text("".join(f"{a.user}:{{PLAIN}}{a.password}::::::\n" for a in self.accounts))
        os.chmod(passwd, 0o640)
        if as_root:
            os.chown(passwd, 0, pwd.getpwnam(internal_user).pw_gid)  # read by the auth process
        if self.tls:
            self._make_certificate(wd)
            if as_root:  # read by the config process (root) through ssl_cert = <FILE; nobody else needs it
                os.chmod(self.certificate.key, 0o600)
        (wd / "dovecot.conf").write_text(self._config(wd, ids))
        mail = wd / "mail"
        mail.mkdir(mode=0o755)
        for a in self.accounts:
            home = mail / a.user
            md = home / "Maildir"
            for sub in ("cur", "new", "tmp"):
                (md / sub).mkdir(parents=True, mode=0o700)
            cur = os.open(md / "cur", os.O_RDONLY | os.O_DIRECTORY)
            try:
                msgs = self.mailboxes[a.user]
                for i, raw in self.progress(enumerate(msgs), len(msgs), f"delivering to {a.user}"):
                    fd = os.open(maildir_name(i, raw), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=cur)
                    try:
                        view = memoryview(raw)
                        while view:
                            view = view[os.write(fd, view):]
                        os.utime(fd, (_BASE_TIME + i, _BASE_TIME + i))  # INTERNALDATE, same every run
                        if as_root:
                            os.fchown(fd, uid, gid)
                    finally:
                        os.close(fd)
            finally:
                os.close(cur)
            if as_root:
                for path in (home, md, md / "cur", md / "new", md / "tmp"):
                    os.chown(path, uid, gid)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def _start(self) -> None:
        reason = dovecot_available(self.binary)
        if reason:
            raise ServerError(reason)
        if self.imap_capability is not None and not self.version.startswith("2.3."):
            raise ServerError(f"disabling IMAP capabilities needs Dovecot 2.3's capability list; this is "
                              f"{self.version}")
        self._proc = None
        if self._user_workdir is not None:
            wd, remove = self._user_workdir, False
            self._check_workdir(wd)
            try:
                wd.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ServerError(f"cannot create workdir {wd}: {exc.strerror}") from exc
        else:
            wd, remove = None, True
        guardian = Guardian()  # first, so that a kill -9 from here on leaves nothing
        try:
            if wd is None:
                sweep_dead()
                need = sum(len(m) for msgs in self.mailboxes.values() for m in msgs)
                with uninterrupted():
                    wd = owned_tempdir("dovecot", dir=_scratch_root(need))
                    guardian.watch(wd)
            self.workdir = wd
            self._write_tree(wd, self._identities())
            with open(wd / "master.stderr", "wb") as stderr, uninterrupted():  # no stop before we hold it
                self._proc = popen_tied([self.binary, "-F", "-c", str(wd / "dovecot.conf")], group=True,
                                        guardian=guardian, stdin=subprocess.DEVNULL, stdout=stderr,
                                        stderr=stderr, cwd=wd)
        except BaseException as exc:
            _terminate(self._proc, wd, remove)
            guardian.release()
            self._proc = None
            if not isinstance(exc, OSError):
                raise
            raise ServerError(f"cannot prepare or run Dovecot in {wd}: {exc}") from exc
        # Stops Dovecot even if the caller forgets stop() (garbage collection or interpreter exit).
        self._finalizer = weakref.finalize(self, _terminate, self._proc, wd, remove)
        try:
            self._wait_ready()
        except BaseException:
            self._finalizer()
            self._finalizer = None
            self._proc = None
            raise

    @staticmethod
    def _check_workdir(wd: Path) -> None:
        """Refuse a workdir Dovecot cannot use: too long for its unix sockets, or (as root) unreachable for the
        unprivileged mail processes."""
        if len(os.fsencode(wd)) + len("/run/token-login/imap-urlauth") > _SUN_PATH_MAX:
            raise ServerError(f"workdir {wd} is too long for Dovecot's unix sockets (at most "
                              f"{_SUN_PATH_MAX - 29} bytes); choose a shorter path")
        if os.geteuid() == 0:
            for parent in list(wd.parents)[::-1]:
                try:
                    mode = parent.stat().st_mode
                except OSError:
                    break  # does not exist yet: created by us with mode 0755
                if not mode & 0o001:
                    raise ServerError(f"workdir {wd} is unreachable for Dovecot's unprivileged mail processes: "
                                      f"{parent} is not searchable by others; choose a path under /tmp or "
                                      f"/dev/shm")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        for port, prefix in ((self.imap_port, b"* OK"), (self.pop3_port, b"+OK")):
            while True:
                if self._proc.poll() is not None:
                    raise self._failure(f"Dovecot exited with status {self._proc.returncode}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._failure(f"Dovecot did not greet on port {port} within {self.start_timeout:.1f} s")
                try:
                    wait_for_greeting(port, prefix, timeout=min(0.25, left), host=self.host)
                    break
                except ServerError:
                    continue

    def _failure(self, what: str) -> ServerError:
        """``what`` plus the reason from Dovecot's log (and its stderr, where config errors go)."""
        lines = self.log_text().strip().splitlines()
        lines += [ln for ln in self._read("master.stderr").strip().splitlines()
                  if ln and not any(ln in seen for seen in lines)]
        text = "\n".join(lines)
        m = re.search(r"(?:bind|listen)\(([^,]+), (\d+)\) failed: Address already in use", text)
        if m:
            return PortInUseError(f"{what}: port {m.group(2)} on {m.group(1)} is already in use; choose other "
                                  f"ports or stop what listens there")
        return ServerError(f"{what}; last lines of its log:\n" + ("\n".join(lines[-15:]) or "(log empty)"))

    def _stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # TERM to the master, reap the group, remove a temporary workdir
        self._finalizer = None
        self._proc = None

    # -- introspection -------------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """``dovecot --version``, e.g. ``2.3.19.1 (9b53102964)``."""
        return _version(self.binary)


    def log_errors(self) -> list[str]:
        """Log lines that report an error, a fatal condition or a panic."""
        return [ln for ln in self.log_text().splitlines()
                if re.search(r"\b(Error|Fatal|Panic):", ln)]

    def describe(self) -> dict:
        d = super().describe()
        d["disabled"] = sorted(self.disabled)
        return d
