"""Access strategies: header-first and download-all, over IMAP and POP3, with Python's own clients.

Why: these are the two ways of reading mail the study compares (DESIGN.md, "Words"). Each strategy drives
``imaplib``/``poplib`` over a traced socket, checks every downloaded byte against the corpus, and turns the
trace into metrics with the one sans-IO parser and the one metrics definition the pcap analysis uses too.

What each strategy sends (so a reader of a chart knows what was measured):

- IMAP header-first: CAPABILITY (imaplib always asks on connect), LOGIN, SELECT INBOX, then the list: ``UID FETCH 1:* (UID RFC822.SIZE FLAGS
  BODY.PEEK[HEADER])`` (batched) or ``UID SEARCH ALL`` and one such FETCH per message; the list is ready; then
  ``UID FETCH uid (BODY[])`` for each message the user opens (this sets \\Seen on the server), LOGOUT.
  The whole header is fetched (not a few fields) so the bytes can be checked and so it is the same data POP3's
  ``TOP n 0`` returns.
- IMAP download-all: CAPABILITY, LOGIN, SELECT, ``UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[])`` or one per message,
  LOGOUT. PEEK keeps the server's read state as it was: a download is not a read.
- POP3 header-first: CAPA (to learn UIDL/PIPELINING), USER, PASS, STAT, LIST, UIDL (if offered), ``TOP n 0`` for each message, then RETR for the
  opened ones, QUIT.
- POP3 download-all: CAPA, USER, PASS, STAT, UIDL (if offered), RETR of each message the device lacks (keep mode
  skips UIDLs it has seen; without UIDL it cannot tell and fetches all), then DELE each (delete mode), QUIT.

TLS (``tls``: ``implicit`` or ``starttls``, with ``tls_version``): the session runs inside TLS; with STARTTLS it
begins with CAPABILITY, STARTTLS and CAPABILITY again (IMAP) or CAPA and STLS before the CAPA above (POP3). The
connection opening is :mod:`mailstudy.live.clients`'s; the counts keep the protocol's bytes, and the records'
are counted apart (``wire_bytes_*``, ``tls_*``).

Preview (``preview=N``, header-first only): each opened message is read in part instead of whole, as a
preview pane does. IMAP fetches the first N bytes of its text, ``UID FETCH uid (BODY.PEEK[TEXT]<0.N>)`` (what
Thunderbird's preview sends, with N = 2048); POP3's nearest equivalent is ``TOP n k``, the header again plus the
first k = ceil(N / 78) body lines (78: RFC 5322's recommended line length). Each part is checked byte for byte
against the start of the delivered message.

Pipelining: POP3 sends the TOP/RETR/DELE runs as one flight when the server advertises PIPELINING; IMAP keeps
``window`` tags in flight for per-message FETCHes.
"""

from __future__ import annotations

import hashlib
import imaplib
import poplib
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Iterable

from mailstudy import __version__
from mailstudy.corpus.sections import header_of, pop3_form
from mailstudy.errors import CheckFailed, MailstudyError
from mailstudy.link.profiles import Profile
from mailstudy.live.clients import ClientTLS, TracedIMAP4, TracedPOP3
from mailstudy.live.devices import Device
from mailstudy.live.trace import Trace
from mailstudy.protocol import parse_session
from mailstudy.protocol.events import Exchange
from mailstudy.protocol.metrics import open_waits, session_metrics

PROTOCOLS = ("imap", "pop3")
STRATEGIES = ("header-first", "download-all")
POP3_MODES = ("keep", "delete")
PREVIEW_LINE_BYTES = 78  # RFC 5322 2.1.1: lines SHOULD be no more than 78 characters


class IntegrityError(CheckFailed):
    """A downloaded message or header is not byte-identical to any message delivered to the account.

    A plain error, not an AssertionError: ``python -O`` and test tools treat assertions specially, and this is a
    finding about the server, not a bug in mailstudy."""

    check = "integrity check"


class SessionError(MailstudyError, RuntimeError):
    """The session could not be run (refused login, dead server); the message says what happened."""


