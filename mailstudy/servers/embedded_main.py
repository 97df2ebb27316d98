"""Process entry point of the embedded server: pymap IMAP + our POP3 in one asyncio loop over one store.

Why: the embedded server must run in its own process (an in-process server shares the GIL with the client and
distorts timings). ``EmbeddedServer`` starts ``python -m mailstudy.servers.embedded_main SPEC`` where SPEC is a
pickle written by the parent (accounts, initial INBOX messages, ports, disabled capabilities, speed-ups on or
off, COMPRESS=DEFLATE offered or not). This process:

1. builds pymap's dict backend with those users (hashed passwords, no demo data) and appends each user's
   messages to INBOX in list order (UIDs 1..n in that order, as Dovecot numbers them), before any listener
   exists;
2. binds IMAP and POP3 on 127.0.0.1, then prints ``READY <imap_port> <pop3_port>`` on stdout;
3. runs until SIGTERM/SIGINT, or until its stdin reaches EOF (the parent died or closed it): no orphans.

Any start failure is one line on stderr and exit status 2.

The spec may say ``"speedups": False`` (``EmbeddedServer(speedups=False)``): the server then runs plain pymap,
without the speed-ups of :mod:`mailstudy.servers.pymap_speedups` (lazy MIME parsing, fast FETCH, batched writes);
the bytes on the wire are the same, only slower. The POP3 wire forms of the initial messages are computed before
READY either way (our own POP3 code, not a pymap speed-up), so the first session pays nothing extra.

``MAILSTUDY_EMBEDDED_PROFILE=FILE`` writes a cProfile of the whole child run to FILE (for speed work).
"""

from __future__ import annotations

import asyncio
import copy
import errno
import logging
import os
import pickle
import signal
import sys
import threading
import time
from argparse import Namespace
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from functools import cache

from pymap.__about__ import __version__ as PYMAP_VERSION
from pymap.backend.dict import Config, DictBackend, Login
from pymap.backend.dict.filter import FilterSet
from pymap.backend.dict.mailbox import MailboxSet
from pymap.parsing.message import AppendMessage
from pymap.user import Passwords, UserMetadata
from pysasl import SASLAuth
from pysasl.hashing import BuiltinHash

from mailstudy import __version__
from mailstudy.servers.base import EXIT_PORT_IN_USE
from mailstudy.servers.imap_compress import COMPRESS_CAPABILITY, compressing_server
from mailstudy.servers.pop3d import Pop3Server
from mailstudy.servers.pymap_speedups import keep_every_byte, start_imap, use_lazy_parsing

#: Password hash for the in-memory users. pymap's default (PBKDF2, 500,000 rounds) costs ~0.3 s per login,
#: which would dominate every session's timing; 1,000 rounds keeps a real hash at well under a millisecond.
HASH_ROUNDS = 1000
#: Pause before answering a failed login (IMAP unknown user, POP3 any failure): small but present.
FAIL_DELAY = 0.05


@cache
def _sasl_mechanisms() -> SASLAuth:
    return SASLAuth.defaults()


class EmbeddedConfig(Config):
    """pymap's dict-backend config with a fixed greeting (the default calls ``socket.getfqdn()``) and its SASL
    mechanisms looked up once per process.

    Why the second: pymap asks pysasl for PLAIN and LOGIN on every connection, and pysasl finds them through
    ``importlib.metadata`` entry points, reading every installed distribution's metadata each time (strace shows
    one ``entry_points.txt`` opened per package). In a virtualenv with JupyterLab that was 10.2 ms of every
    greeting (median, direct on loopback; 0.5 ms with the lookup done once): a cost of what else is installed,
    not of IMAP, and a quarter of a LAN session's time to list. The mechanism objects hold nothing but their
    name, so one lookup serves every connection.
    """

    @property
    def tls_auth(self) -> SASLAuth:
        return _sasl_mechanisms()

    compress = False  # COMPRESS=DEFLATE offered after login (mailstudy.servers.imap_compress); set from the spec

    @property
    def login_capability(self):
        caps = list(super().login_capability)
        return caps + [COMPRESS_CAPABILITY] if self.compress else caps

    @property
    def greeting(self) -> bytes:
        return b"mailstudy-embedded IMAP ready (pymap " + PYMAP_VERSION.encode() + b")"


def _args(host: str, port: int) -> Namespace:
    return Namespace(host=host, port=port, debug=False, cert=None, key=None, tls=False, passlib_cfg=None,
                     proxy_protocol=None, inherited_sockets=None, demo_data=False, demo_user="",
                     demo_password="")


def _tls_context(spec: dict):
    """The server's SSLContext when the spec asks for TLS (``spec["tls"]``: cert, key, versions), else None."""
    tls = spec.get("tls")
    if not tls:
        return None
    from pathlib import Path

    from mailstudy.servers.tls import Certificate, server_context

    return server_context(Certificate(Path(tls["cert"]), Path(tls["key"])), tuple(tls["versions"]))


