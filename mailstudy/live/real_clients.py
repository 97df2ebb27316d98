"""Run the REAL mail clients from Debian's packages against a mailstudy server, each with a generated config.

Why: a client profile (:mod:`mailstudy.live.client_profiles`) claims to send what a real client sends; the only
way to know is to run the real client beside it (docs/design.md, "Accuracy",: a profile that claims to be a client is run
beside that client). This module only *runs* a real client once against a host and port; capturing what it sent
and scoring it against its profile is :mod:`mailstudy.study.calibrate`'s job.

Each client gets a private folder: its config, its state (UIDL lists, maildirs, NeoMutt's header cache) and a
``HOME`` of its own, so the user's ``~/.config`` is never read or written, and a second run in the same folder is
the client's "sync with nothing new". Configs keep each client's defaults except what a run on loopback without a
person needs: plain text (the servers run without TLS here; each config says so), where to deliver, and the
login. How each client is driven (observed on this machine kind; docs/calibration.md has what each sends):
``mpop -C RC ACCOUNT``, ``getmail --rcfile RC``, ``offlineimap -c RC -o``, ``mbsync -c RC CHANNEL``,
``fetchmail -f RC``, and NeoMutt in a detached tmux pane driven with ``send-keys``.

A client whose program is missing is not run: :func:`run_real_client` returns status ``missing`` with the
reason. A client that does not finish within ``timeout`` seconds is killed with its whole process group (tmux's
server for NeoMutt) and returns status ``timeout``; every child is started with
:func:`mailstudy.processes.popen_tied`, so nothing outlives mailstudy either.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mailstudy.errors import MailstudyError
from mailstudy.processes import Guardian, group_members, popen_tied, running, uninterrupted

#: getmail6 needed more than 60 s for 30 messages on a machine shared by eight busy processes (it takes about 3 s
#: alone); a client that hangs still ends, a slow one is not mistaken for a hung one
DEFAULT_TIMEOUT_S = 180.0
#: NeoMutt's index is up when its status bar counts the messages (``Msgs:30``) or says the folder is empty
_INDEX_READY = re.compile(r"Msgs:\s*\d+|No visible messages|Mailbox is empty")
_POLL_S = 0.1


class RealClientError(MailstudyError, ValueError):
    """A real client was asked for by a name we do not know how to run."""


@dataclass(frozen=True)
class Target:
    """Where a real client connects: a server's loopback port and the login."""

    host: str
    port: int
    user: str
    password: str


@dataclass(frozen=True)
class RealRun:
    """One run of a real client: ``status`` is ``ok``, ``failed`` (it exited non-zero), ``timeout`` (killed) or
    ``missing`` (its program is not installed); ``reason`` says why in one line."""

    client: str
    status: str
    reason: str = ""
    returncode: int | None = None
    seconds: float = 0.0
    output: str = ""  # the tail of what it printed (or, for NeoMutt, of its screen)


@dataclass(frozen=True)
class RealClient:
    """How to run one real client: its program(s), protocol and a function writing its config into a folder and
    returning the argument list (the program's full path first)."""

    name: str
    package: str  # the Debian package that installs it
    protocol: str  # "imap" | "pop3"
    programs: tuple[str, ...]  # every program it needs on PATH (NeoMutt also needs tmux)
    configure: Callable[["RealClient", Path, Target, dict], list[str]]
    terminal: bool = False  # needs a terminal: run in a detached tmux pane
    note: str = ""  # what we set that is not the client's default, and why
    ok_status: tuple[int, ...] = (0,)  # exit statuses that mean a sync that worked


def _secret_file(path: Path, text: str) -> Path:
    """Write a config that holds the password, readable by its owner only (mpop and fetchmail refuse others)."""
    path.write_text(text)
    path.chmod(0o600)
    return path


# ---- configs, one per client -----------------------------------------------------------------------------------
def _mpop(client: RealClient, d: Path, t: Target, exe: dict) -> list[str]:
    (d / "mbox").touch()
    rc = _secret_file(d / "mpoprc", f"""# mailstudy calibrate: mpop with its defaults, keep on the server
defaults
tls off
# with TLS off mpop's default `auth on` refuses every clear-text method: allow USER/PASS
auth user
account calibrate
host {t.host}
port {t.port}
user {t.user}
password {t.password}
keep on
uidls_file {d}/mpop_uidls
delivery mbox {d}/mbox
""")
    return [exe["mpop"], "-q", "-C", str(rc), "calibrate"]


