"""How a POP3 client profile syncs: log in, learn the maildrop, fetch what is new, let the user read, maybe delete.

Why a module of its own: :mod:`mailstudy.live.client_profiles` says *what* each POP3 client does (frozen values
with their sources); this module turns those values into commands once, over the engine's
:class:`~mailstudy.live.engine.Pop3Connection`. Read state under POP3 lives only on the device.
"""

from __future__ import annotations

from mailstudy.corpus.sections import header_of
from mailstudy.live.engine import IntegrityError, Pop3Connection, Session

#: K-9's TOP n <limit/76>: body lines of a large message it fetches in part (Pop3Folder.java)
TOP_LINE_BYTES = 76


def play_pop3(profile, conn: Pop3Connection, session: Session) -> None:
    """One sync of ``profile``: its maildrop commands in its order, RETR (or fetchmail's whole-message TOP) or TOP
    the new messages, open what the user reads, DELE what was retrieved (delete mode)."""
    sizes, uidls = _maildrop(profile, conn)
    device = session.device
    new = [i for i in range(1, conn.n + 1)
           if profile.delete or profile.read_all or uidls.get(i) not in device.pop3_seen_uidls]
    bodies = [i for i in new if not profile.headers_only
              and not (profile.large_limit and sizes.get(i, 0) > profile.large_limit)]
    _retrieve(profile, conn, session, bodies, uidls)
    _tops(profile, conn, session, [i for i in new if i not in bodies], uidls)
    _read(profile, conn, session, uidls)
    if profile.delete and not profile.list_each:
        conn.run([f"DELE {i}" for i in bodies], False, pipelined(profile, conn))


def pipelined(profile, conn: Pop3Connection) -> int:
    """How many commands the profile sends in one flight on this server: its depth where CAPA offers PIPELINING
    (RFC 2449 6.6; mpop pipelines only then), else 0 (one at a time)."""
    return profile.pipelining_depth if profile.pipelining_depth > 1 and "PIPELINING" in conn.caps else 0


def _maildrop(profile, conn: Pop3Connection) -> tuple[dict[int, int], dict[int, str]]:
    """The profile's maildrop commands (LIST, UIDL, LAST) in its order; the mailbox's size from the first
    answer when the client sent no STAT."""
    sizes: dict[int, int] = {}
    uidls: dict[int, str] = {}
    for verb in profile.maildrop:
        if conn.n == 0:
            break
        if verb == "LIST":
            sizes = conn.sizes()
        elif verb == "UIDL" and "UIDL" in conn.caps:
            uidls = conn.uidls()
        elif verb == "LAST":
            conn.ask("LAST")
        if conn.n is None and verb != "LAST":
            conn.n = len(sizes or uidls)
    conn.n = conn.n or 0
    return sizes, uidls


def _retrieve(profile, conn: Pop3Connection, session: Session, nums: list[int], uidls: dict[int, str]) -> None:
    device, out = session.device, session.outcome
    if profile.list_each:  # fetchmail: LIST n, the message, DELE n, one message after the other
        got = []
        for i in nums:
            conn.run([f"LIST {i}"], False)
            got += conn.run([profile.retrieve.format(i)], True)
            if profile.delete:
                conn.run([f"DELE {i}"], False)
    else:
        got = conn.run([profile.retrieve.format(i) for i in nums], True, pipelined(profile, conn))
    for i, raw in zip(nums, got):
        sha = session.account.catalog.check_message(raw, f"{profile.name} {profile.retrieve.format(i)}")
        if sha not in device.listed:
            out.new_listed.append(sha)
        device.remember(sha, raw, uidls.get(i))
        out.bodies += 1


def _tops(profile, conn: Pop3Connection, session: Session, nums: list[int], uidls: dict[int, str]) -> None:
    """``TOP n 0`` (headers only) or ``TOP n <large_limit/76>`` (a large message in part)."""
    device, out, catalog = session.device, session.outcome, session.account.catalog
    lines = profile.large_limit // TOP_LINE_BYTES if not profile.headers_only else 0
    for i, data in zip(nums, conn.run([f"TOP {i} {lines}" for i in nums], True)):
        sha = catalog.check_header(header_of(data), f"{profile.name} TOP {i}")
        catalog.check_prefix(sha, data, f"{profile.name} TOP {i}")
        if sha not in device.listed:
            out.new_listed.append(sha)
            device.listed.add(sha)
        if lines:
            device.partial.add(sha)
            out.partial_bodies += 1
        else:
            out.headers += 1
        if i in uidls:
            device.pop3_seen_uidls.add(uidls[i])
            device.uidl_sha[uidls[i]] = sha


def _read(profile, conn: Pop3Connection, session: Session, uidls: dict[int, str]) -> None:
    """The user opens messages: held ones are marked read locally; a header-only one is RETRieved first."""
    device, out = session.device, session.outcome
    num_of = {device.uidl_sha.get(u): i for i, u in uidls.items()}
    for sha in sorted(session.to_read, key=lambda s: num_of.get(s, 0)):
        if sha not in device.listed:
            continue
        if sha not in device.store:
            i = num_of.get(sha)
            if i is None:
                continue  # no longer on the server: only its header is here
            (raw,) = conn.run([f"RETR {i}"], True)
            if session.account.catalog.check_message(raw, f"{profile.name} RETR {i}") != sha:
                raise IntegrityError(f"{profile.name}: RETR {i} came back as another message")
            device.remember(sha, raw, uidls.get(i))
            out.bodies += 1
        device.seen.add(sha)
        out.read.append(sha)