async def build(spec: dict) -> tuple[DictBackend, EmbeddedConfig]:
    """The backend and config with users and INBOX contents from ``spec``, not yet listening. With TLS the
    config offers STARTTLS (pymap's own: from 127.0.0.1 it still accepts LOGIN before TLS, as Dovecot does)."""
    host = spec["host"]
    disabled = frozenset(spec.get("disabled", ()))
    ctx = _tls_context(spec)
    config = EmbeddedConfig(_args(host, spec["imap_port"]), demo_data=False, demo_user="", demo_password="",
                            host=host, port=spec["imap_port"], tls_enabled=ctx is not None, ssl_context=ctx,
                            invalid_user_sleep=FAIL_DELAY, hash_context=BuiltinHash(rounds=HASH_ROUNDS),
                            disable_idle="IDLE" in disabled)
    config.compress = bool(spec.get("compress", False))
    config.apply_context()
    if spec.get("speedups", True):
        use_lazy_parsing()
    else:
        keep_every_byte()
    login = Login(config)
    passwords = Passwords(config)
    when = datetime.now(timezone.utc)
    for user, password in spec["accounts"]:
        hashed = await passwords.hash_password(password)
        login.users_dict[user] = UserMetadata(config, user, password=hashed)
        mailbox_set, filter_set = MailboxSet(), FilterSet()
        config.set_cache[user] = (mailbox_set, filter_set)
        inbox = await mailbox_set.get_mailbox("INBOX")
        inbox._max_uid = 0  # pymap starts UIDs at 101; Dovecot at 1. Same UIDs -> same bytes on the wire.
        # pymap's UIDVALIDITY mixes time and chance and so varies in digit count (bytes on the wire) from run to
        # run; Dovecot uses the mailbox's creation time, which has 10 digits. Do as Dovecot does.
        inbox._uid_validity = int(time.time())
        for raw in spec["mailboxes"].get(user, ()):
            await inbox.append(AppendMessage(raw, when, frozenset()), recent=True)
    return DictBackend(login, config), config


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(stop.set)


async def serve(spec: dict, ready_out=None) -> None:
    """Build, listen, announce readiness, run until told to stop."""
    backend, config = await build(spec)
    disabled = frozenset(spec.get("disabled", ()))
    tls = spec.get("tls")
    ctx = config.ssl_context if tls else None
    pop3 = Pop3Server(backend.login, disabled=disabled, fail_delay=FAIL_DELAY,
                      implementation=f"mailstudy-embedded-{__version__}", ssl_context=ctx)
    for mailbox_set, _filters in config.set_cache.values():
        pop3.warm([m async for m in (await mailbox_set.get_mailbox("INBOX")).messages()])
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        await backend.start(stack)
        speedups = spec.get("speedups", True)
        server_cls = compressing_server(speedups) if config.compress else None  # pymap has no COMPRESS of its own
        await start_imap(backend, config, stack, speedups=speedups, server_cls=server_cls)
        pop3_server = await asyncio.start_server(pop3, host=spec["host"], port=spec["pop3_port"])
        await stack.enter_async_context(pop3_server)
        if tls:  # implicit TLS: the same servers behind a handshake, STARTTLS/STLS not offered there
            implicit = copy.copy(config)
            implicit._tls_enabled = False  # pymap's switch for offering STARTTLS (IMAPConfig.initial_capability)
            await start_imap(backend, implicit, stack, speedups=speedups, port=tls["imaps_port"], ssl=ctx,
                             server_cls=server_cls)
            pop3s = await asyncio.start_server(pop3.implicit, host=spec["host"], port=tls["pop3s_port"], ssl=ctx)
            await stack.enter_async_context(pop3s)
        imap_port = spec["imap_port"]
        pop3_port = pop3_server.sockets[0].getsockname()[1]
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if spec.get("watch_stdin", True):
            threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
        out = ready_out or sys.stdout
        out.write(f"READY {imap_port} {pop3_port}\n")
        out.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mailstudy.servers.embedded_main SPEC.pickle", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        with open(argv[0], "rb") as f:
            spec = pickle.load(f)  # then each user's messages, one pickle each (see EmbeddedServer._launch)
            spec["mailboxes"] = {user: [pickle.load(f) for _ in range(n)] for user, n in spec["counts"].items()}
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        print(f"embedded server: cannot read spec {argv[0]}: {exc}", file=sys.stderr)
        return 2
    profile_path = os.environ.get("MAILSTUDY_EMBEDDED_PROFILE")
    profiler = None
    if profile_path:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    try:
        asyncio.run(serve(spec))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"embedded server: a port is already in use on {spec.get('host')} "
                  f"(IMAP {spec.get('imap_port')}, POP3 {spec.get('pop3_port')}): {exc.strerror}",
                  file=sys.stderr)
            return EXIT_PORT_IN_USE
        print(f"embedded server: cannot listen: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the stdin watcher thread may still block in read()