def _getmail(retriever: str, mailboxes: str = ""):
    def configure(client: RealClient, d: Path, t: Target, exe: dict) -> list[str]:
        mbox = d / "mbox"
        mbox.touch()
        (d / "getmail").mkdir(exist_ok=True)
        # getmail refuses to deliver as root into a Maildir or mbox (getmailcore/destinations.py); an external
        # MDA with allow_root_commands is the one delivery it allows as root, and it works the same for others
        rc = _secret_file(d / "getmailrc", f"""# mailstudy calibrate: getmail6 with its defaults (read_all, no delete)
[retriever]
type = {retriever}
server = {t.host}
port = {t.port}
username = {t.user}
password = {t.password}
{mailboxes}
[destination]
type = MDA_external
path = /bin/sh
arguments = ("-c", "cat >> {mbox}")
allow_root_commands = true

[options]
verbose = 0
""")
        return [exe["getmail"], "--getmaildir", str(d / "getmail"), "--rcfile", str(rc)]
    return configure


def _offlineimap(client: RealClient, d: Path, t: Target, exe: dict) -> list[str]:
    rc = _secret_file(d / "offlineimaprc", f"""# mailstudy calibrate: offlineimap3 with its defaults; no TLS on loopback
[general]
accounts = calibrate
metadata = {d}/offlineimap-meta

[Account calibrate]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {d}/mail

[Repository remote]
type = IMAP
remotehost = {t.host}
remoteport = {t.port}
remoteuser = {t.user}
remotepass = {t.password}
ssl = no
starttls = no
""")
    return [exe["offlineimap"], "-c", str(rc), "-o", "-u", "quiet"]


def _mbsync(client: RealClient, d: Path, t: Target, exe: dict) -> list[str]:
    (d / "mail").mkdir(exist_ok=True)
    rc = _secret_file(d / "mbsyncrc", f"""# mailstudy calibrate: mbsync (isync) with its defaults; no TLS on loopback
IMAPAccount calibrate
Host {t.host}
Port {t.port}
User {t.user}
Pass {t.password}
SSLType None
# isync sends no password in clear text unless told which methods it may use
AuthMechs PLAIN LOGIN

IMAPStore remote
Account calibrate

MaildirStore local
Path {d}/mail/
Inbox {d}/mail/INBOX
SubFolders Verbatim

Channel calibrate
Far :remote:
Near :local:
Patterns INBOX
# a first run must create the local mailbox
Create Near
SyncState *
""")
    return [exe["mbsync"], "-q", "-c", str(rc), "calibrate"]


def _fetchmail(client: RealClient, d: Path, t: Target, exe: dict) -> list[str]:
    mbox = d / "mbox"
    mbox.touch()
    rc = _secret_file(d / "fetchmailrc", f"""# mailstudy calibrate: fetchmail with its defaults (delete after retrieval)
set no syslog
poll {t.host} with service {t.port} protocol POP3
  user "{t.user}" there with password "{t.password}"
  mda "/bin/sh -c 'cat >> {mbox}'"
  # fetchmail tries STLS whenever CAPA offers it (Dovecot offers it without a certificate): no TLS on loopback
  sslproto ''
""")
    return [exe["fetchmail"], "--nodetach", "--silent", "-f", str(rc), "--idfile", str(d / "fetchids"),
            "--pidfile", str(d / "fetchmail.pid")]


def _neomutt(client: RealClient, d: Path, t: Target, exe: dict) -> list[str]:
    (d / "hcache").mkdir(exist_ok=True)
    rc = _secret_file(d / "neomuttrc", f"""# mailstudy calibrate: NeoMutt with its defaults; no TLS on loopback
set imap_user="{t.user}"
set imap_pass="{t.password}"
set folder="imap://{t.user}@{t.host}:{t.port}/"
set spoolfile="+INBOX"
set ssl_starttls=no
set ssl_force_tls=no
# a header cache, so that the second run is a sync with a warm cache (the normal case for a NeoMutt user)
set header_cache="{d}/hcache/"
set mbox="{d}/mbox"
set record=""
set postponed="{d}/postponed"
""")
    return [exe["neomutt"], "-n", "-F", str(rc), "-f", f"imap://{t.user}@{t.host}:{t.port}/INBOX"]