@dataclass(frozen=True)
class SessionSpec:
    """What one session does. ``batch`` and ``window`` matter to IMAP, ``pop3_mode`` to POP3."""

    protocol: str = "imap"
    strategy: str = "header-first"
    pop3_mode: str = "keep"
    read_fraction: float = 0.0
    seed: int = 0
    batch: bool = True  # IMAP: one FETCH for all messages, else one per message
    pipelining: bool = False  # POP3: one flight per run of commands; IMAP: per-message FETCHes in flight
    window: int = 0  # IMAP tags in flight when pipelining (0: all)
    preview: int = 0  # header-first: read only the first N bytes of each opened message (0: all of it)
    tls: str = "none"  # none (clear text), implicit (IMAPS/POP3S) or starttls; see mailstudy.live.clients
    tls_version: str = "1.3"  # with TLS: the one version the client accepts

    def __post_init__(self) -> None:
        ClientTLS(self.tls, self.tls_version)  # a ValueError naming the accepted values
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {self.protocol!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        if self.pop3_mode not in POP3_MODES:
            raise ValueError(f"pop3_mode must be one of {POP3_MODES}, not {self.pop3_mode!r}")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError(f"read_fraction must be within [0, 1], not {self.read_fraction}")
        if self.preview < 0:
            raise ValueError(f"preview must be >= 0 bytes, not {self.preview}")

    @property
    def preview_lines(self) -> int:
        """POP3 ``TOP n k``: the body lines nearest to ``preview`` bytes."""
        return -(-self.preview // PREVIEW_LINE_BYTES)


@dataclass
class SessionResult:
    spec: SessionSpec
    trace: Trace
    exchanges: list[Exchange]
    metrics: dict
    messages: int  # messages in the mailbox when the session started
    headers_fetched: int = 0
    bodies_fetched: int = 0
    opened: list[int] = field(default_factory=list)  # 0-based positions the user opened
    integrity_ok: bool = True
    link: Profile | None = None  # the profile of the emulated link the session went through (None: loopback)

    def row(self) -> dict:
        """One tidy row: parameters, counts and times (no raw bytes)."""
        out = asdict(self.spec)
        out.update(messages=self.messages, headers_fetched=self.headers_fetched,
                   bodies_fetched=self.bodies_fetched, integrity_ok=self.integrity_ok,
                   mailstudy_version=__version__)
        out.update(self.metrics)
        return out


class Known:
    """The messages delivered to an account, indexed for byte-exact checks of what comes back.

    What "the header" is and how POP3 hands a message back are :mod:`mailstudy.corpus.sections`'s rules; a POP3
    check compares with the POP3 form (CRLF-terminated), an IMAP check with the bytes as delivered.
    """

    def __init__(self, raws: Iterable[bytes]) -> None:
        self.by_sha: dict[str, bytes] = {}
        # (protocol, "message" | "header") -> sha256 of that form -> sha256 of the delivered message
        self._forms: dict[tuple[str, str], dict[str, str]] = {
            (p, part): {} for p in ("imap", "pop3") for part in ("message", "header")}
        for raw in raws:
            sha = _sha(raw)
            self.by_sha[sha] = raw
            header = header_of(raw)
            for protocol, form in (("imap", lambda b: b), ("pop3", pop3_form)):
                self._forms[protocol, "message"][_sha(form(raw))] = sha
                self._forms[protocol, "header"][_sha(form(header))] = sha

    def check_message(self, data: bytes, what: str, protocol: str = "imap") -> str:
        """The delivered message's sha256 if ``data`` is one of them as ``protocol`` returns it, else raise."""
        sha = _sha(data)
        found = self._forms[protocol, "message"].get(sha)
        if found is None:
            raise IntegrityError(f"{what}: {len(data)} bytes (sha256 {sha[:12]}) match no delivered message")
        return found

    def check_header(self, data: bytes, what: str, protocol: str = "imap") -> str:
        """The delivered message's sha256 if ``data`` is the header of one of them as ``protocol`` returns it."""
        sha = _sha(data)
        found = self._forms[protocol, "header"].get(sha)
        if found is None:
            raise IntegrityError(f"{what}: header of {len(data)} bytes (sha256 {sha[:12]}) matches no "
                                 f"delivered message's header")
        return found

    def check_prefix(self, data: bytes, sha: str, what: str, protocol: str = "imap") -> None:
        """``data`` must be the start of the delivered message ``sha`` as ``protocol`` returns it (a preview:
        a partial FETCH, TOP n k)."""
        raw = self.by_sha[sha]
        if not (pop3_form(raw) if protocol == "pop3" else raw).startswith(data):
            raise IntegrityError(f"{what}: {len(data)} bytes are not the start of the delivered message")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def choose_opened(n: int, read_fraction: float, seed: int) -> list[int]:
    """The positions (0-based) of the messages the user opens: a seeded draw of round(f*n) of n."""
    k = round(read_fraction * n)
    return sorted(random.Random(f"open:{seed}").sample(range(n), k))


def run_session(host: str, imap_port: int, pop3_port: int, user: str, password: str, spec: SessionSpec,
                known: Known, device: Device | None = None, timeout: float = 60.0,
                tls_ca: str | None = None) -> SessionResult:
    """Run one session of ``spec`` against a running server and measure it.

    With ``spec.tls`` other than ``none`` the ports are the server's TLS ports for that mode (implicit: IMAPS and
    POP3S) and ``tls_ca`` is the CA file its certificate must verify against; a TLS failure is a
    :class:`~mailstudy.live.clients.TLSError`.

    Raises :class:`IntegrityError` when any downloaded byte differs from what was delivered, and
    :class:`SessionError` with the server's words when login fails or the server goes away.
    """
    device = device or Device()
    trace = Trace()
    tls = ClientTLS(spec.tls, spec.tls_version, tls_ca) if spec.tls != "none" else None
    try:
        if spec.protocol == "imap":
            result = _imap_session(host, imap_port, user, password, spec, known, trace, timeout, tls)
        else:
            result = _pop3_session(host, pop3_port, user, password, spec, known, device, trace, timeout, tls)
    except (imaplib.IMAP4.error, poplib.error_proto, OSError) as exc:  # OSError: refused, reset, timed out
        raise SessionError(f"{spec.protocol} session to {host}:{port_of(spec, imap_port, pop3_port)} failed: "
                           f"{exc or type(exc).__name__}") from exc
    return result


def port_of(spec: SessionSpec, imap_port: int, pop3_port: int) -> int:
    return imap_port if spec.protocol == "imap" else pop3_port


def _finish(spec: SessionSpec, trace: Trace, messages: int, **counts) -> SessionResult:
    parser_events = parse_session(spec.protocol, trace.chunks, decrypted=trace.wire is not None)
    exchanges = [e for e in parser_events if isinstance(e, Exchange)]
    metrics = session_metrics(trace.chunks, exchanges, t_start=trace.t_connect_ns,
                              t_list_ready=trace.milestones.get("list_ready"), time_scale=1e-9,
                              wire=trace.wire).as_row()
    metrics.update(open_waits(exchanges, trace.milestones.get("list_ready"), time_scale=1e-9))
    return SessionResult(spec=spec, trace=trace, exchanges=exchanges, metrics=metrics, messages=messages,
                         **counts)


# -- IMAP ------------------------------------------------------------------------------------------------------
_UID_RE = re.compile(rb"UID (\d+)")
LIST_ITEMS = "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER])"
ALL_ITEMS = "(UID RFC822.SIZE FLAGS BODY.PEEK[])"


def _fetched(data: list) -> list[tuple[int, bytes]]:
    """(uid, literal) pairs from imaplib FETCH data, in the order the server sent them."""
    out = []
    for item in data:
        if isinstance(item, tuple):
            m = _UID_RE.search(item[0])
            out.append((int(m.group(1)) if m else -1, item[1]))
    return out


def _imap_fetch(c: TracedIMAP4, uids: list[int], items: str, spec: SessionSpec) -> list[tuple[int, bytes]]:
    if not uids:
        return []
    if spec.batch:
        typ, data = c.uid("FETCH", "1:*", items)
        if typ != "OK":
            raise SessionError(f"UID FETCH failed: {data!r}")
        return _fetched(data)
    if spec.pipelining:
        results = c.pipelined("UID", [("FETCH", str(u), items) for u in uids], window=spec.window)
        bad = [r for r in results if r[0] != "OK"]
        if bad:
            raise SessionError(f"UID FETCH failed: {bad[0]!r}")
        return _fetched(c.untagged_responses.pop("FETCH", []))
    out = []
    for u in uids:
        typ, data = c.uid("FETCH", str(u), items)
        if typ != "OK":
            raise SessionError(f"UID FETCH {u} failed: {data!r}")
        out.extend(_fetched(data))
    return out


def _imap_session(host, port, user, password, spec: SessionSpec, known: Known, trace: Trace,
                  timeout, tls: ClientTLS | None = None) -> SessionResult:
    c = TracedIMAP4(host, port, trace, timeout=timeout, tls=tls)
    logged_out = False
    try:
        try:
            c.login(user, password)
        except c.error as exc:
            raise SessionError(f"IMAP login as {user!r} refused: {exc}") from exc
        typ, data = c.select("INBOX")
        if typ != "OK":
            raise SessionError(f"SELECT INBOX failed: {data!r}")
        n = int(data[0])
        uids: list[int] = []
        if n and not spec.batch:
            typ, data = c.uid("SEARCH", "ALL")
            uids = [int(x) for x in data[0].split()]
        elif n:
            uids = list(range(1, n + 1))  # stands for "n messages"; batched FETCH uses 1:*
        counts = {"headers_fetched": 0, "bodies_fetched": 0}
        if spec.strategy == "header-first":
            listed = _imap_fetch(c, uids, LIST_ITEMS, spec)
            shas = [known.check_header(hdr, f"IMAP header of UID {uid}") for uid, hdr in listed]
            counts["headers_fetched"] = len(listed)
            if len(listed) != n:
                raise IntegrityError(f"IMAP list has {len(listed)} headers for {n} messages")
            trace.mark("list_ready")
            list_uids = [uid for uid, _ in listed]
            opened = choose_opened(n, spec.read_fraction, spec.seed)
            for pos in opened:
                if spec.preview:
                    _imap_preview(c, list_uids[pos], shas[pos], spec.preview, known)
                    continue
                typ, data = c.uid("FETCH", str(list_uids[pos]), "(BODY[])")
                bodies = _fetched(data)
                if typ != "OK" or len(bodies) != 1:
                    raise SessionError(f"UID FETCH {list_uids[pos]} BODY[] failed: {typ} {data!r:.200}")
                known.check_message(bodies[0][1], f"IMAP body of UID {list_uids[pos]}")
            counts["bodies_fetched"] = 0 if spec.preview else len(opened)
            counts["opened"] = opened
        else:
            got = _imap_fetch(c, uids, ALL_ITEMS, spec)
            for uid, body in got:
                known.check_message(body, f"IMAP body of UID {uid}")
            if len(got) != n:
                raise IntegrityError(f"IMAP download-all got {len(got)} bodies for {n} messages")
            counts["bodies_fetched"] = len(got)
            trace.mark("list_ready")
        c.logout()
        logged_out = True
    finally:
        if not logged_out:
            try:
                c.shutdown()
            except OSError:
                pass
    return _finish(spec, trace, n, **counts)


def _imap_preview(c: TracedIMAP4, uid: int, sha: str, nbytes: int, known: Known) -> None:
    typ, data = c.uid("FETCH", str(uid), f"(BODY.PEEK[TEXT]<0.{nbytes}>)")
    parts = _fetched(data)
    if typ != "OK" or len(parts) != 1:
        raise SessionError(f"UID FETCH {uid} BODY.PEEK[TEXT]<0.{nbytes}> failed: {typ} {data!r:.200}")
    raw = known.by_sha[sha]
    known.check_prefix(header_of(raw) + parts[0][1], sha, f"IMAP preview of UID {uid}")


# -- POP3 ------------------------------------------------------------------------------------------------------
def _joined(lines: list[bytes]) -> bytes:
    """poplib returns un-stuffed lines without CRLF; put the message back together as it was sent."""
    return b"".join(line + b"\r\n" for line in lines)


def _pop3_capabilities(c: TracedPOP3) -> set[str]:
    try:
        return {k.upper() for k in c.capa()}
    except poplib.error_proto:  # a server without CAPA (RFC 1939 only): assume nothing optional
        return set()


def _pop3_run(c: TracedPOP3, lines: list[str], multiline: bool, pipelining: bool) -> list[tuple[bytes, list]]:
    if not lines:
        return []
    if pipelining:
        return c.pipelined(lines, multiline)
    out = []
    for line in lines:
        if multiline:
            resp, body, _ = c._longcmd(line)
            out.append((resp, body))
        else:
            out.append((c._shortcmd(line), []))
    return out


def _pop3_session(host, port, user, password, spec: SessionSpec, known: Known, device: Device,
                  trace: Trace, timeout, tls: ClientTLS | None = None) -> SessionResult:
    c = TracedPOP3(host, port, trace, timeout=timeout, tls=tls)
    quit_sent = False
    try:
        caps = _pop3_capabilities(c)
        pipelining = spec.pipelining and "PIPELINING" in caps
        try:
            c.user(user)
            c.pass_(password)
        except poplib.error_proto as exc:
            raise SessionError(f"POP3 login as {user!r} refused: {exc}") from exc
        n, _size = c.stat()
        counts: dict = {"headers_fetched": 0, "bodies_fetched": 0}
        uidls: list[str | None] = [None] * n
        if spec.strategy == "header-first":
            c.list()
        if n and "UIDL" in caps:
            _resp, lines, _ = c.uidl()
            for line in lines:
                num, uidl = line.split(None, 1)
                uidls[int(num) - 1] = uidl.decode("ascii", "replace")
        if spec.strategy == "header-first":
            tops = _pop3_run(c, [f"TOP {i} 0" for i in range(1, n + 1)], True, pipelining)
            shas = [known.check_header(_joined(lines), f"POP3 TOP {i} 0", "pop3")
                    for i, (_resp, lines) in enumerate(tops, 1)]
            counts["headers_fetched"] = len(tops)
            trace.mark("list_ready")
            opened = choose_opened(n, spec.read_fraction, spec.seed)
            for pos in opened:
                if spec.preview:
                    _resp, lines, _ = c.top(pos + 1, spec.preview_lines)
                    known.check_prefix(_joined(lines), shas[pos], f"POP3 TOP {pos + 1} {spec.preview_lines}",
                                       "pop3")
                    continue
                _resp, lines, _ = c.retr(pos + 1)
                raw = _joined(lines)
                device.remember(known.check_message(raw, f"POP3 RETR {pos + 1}", "pop3"), raw, uidls[pos])
            counts["bodies_fetched"] = 0 if spec.preview else len(opened)
            counts["opened"] = opened
        else:
            wanted = [i for i in range(1, n + 1)
                      if spec.pop3_mode == "delete" or uidls[i - 1] is None
                      or uidls[i - 1] not in device.pop3_seen_uidls]
            got = _pop3_run(c, [f"RETR {i}" for i in wanted], True, pipelining)
            for i, (_resp, lines) in zip(wanted, got):
                raw = _joined(lines)
                device.remember(known.check_message(raw, f"POP3 RETR {i}", "pop3"), raw, uidls[i - 1])
            counts["bodies_fetched"] = len(got)
            trace.mark("list_ready")
            if spec.pop3_mode == "delete":
                _pop3_run(c, [f"DELE {i}" for i in range(1, n + 1)], False, pipelining)
        c.quit()
        quit_sent = True
    finally:
        if not quit_sent:
            try:
                c.close()
            except OSError:
                pass
    return _finish(spec, trace, n, **counts)
