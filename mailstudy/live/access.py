"""Access strategies: header-first and download-all, over IMAP and POP3, with Python's own clients.

Why: these are the two ways of reading mail the study compares (docs/design.md, "Words"). Each strategy drives
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

COMPRESS (``compress``, IMAP): COMPRESS DEFLATE right after LOGIN when the server offers it; the counts keep the
protocol's bytes, the deflated stream is ``compressed_bytes_*``. A server that does not offer it (and POP3, which
has no COMPRESS) gives an uncompressed session whose row says why (``compress_refused``).

Preview (``preview=N``, header-first only): each opened message is read in part instead of whole, as a
preview pane does. IMAP fetches the first N bytes of its text, ``UID FETCH uid (BODY.PEEK[TEXT]<0.N>)`` (what
Thunderbird's preview sends, with N = 2048); POP3's nearest equivalent is ``TOP n k``, the header again plus the
first k = ceil(N / 78) body lines (78: RFC 5322's recommended line length). Each part is checked byte for byte
against the start of the delivered message.

Pipelining: POP3 sends the TOP/RETR/DELE runs as one flight when the server advertises PIPELINING; IMAP keeps
``window`` tags in flight for per-message FETCHes.

Each strategy is a :class:`Strategy`, a workload of the one session engine (:mod:`mailstudy.live.engine`), which
connects, logs in, selects, checks, logs out and measures for it as it does for the client profiles.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mailstudy.corpus.sections import header_of
from mailstudy.live.clients import ClientTLS
from mailstudy.live.devices import Device
from mailstudy.live.engine import (
    Catalog,
    Destination,
    ImapConnection,
    IntegrityError,
    Pop3Connection,
    Session,
    SessionError,
    SessionResult,
    message_data,
    run_workload,
)
from mailstudy.live.trace import Trace
from mailstudy.live.values import POP3_MODES, PROTOCOLS, STRATEGIES, check_choice, check_flag, check_fraction

PREVIEW_LINE_BYTES = 78  # RFC 5322 2.1.1: lines SHOULD be no more than 78 characters
LIST_ITEMS = "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER])"
ALL_ITEMS = "(UID RFC822.SIZE FLAGS BODY.PEEK[])"

#: The integrity catalog under the name the strategies' callers know it by (one class: :class:`Catalog`).
Known = Catalog

__all__ = ["ALL_ITEMS", "LIST_ITEMS", "POP3_MODES", "PROTOCOLS", "STRATEGIES", "IntegrityError", "Known",
           "SessionError", "SessionResult", "SessionSpec", "Strategy", "choose_opened", "header_of", "run_session"]


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
    compress: bool = False  # IMAP: COMPRESS=DEFLATE after login where offered (else uncompressed, and says why)

    def __post_init__(self) -> None:
        ClientTLS(self.tls, self.tls_version)  # a ValueError naming the accepted values
        check_flag("compress", self.compress)
        check_choice("protocol", self.protocol, PROTOCOLS)
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("pop3_mode", self.pop3_mode, POP3_MODES)
        check_fraction("read_fraction", self.read_fraction)
        if self.preview < 0:
            raise ValueError(f"preview must be >= 0 bytes, not {self.preview}")

    @property
    def preview_lines(self) -> int:
        """POP3 ``TOP n k``: the body lines nearest to ``preview`` bytes."""
        return -(-self.preview // PREVIEW_LINE_BYTES)


def choose_opened(n: int, read_fraction: float, seed: int) -> list[int]:
    """The positions (0-based) of the messages the user opens: a seeded draw of round(f*n) of n."""
    k = round(check_fraction("read_fraction", read_fraction) * n)
    return sorted(random.Random(f"open:{seed}").sample(range(n), k))


def run_session(host: str, imap_port: int, pop3_port: int, user: str, password: str, spec: SessionSpec,
                known: Catalog, device: Device | None = None, timeout: float = 60.0,
                tls_ca: str | None = None) -> SessionResult:
    """Run one session of ``spec`` against a running server and measure it.

    With ``spec.tls`` other than ``none`` the ports are the server's TLS ports for that mode (implicit: IMAPS and
    POP3S) and ``tls_ca`` is the CA file its certificate must verify against; a TLS failure is a
    :class:`~mailstudy.live.clients.TLSError`.

    Raises :class:`IntegrityError` when any downloaded byte differs from what was delivered, and
    :class:`SessionError` with the server's words when login fails or the server goes away.
    """
    tls = ClientTLS(spec.tls, spec.tls_version, tls_ca) if spec.tls != "none" else None
    account = Destination(host, imap_port, pop3_port, user, password, known, timeout, tls, spec.compress)
    session = Session(account, device or Device(), Trace())
    return run_workload(Strategy(spec), session)


@dataclass(frozen=True)
class Strategy:
    """One of the four abstract strategies as a workload of the engine (:func:`mailstudy.live.engine.run_workload`)."""

    spec: SessionSpec

    @property
    def protocol(self) -> str:
        return self.spec.protocol

    @property
    def name(self) -> str:
        return self.spec.strategy

    def play(self, conn, session: Session) -> None:
        if isinstance(conn, ImapConnection):
            (self._imap_list if self.spec.strategy == "header-first" else self._imap_all)(conn, session)
        else:
            self._pop3(conn, session)

    # -- IMAP ----------------------------------------------------------------------------------------------------
    def _imap_uids(self, conn: ImapConnection) -> list[int]:
        if conn.n and not self.spec.batch:
            return conn.uid_search("ALL")
        return list(range(1, conn.n + 1))  # stands for "n messages"; batched FETCH uses 1:*

    def _imap_fetch(self, conn: ImapConnection, items: str) -> list[tuple[int, bytes]]:
        uids = self._imap_uids(conn)
        if not uids:
            return []
        if self.spec.batch:
            got = conn.uid_fetch("1:*", items)
        else:
            got = conn.uid_fetch_each(uids, items, self.spec.window if self.spec.pipelining else None)
        return [(f.uid if f.uid is not None else -1, message_data(f)) for f in got if message_data(f) is not None]

    def _imap_list(self, conn: ImapConnection, session: Session) -> None:
        known, n = session.account.catalog, conn.n
        listed = self._imap_fetch(conn, LIST_ITEMS)
        shas = [known.check_header(hdr, f"IMAP header of UID {uid}") for uid, hdr in listed]
        session.headers = len(listed)
        if len(listed) != n:
            raise IntegrityError(f"IMAP list has {len(listed)} headers for {n} messages")
        session.trace.mark("list_ready")
        opened = choose_opened(n, self.spec.read_fraction, self.spec.seed)
        for pos in opened:
            uid, sha = listed[pos][0], shas[pos]
            if self.spec.preview:
                items = f"(BODY.PEEK[TEXT]<0.{self.spec.preview}>)"
                part = _one_body(conn, uid, items)
                known.check_prefix(sha, header_of(known.by_sha[sha]) + part, f"IMAP preview of UID {uid}")
            else:
                known.check_message(_one_body(conn, uid, "(BODY[])"), f"IMAP body of UID {uid}")
        session.bodies = 0 if self.spec.preview else len(opened)
        session.counts["opened"] = opened

    def _imap_all(self, conn: ImapConnection, session: Session) -> None:
        got = self._imap_fetch(conn, ALL_ITEMS)
        for uid, body in got:
            session.account.catalog.check_message(body, f"IMAP body of UID {uid}")
        if len(got) != conn.n:
            raise IntegrityError(f"IMAP download-all got {len(got)} bodies for {conn.n} messages")
        session.bodies = len(got)
        session.trace.mark("list_ready")

    # -- POP3 ----------------------------------------------------------------------------------------------------
    def _pop3(self, conn: Pop3Connection, session: Session) -> None:
        spec, n, device = self.spec, conn.n, session.device
        pipelining = spec.pipelining and "PIPELINING" in conn.caps
        if spec.strategy == "header-first":
            conn.c.list()
        found = conn.uidls() if n and "UIDL" in conn.caps else {}
        uidls = [found.get(i) for i in range(1, n + 1)]
        if spec.strategy == "header-first":
            self._pop3_list(conn, session, uidls, pipelining)
            return
        wanted = [i for i in range(1, n + 1)
                  if spec.pop3_mode == "delete" or uidls[i - 1] is None or uidls[i - 1] not in device.pop3_seen_uidls]
        for i, raw in zip(wanted, conn.run([f"RETR {i}" for i in wanted], True, pipelining)):
            device.remember(session.account.catalog.check_message(raw, f"POP3 RETR {i}", "pop3"), raw, uidls[i - 1])
        session.bodies = len(wanted)
        session.trace.mark("list_ready")
        if spec.pop3_mode == "delete":
            conn.run([f"DELE {i}" for i in range(1, n + 1)], False, pipelining)

    def _pop3_list(self, conn: Pop3Connection, session: Session, uidls: list, pipelining: bool) -> None:
        spec, n, known = self.spec, conn.n, session.account.catalog
        tops = conn.run([f"TOP {i} 0" for i in range(1, n + 1)], True, pipelining)
        shas = [known.check_header(top, f"POP3 TOP {i} 0", "pop3") for i, top in enumerate(tops, 1)]
        session.headers = len(tops)
        session.trace.mark("list_ready")
        opened = choose_opened(n, spec.read_fraction, spec.seed)
        for pos in opened:
            if spec.preview:
                (part,) = conn.run([f"TOP {pos + 1} {spec.preview_lines}"], True)
                known.check_prefix(shas[pos], part, f"POP3 TOP {pos + 1} {spec.preview_lines}", protocol="pop3")
                continue
            (raw,) = conn.run([f"RETR {pos + 1}"], True)
            session.device.remember(known.check_message(raw, f"POP3 RETR {pos + 1}", "pop3"), raw, uidls[pos])
        session.bodies = 0 if spec.preview else len(opened)
        session.counts["opened"] = opened


def _one_body(conn: ImapConnection, uid: int, items: str) -> bytes:
    """The one message part ``UID FETCH uid items`` returns."""
    parts = [message_data(f) for f in conn.uid_fetch(str(uid), items) if message_data(f) is not None]
    if len(parts) != 1:
        raise SessionError(f"{conn.who}: UID FETCH {uid} {items} returned {len(parts)} message parts")
    return parts[0]