#: Every real client calibrate knows, by the name the CLI takes.
REAL_CLIENTS: dict[str, RealClient] = {c.name: c for c in (
    RealClient("neomutt", "neomutt", "imap", ("neomutt", "tmux"), _neomutt, terminal=True,
               note="header cache on; quits from the index without opening a message"),
    RealClient("mbsync", "isync", "imap", ("mbsync",), _mbsync, note="AuthMechs PLAIN LOGIN, Create Near"),
    RealClient("offlineimap", "offlineimap3", "imap", ("offlineimap",), _offlineimap, note="ssl = no"),
    RealClient("getmail-imap", "getmail6", "imap", ("getmail",),
               _getmail("SimpleIMAPRetriever", "mailboxes = (\"INBOX\",)"),
               note="an external MDA that appends to an mbox"),
    RealClient("mpop", "mpop", "pop3", ("mpop",), _mpop, note="tls off, auth user, keep on"),
    RealClient("getmail-pop3", "getmail6", "pop3", ("getmail",), _getmail("SimplePOP3Retriever"),
               note="an external MDA that appends to an mbox"),
    RealClient("fetchmail", "fetchmail", "pop3", ("fetchmail",), _fetchmail,
               note="an MDA that appends to an mbox; sslproto '' (no STLS)",
               ok_status=(0, 1)),  # fetchmail(1) EXIT CODES: 1 = "There was no mail awaiting retrieval",
)}


def get_real_client(name: str) -> RealClient:
    try:
        return REAL_CLIENTS[name]
    except KeyError:
        raise RealClientError(f"unknown real client {name!r}; choose from {', '.join(REAL_CLIENTS)}") from None


def missing_programs(client: RealClient, path: str | None = None) -> list[str]:
    """The programs ``client`` needs that are not on ``path`` (default: this process's PATH)."""
    path = os.environ.get("PATH", os.defpath) if path is None else path
    return [p for p in client.programs if shutil.which(p, path=path) is None]


def _env(home: Path, path: str) -> dict:
    me = pwd.getpwuid(os.geteuid()).pw_name
    return {"PATH": path, "HOME": str(home), "USER": me, "LOGNAME": me, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "TERM": "xterm-256color", "TMPDIR": str(home)}


def run_real_client(name: str, target: Target, folder: str | os.PathLike,
                    timeout: float = DEFAULT_TIMEOUT_S) -> RealRun:
    """Run the real client ``name`` once against ``target``, with its config and state in ``folder`` (made if
    needed; reuse it for the next sync). Never raises for the client's own failure: the status says it."""
    client = get_real_client(name)
    path = os.environ.get("PATH", os.defpath)
    missing = missing_programs(client, path)
    if missing:
        return RealRun(name, "missing", f"{' and '.join(missing)} not found on PATH "
                                        f"(Debian package {client.package}{', tmux' if 'tmux' in missing else ''})")
    exe = {p: shutil.which(p, path=path) for p in client.programs}
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    home = d / "home"
    home.mkdir(exist_ok=True)
    home.chmod(0o755)
    argv = client.configure(client, d, target, exe)
    env = _env(home, path)
    if client.terminal:
        return _run_in_tmux(client, argv, d, env, exe["tmux"], timeout)
    return _run_plain(client, argv, d, env, timeout)


def _tail(text: str, n: int = 400) -> str:
    return " ".join(text.split())[-n:]


def _run_plain(client: RealClient, argv: list[str], d: Path, env: dict, timeout: float) -> RealRun:
    t0 = time.monotonic()
    log = d / "output.txt"
    with open(log, "wb") as out:
        with uninterrupted():
            proc = popen_tied(argv, group=True, cwd=d, env=env, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT)
        try:
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
                return RealRun(client.name, "timeout", f"killed after {timeout:g} s without finishing",
                               None, time.monotonic() - t0, _tail(log.read_text(errors="replace")))
            finally:
                _kill_group(proc.pid)  # anything it left behind in its process group
        finally:
            proc.release()
    said = _tail(log.read_text(errors="replace"))
    if rc not in client.ok_status:
        return RealRun(client.name, "failed", f"exit status {rc}: {said[-200:] or 'it said nothing'}", rc,
                       time.monotonic() - t0, said)
    return RealRun(client.name, "ok", "", rc, time.monotonic() - t0, said)


def _kill_group(pgid: int) -> None:
    """SIGKILL every process left in process group ``pgid`` (its leader was started in a session of its own)."""
    for _ in range(3):
        if not group_members(pgid):
            return
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _run_in_tmux(client: RealClient, argv: list[str], d: Path, env: dict, tmux: str, timeout: float) -> RealRun:
    """NeoMutt needs a terminal: a private tmux server (its own socket in ``d``) runs it in a detached pane; the
    run waits until the index shows, sends ``q`` and waits for NeoMutt (and so the tmux server) to exit."""
    sock = d / "tmux.sock"
    base = [tmux, "-S", str(sock), "-f", "/dev/null"]
    t0 = time.monotonic()
    deadline = t0 + timeout
    screen = ""

    def tm(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=10)

    # The tmux client exits at once; its server daemonizes, out of popen_tied's reach: a guardian kills the
    # server and NeoMutt's pane (its own process group) should mailstudy die before the finally below runs.
    guardian = Guardian()
    with uninterrupted():
        starter = popen_tied([*base, "new-session", "-d", "-x", "160", "-y", "48", "-s", "calibrate",
                              shlex.join(argv)], env=env, cwd=d, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = starter.communicate(timeout=10)[0].decode(errors="replace")
    if starter.returncode != 0:
        guardian.release()
        return RealRun(client.name, "failed", f"tmux could not start: {_tail(out, 200)}", starter.returncode)
    server_pid = _tmux_pid(tm, "pid")
    pane_pid = _tmux_pid(tm, "pane_pid")
    for pid, group in ((server_pid, False), (pane_pid, True)):
        if pid is not None:
            guardian.kill(pid, group)
    status, reason = "timeout", f"killed after {timeout:g} s: the index never showed"
    try:
        while time.monotonic() < deadline:
            shown = tm("capture-pane", "-p", "-t", "calibrate")
            if shown.returncode != 0:  # the pane is gone: NeoMutt exited by itself
                status, reason = "failed", f"NeoMutt exited before its index showed: {_tail(screen, 200)}"
                break
            screen = shown.stdout
            if _INDEX_READY.search(screen):
                time.sleep(0.3)  # let it finish drawing the index before the key arrives
                tm("send-keys", "-t", "calibrate", "q")
                status, reason = "timeout", f"killed after {timeout:g} s: NeoMutt did not quit"
                while time.monotonic() < deadline:
                    if server_pid is None or not running(server_pid):
                        status, reason = "ok", ""
                        break
                    time.sleep(_POLL_S)
                break
            time.sleep(_POLL_S)
    finally:
        if server_pid is not None and running(server_pid):
            tm("kill-server")
            time.sleep(0.1)
            if running(server_pid):
                os.kill(server_pid, signal.SIGKILL)
        for pid in _neomutt_children(d):
            os.kill(pid, signal.SIGKILL)
        guardian.release()
    return RealRun(client.name, status, reason, None, time.monotonic() - t0, _tail(screen))


def _tmux_pid(tm, what: str) -> int | None:
    """The pid of tmux's server (``pid``) or of the program in the pane (``pane_pid``)."""
    got = tm("display-message", "-p", "-t", "calibrate", f"#{{{what}}}")
    return int(got.stdout.strip()) if got.returncode == 0 and got.stdout.strip().isdigit() else None


def _neomutt_children(d: Path) -> list[int]:
    """Processes whose command line names this run's config (a NeoMutt a killed tmux server left behind)."""
    rc = str(d / "neomuttrc")
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if rc.encode() in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return [p for p in found if p != os.getpid() and running(p)]


__all__ = ["DEFAULT_TIMEOUT_S", "REAL_CLIENTS", "RealClient", "RealClientError", "RealRun", "Target",
           "get_real_client", "missing_programs", "run_real_client"]
