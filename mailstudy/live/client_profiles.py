"""Client profiles as data: what each real mail client does, one frozen value per behaviour, with its source.

Why: a byte count means something to a reader only when it is the byte count of a client they use. Each profile
is a frozen :class:`ImapProfile` or :class:`Pop3Profile` whose fields name every behaviour that differs between
clients (headers fetched, batch size, window, body policy, flags sync, CONDSTORE, poll interval, pipelining depth,
how a session opens and ends) and the ones the next issues add (connection kept open, how new mail is learned,
compression), so reading the table below tells a reader everything; ``mailstudy profiles --clients`` prints it. Every value's source is in
the profile's ``sources`` (a client's source file in the snapshot named in the project's research notes on
clients, or a document); a value marked ``ours:`` is our own choice, not the client's, and one marked
``measured:`` is what the real client sent in ``mailstudy calibrate`` (docs/calibration.md: the profiles of
NeoMutt, mbsync, offlineimap3, getmail6, mpop and fetchmail agree with their Debian clients there).

How the values turn into commands is :mod:`mailstudy.live.imap_sync` and :mod:`mailstudy.live.pop3_sync`; a
profile runs one *sync session* for one :class:`~mailstudy.live.devices.Device` through the one engine
(:func:`mailstudy.live.engine.run_workload`), the same path the abstract strategies take.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType

from mailstudy.live.access import SessionSpec
from mailstudy.live.devices import Device
from mailstudy.live.engine import Catalog, Destination, Session, SyncOutcome, run_workload
from mailstudy.live.imap_style import ImapStyle
from mailstudy.live.imap_sync import ImapSync, split_uid_sets, uid_set
from mailstudy.live.keeping import with_keeping
from mailstudy.live.pop3_sync import play_pop3
from mailstudy.live.trace import Trace
from mailstudy.live.values import ParameterValueError

__all__ = ["CLIENTS", "PROFILES", "Catalog", "Destination", "ImapProfile", "Pop3Profile", "SyncOutcome",
           "get_client", "profile_table", "split_uid_sets", "uid_set"]

TB = "thunderbird-desktop mailnews/imap/src/nsImapProtocol.cpp"
TB_PREFS = "thunderbird-desktop mailnews/mailnews.js"
TB_POP3 = "thunderbird-desktop mailnews/local/src/Pop3Client.sys.mjs"
K9 = "thunderbird-android RealImapFolder.kt"
K9_SYNC = "thunderbird-android ImapSync.kt"
K9_POP3 = "thunderbird-android Pop3Folder.java"
NM = "neomutt imap/message.c"
NM_CONF = "neomutt imap/config.c"
NM_IMAP = "neomutt imap/imap.c"
NM_TAGS = "neomutt imap/command.c (\"%c%04u\", seqid 'a' from imap/adata.c)"
NM_AUTH = "neomutt imap/auth_plain.c (SASL-IR when offered)"
MBSYNC = "isync src/drv_imap.c"
MBSYNC_DEPTH = "isync src/drv_imap.c (max_in_progress = INT_MAX; mbsync.1: PipelineDepth default unlimited)"
OI = "offlineimap3 offlineimap/imapserver.py"
OI_FOLDER = "offlineimap3 offlineimap/folder/IMAP.py"
GM = "getmail6 getmailcore/_retrieverbases.py"
GM_DEFAULTS = "getmail6 getmail (options_defaults: read_all True, delete False)"
MPOP = "mpop src/pop3.c"
FM = "fetchmail pop3.c"
#: what the real client sent, captured and read by ``mailstudy calibrate`` (docs/calibration.md)
MEASURED = "measured: docs/calibration.md, the Debian 12 client against Dovecot 2.3.19.1"
ONE_SHOT = "ours: the client runs once per invocation; a 15-minute timer"
RFC1939 = "RFC 1939; imaptest pop3-profile.conf"
NOT_USED = "ours: not read by this client's behaviour"
OURS_NEXT = "ours: not yet modelled (a later issue); the only value supported today"


@dataclass(frozen=True)
class _Profile:
    """What every client profile has: its name, protocol, summary and the behaviours the next issues add."""

    name: str
    summary: str  # one sentence a reader of the table sees
    poll_s: float  # seconds between checks for new mail
    idle: bool = False  # the client can hold an IDLE connection instead of polling
    keep_connection: bool = False  # the connection stays open between checks (else: connect and log in each time)
    new_mail: str = "poll"  # how new mail is learned: one of NEW_MAIL (mailstudy.live.keeping)
    idle_renew_s: float = 0.0  # an IDLE is ended and issued again after this long (0: the client never IDLEs)
    keepalive_s: float = 0.0  # a kept connection quiet this long gets a command or a TCP keepalive (0: none)
    poll_user_set: bool = True  # a user can set poll_s (a sweep varies it only then)
    pipelining_depth: int = 1  # commands in flight
    compression: bool = False  # asks for COMPRESS=DEFLATE after login when the server offers it (RFC 4978)
    read_all: bool = False  # every sync downloads every message again (getmail's default)
    sources: MappingProxyType = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    def source(self, name: str) -> str:
        """Where the value of field ``name`` comes from (a field this client's behaviour never reads: ours)."""
        return self.sources.get(name, NOT_USED)

    def run(self, account: Destination, device: Device, to_read: set[str], condstore: bool = False) -> SyncOutcome:
        """One poll: connect, log in, sync, open what the user reads here, log out; what it cost and changed."""
        outcome = SyncOutcome(client=self.name)
        session = Session(account, device, Trace(), set(to_read), outcome=outcome)
        outcome.result = run_workload(self, session, **self.connection_options(condstore))
        return outcome


@dataclass(frozen=True)
class ImapProfile(_Profile):
    """An IMAP client: how it learns changes, which header fields it fetches, which bodies, how it opens one."""

    protocol: str = "imap"
    listing: str = "all-flags"  # change sync: all-flags (1:*), window (the newest N), header-cache (1:<hi>)
    flag_items: str = "(FLAGS)"
    window: int = 0  # listing=window: the newest N messages
    learn: str = "header-fields"  # a new message is learned by its header fields, or by its whole body
    header_attributes: str = "UID RFC822.SIZE FLAGS"
    header_fields: str = ""
    set_limit: int = 0  # a UID set's text is split above this many characters (0: never)
    bodies: str = "on-open"  # body policy: autosync (all, in groups), capped (each up to body_limit), on-open
    autosync_group_bytes: int = 0
    body_limit: int = 0
    open_items: str = "(UID RFC822.SIZE BODY[])"
    open_chunk_above: int = 0  # a larger message is opened in chunks (0: never)
    open_chunk: int = 0
    open_marks_seen: str = "fetch"  # fetch (BODY[] sets \Seen), store (UID STORE after a PEEK), on-leave (later)
    seen_store: str = "+FLAGS"
    condstore: bool = False  # the client's own default; a fleet may ask for CHANGEDSINCE where offered
    flag_set: str = "1:*"  # the flags listing's set: 1:*, 1:uidnext (1:<UIDNEXT-1>), 1:exists (1:<EXISTS>)
    flag_by_sequence: bool = False  # the flags listing is FETCH over sequence numbers, not UID FETCH
    body_items: str = "(UID BODY.PEEK[])"  # learn=bodies: what each UID FETCH of a new body asks
    mark_old: bool = False  # on leaving, UID STORE +FLAGS.SILENT (Old) on the unread (NeoMutt's mark_old)
    # how the session opens and ends (mailstudy.live.imap_style; the defaults are imaplib's)
    tags: str = ""  # the first command's tag when not imaplib's (a0000, 1)
    capability: str = "at-connect"  # when CAPABILITY is asked: at-connect, greeting, after-login, both
    client_id: str = ""  # ID's parameters, sent before login
    login: str = "login"  # login, plain (AUTHENTICATE PLAIN then the response), plain-ir (SASL-IR)
    housekeeping: tuple = ()  # flights of commands between login and SELECT
    select: tuple = ("SELECT INBOX",)
    ending: tuple = ("LOGOUT",)  # without LOGOUT the socket is closed after the last

    @property
    def spec(self) -> SessionSpec:
        """What the session's row reports of its parameters: the protocol."""
        return SessionSpec(protocol="imap")

    @property
    def style(self) -> ImapStyle:
        """How the session opens and ends, for the engine's connection."""
        return ImapStyle(tags=self.tags, capability=self.capability, client_id=self.client_id, login=self.login,
                         housekeeping=self.housekeeping, select=self.select, ending=self.ending)

    def connection_options(self, condstore: bool) -> dict:
        return {"condstore": condstore or self.condstore, "compress": self.compression, "style": self.style}

    def play(self, conn, session: Session) -> None:
        out = session.outcome
        out.condstore_offered, out.condstore_used = conn.condstore_offered, conn.condstore_used
        out.modseq_at_select = conn.modseq_at_select
        sync = ImapSync(self, conn, session.account, session.device, out)
        sync.sync()
        session.trace.mark("list_ready")
        sync.open_messages(session.to_read)
        sync.leave_flags()
        session.headers, session.bodies = out.headers, out.bodies


@dataclass(frozen=True)
class Pop3Profile(_Profile):
    """A POP3 client: which commands it sends, and what it fetches, keeps and deletes. Read state under POP3 lives
    only on the device (the protocol has no flags)."""

    protocol: str = "pop3"
    capa: bool = True  # asks CAPA first (else assumes UIDL and TOP)
    stat: bool = True  # STAT after login
    maildrop: tuple = ("LIST", "UIDL")  # what it asks of the maildrop, in order (LIST, UIDL, LAST)
    headers_only: bool = False  # TOP n 0 for new messages, RETR when opened
    large_limit: int = 0  # above this size: TOP n <limit/76> instead of RETR (0: never)
    retrieve: str = "RETR {}"  # how a whole message is fetched ({} the number): RETR, or fetchmail's TOP n 99999999
    list_each: bool = False  # LIST n before each message, and its DELE right after it (fetchmail)
    delete: bool = False  # DELE every retrieved message

    @property
    def spec(self) -> SessionSpec:
        """What the session's row reports of its parameters: POP3, download-all, and the delete or keep mode."""
        return SessionSpec(protocol="pop3", strategy="download-all", pop3_mode="delete" if self.delete else "keep")

    def connection_options(self, condstore: bool) -> dict:
        return {"capa": self.capa, "stat": self.stat, "pipelining": self.pipelining_depth}

    def play(self, conn, session: Session) -> None:
        play_pop3(self, conn, session)
        session.headers, session.bodies = session.outcome.headers, session.outcome.bodies


def _sourced(profile: _Profile, **sources: str) -> _Profile:
    """``profile`` with ``sources`` added to the ones it has (a field's source by the field's name)."""
    return replace(profile, sources=MappingProxyType({**_NEXT, **profile.sources, **sources}))


_NEXT = {"keep_connection": OURS_NEXT, "new_mail": OURS_NEXT,
         "pipelining_depth": "ours: one command at a time; not yet compared with this client",
         "compression": OURS_NEXT}
#: the opening and leaving of a profile not yet run beside its client: imaplib's and poplib's own
_LIBRARY = "ours: the Python library's own (imaplib, poplib); not yet compared with this client"
_NEXT.update({name: _LIBRARY for name in ("tags", "capability", "client_id", "login", "housekeeping", "select",
                                          "ending", "stat", "retrieve")})

THUNDERBIRD = _sourced(ImapProfile(
    name="thunderbird", poll_s=600.0, idle=True,
    summary="Thunderbird desktop: flags of all, new headers, offline autosync of every body, IDLE",
    flag_items="(FLAGS)",
    header_fields="From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To "
                  "Content-Type Reply-To",
    set_limit=950, bodies="autosync", autosync_group_bytes=2 * 1024 * 1024, open_chunk_above=98304,
    open_chunk=65536, compression=True),
    poll_s=f"{TB_PREFS} (check every 10 minutes)", idle=f"{TB_PREFS} (use_idle)", listing=TB, flag_items=TB,
    header_attributes=TB, header_fields=TB, set_limit=TB, learn=TB, bodies=f"{TB_PREFS} (autosync_offline_stores)",
    autosync_group_bytes=TB, open_items=TB, open_chunk_above=TB, open_chunk=TB, open_marks_seen=TB,
    seen_store=TB, condstore=f"{TB_PREFS} (use_condstore=false)",
    compression=f"{TB_PREFS} (use_compress_deflate true); {TB} (COMPRESS DEFLATE after login when offered)")

PROFILES: dict[str, _Profile] = {
    "thunderbird": THUNDERBIRD,
    "thunderbird-online": _sourced(replace(
        THUNDERBIRD, name="thunderbird-online", bodies="on-open",
        summary="Thunderbird with offline autosync off: header-first, a body crosses the wire when opened"),
        bodies=f"{TB_PREFS} (autosync_offline_stores off)"),
    "k9": _sourced(ImapProfile(
        name="k9", poll_s=900.0,
        summary="K-9 Mail: the newest 25 messages, their flags each sync, bodies up to 128 KiB",
        listing="window", window=25, flag_items="(UID FLAGS)",
        header_attributes="UID FLAGS INTERNALDATE RFC822.SIZE",
        header_fields="date subject from content-type to cc bcc reply-to message-id references in-reply-to "
                      "list-post list-unsubscribe sender",
        bodies="capped", body_limit=131072, open_items="(UID BODY.PEEK[])", open_marks_seen="store",
        seen_store="+FLAGS.SILENT"),
        poll_s=f"{K9_SYNC} (poll 15 minutes)", idle=f"{K9_SYNC} (push off)", listing=K9_SYNC,
        window="thunderbird-android core/android/account/.../AccountDefaultsProvider.kt (DEFAULT_VISIBLE_LIMIT = 25, set on each new folder)",
        flag_items=K9, header_attributes=K9, header_fields=K9, learn=K9, set_limit=K9,
        bodies=f"{K9} (partial limit 131072; ours: BODYSTRUCTURE walk not modelled)", body_limit=K9,
        open_items=K9, open_marks_seen=K9, seen_store=K9, condstore=f"{K9} (never)"),
    "neomutt": _sourced(ImapProfile(
        name="neomutt", poll_s=300.0, pipelining_depth=15, mark_old=True,
        summary="NeoMutt with its header cache: flags of the known, headers of the new, bodies when opened, the "
                "unread marked Old on leaving",
        listing="header-cache", flag_items="(UID FLAGS)", header_attributes="UID FLAGS INTERNALDATE RFC822.SIZE",
        header_fields="DATE FROM SENDER SUBJECT TO CC MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION "
                      "IN-REPLY-TO REPLY-TO LINES LIST-POST LIST-SUBSCRIBE LIST-UNSUBSCRIBE X-LABEL X-ORIGINAL-TO",
        open_items="BODY.PEEK[]", open_marks_seen="on-leave", seen_store="+FLAGS.SILENT",
        tags="a0000", capability="after-login", login="plain-ir",
        housekeeping=(("ENABLE UTF8=ACCEPT", 'LIST "" ""'),), select=('SELECT "INBOX"',), ending=("CLOSE",),
        compression=True),
        poll_s=f"{NM_CONF} (imap_keepalive 300 s; mail_check is 5 s while the index is shown)",
        idle=f"{NM_CONF} (imap_idle no)", listing=f"{NM} (new headers: FETCH <msn>:<n>)", flag_items=NM,
        header_attributes=NM, header_fields=NM, learn=NM, set_limit=f"{NM} (ours: one range)", bodies=NM,
        open_items=NM, open_marks_seen=f"{NM_IMAP} (flags synced on leaving, queued with the Old STORE: captured "
                                       f"once, clients.md)", seen_store=NM, condstore=f"{NM_CONF} (imap_condstore off)",
        compression=f"{NM_CONF} (imap_deflate yes); neomutt imap/imap.c (COMPRESS DEFLATE after login when "
                    f"offered)",
        pipelining_depth=f"{NM_CONF} (imap_pipeline_depth 15); queued: ENABLE + LIST ({NM_IMAP})",
        mark_old=f"{NM_IMAP} (sync_helper ... \"Old\"; mark_old yes, {NM}); {MEASURED}",
        tags=NM_TAGS, capability=f"{NM_IMAP} (imap_exec CAPABILITY after login); {MEASURED}", login=NM_AUTH,
        housekeeping=f"{NM_IMAP} (ENABLE UTF8=ACCEPT, LIST \"\" \"\" queued); {MEASURED}",
        select=f"{NM_IMAP}; {MEASURED}", ending=f"{NM_IMAP} (CLOSE; no LOGOUT: {MEASURED})"),
    "mbsync": _sourced(ImapProfile(
        name="mbsync", poll_s=900.0, pipelining_depth=2**31 - 1,
        summary="mbsync (isync), the offline mirror: every UID and flag, each new body whole, all pipelined",
        flag_items="(UID FLAGS)", flag_set="1:uidnext", learn="bodies", body_items="(BODY.PEEK[])",
        tags="1", capability="greeting", login="plain-ir", housekeeping=(("NAMESPACE",), ('LIST "" "*"',)),
        select=('SELECT "INBOX"',)),
        poll_s=ONE_SHOT, idle=MBSYNC, listing=MBSYNC, flag_items=MBSYNC, flag_set=f"{MBSYNC}; {MEASURED}",
        learn=MBSYNC, bodies=MBSYNC, body_items=MBSYNC, open_items=f"ours: mbsync reads locally; {TB} if ever needed",
        seen_store=f"{MBSYNC} (pushes +FLAGS (\\Seen) on its next run)", condstore=MBSYNC,
        pipelining_depth=MBSYNC_DEPTH, tags=f"{MBSYNC} (\"%d \")", capability=f"{MBSYNC}; {MEASURED}",
        login=f"{MBSYNC} (SASL-IR); {MEASURED}", housekeeping=f"{MBSYNC} (NAMESPACE, then LIST); {MEASURED}",
        select=MEASURED, ending=MEASURED),
    "offlineimap3": _sourced(ImapProfile(
        name="offlineimap3", poll_s=900.0,
        summary="offlineimap3, the offline mirror in Python: ID, two LISTs, SELECT then EXAMINE, every "
                "message's flags by position, each new body whole, one command at a time",
        flag_items="(FLAGS UID INTERNALDATE)", flag_by_sequence=True, learn="bodies", body_items="(BODY.PEEK[])",
        capability="both", client_id='("name" "OfflineIMAP" "version" "8.0.0")', login="plain",
        housekeeping=(('LIST "" ""',), ('LIST "" "*"',)), select=("SELECT INBOX", "EXAMINE INBOX")),
        poll_s=ONE_SHOT, listing=OI_FOLDER, flag_items=OI_FOLDER, flag_by_sequence=OI_FOLDER, flag_set=OI_FOLDER,
        learn=OI_FOLDER, bodies=OI_FOLDER, body_items=OI_FOLDER, pipelining_depth=MEASURED,
        capability=f"{OI}; {MEASURED}", client_id=f"{OI} (ID when offered); {MEASURED}",
        login=f"{OI}; {MEASURED}", housekeeping=f"{OI} (list '\"\"', then '\"*\"')",
        select=f"{OI_FOLDER}; {MEASURED}", ending=MEASURED, condstore=MEASURED),
    "getmail6-imap": _sourced(ImapProfile(
        name="getmail6-imap", poll_s=900.0, read_all=True,
        summary="getmail6 over IMAP with its defaults: every message downloaded again on every run (read_all), "
                "nothing deleted",
        flag_items="(UID RFC822.SIZE)", flag_set="1:exists", flag_by_sequence=True, learn="bodies",
        body_items="(BODY.PEEK[])", capability="both", select=("EXAMINE INBOX",), ending=("CLOSE", "LOGOUT")),
        poll_s=ONE_SHOT, listing=GM, flag_items=GM, flag_set=GM, flag_by_sequence=GM, learn=GM, bodies=GM,
        body_items=GM, read_all=GM_DEFAULTS, pipelining_depth=MEASURED,
        capability=f"{GM} (imaplib, then capability()); {MEASURED}", login=f"{GM} (imaplib login)",
        select=f"{GM} (select readonly)", ending=f"{GM}; {MEASURED}", tags=f"{GM} (imaplib's tags)",
        condstore=MEASURED),
    "thunderbird-pop3": _sourced(Pop3Profile(
        name="thunderbird-pop3", poll_s=600.0,
        summary="Thunderbird over POP3: RETR what this device has not seen (UIDL), leave on server"),
        poll_s=TB_POP3, capa=TB_POP3, stat=TB_POP3, maildrop=TB_POP3, headers_only=TB_POP3,
        large_limit=f"{TB_POP3} (max_size off by default)", delete=f"{TB_POP3} (leave on server)"),
    "thunderbird-pop3-headers": _sourced(Pop3Profile(
        name="thunderbird-pop3-headers", poll_s=600.0, headers_only=True,
        summary="Thunderbird over POP3 with 'fetch headers only': TOP n 0, RETR when opened"),
        poll_s=TB_POP3, capa=TB_POP3, stat=TB_POP3, maildrop=TB_POP3,
        headers_only=f"{TB_POP3} (headers only)", large_limit=TB_POP3, delete=TB_POP3),
    "k9-pop3": _sourced(Pop3Profile(
        name="k9-pop3", poll_s=900.0, capa=False, maildrop=("UIDL", "LIST"), large_limit=131072,
        summary="K-9 Mail over POP3: RETR up to 128 KiB, TOP n <131072/76> above, never delete"),
        poll_s=f"{K9_SYNC} (poll 15 minutes)", capa=K9_POP3, stat=K9_POP3, maildrop=K9_POP3,
        headers_only=K9_POP3, large_limit=K9_POP3, delete=f"{K9_POP3} (delete policy NEVER)"),
    "mpop": _sourced(Pop3Profile(
        name="mpop", poll_s=900.0, pipelining_depth=100,
        summary="mpop with its defaults: UIDL, keep on the server, the RETRs pipelined (RFC 2449)"),
        poll_s=ONE_SHOT, capa=MPOP, stat=f"{MPOP}; {MEASURED}", maildrop=f"{MPOP}; {MEASURED}", headers_only=MPOP,
        large_limit=MPOP, retrieve=MPOP, delete=f"{MPOP} (keep on: our config keeps, as mpop's users who keep do)",
        pipelining_depth=f"{MPOP} (POP3_PIPELINE_MAX 100 when CAPA offers PIPELINING; pop3_auth_user: USER and "
                         f"PASS together)"),
    "getmail6-pop3": _sourced(Pop3Profile(
        name="getmail6-pop3", poll_s=900.0, capa=False, stat=False, maildrop=("UIDL", "LIST", "UIDL", "LIST"),
        read_all=True,
        summary="getmail6 over POP3 with its defaults: every message downloaded again on every run (read_all)"),
        poll_s=ONE_SHOT, capa=f"{GM} (poplib, no CAPA); {MEASURED}", stat=MEASURED,
        maildrop=f"{GM} (uidl() and list(), asked twice: {MEASURED})", headers_only=GM, large_limit=GM,
        retrieve=GM, read_all=GM_DEFAULTS, delete=GM_DEFAULTS, pipelining_depth=MEASURED),
    "fetchmail": _sourced(Pop3Profile(
        name="fetchmail", poll_s=900.0, maildrop=("LAST", "UIDL"), retrieve="TOP {} 99999999", list_each=True,
        delete=True,
        summary="fetchmail with its defaults: LAST then UIDL, per message LIST n, TOP n 99999999 and DELE n, "
                "one command at a time"),
        poll_s=ONE_SHOT, capa=FM, stat=FM, maildrop=f"{FM} (LAST; UIDL when the server refuses it)",
        retrieve=f"{FM} (TOP n 99999999: a peek)", list_each=f"{FM} (pop3_getpartialsizes)", headers_only=FM,
        large_limit=FM, delete=f"{FM} (fetchmail deletes what it retrieved unless told keep)",
        pipelining_depth=MEASURED),
    "pop3-delete": _sourced(Pop3Profile(
        name="pop3-delete", poll_s=600.0, delete=True,
        summary="The classic single device: RETR every message, then DELE each"),
        poll_s=f"ours: 10 minutes, as {TB_POP3}", capa=RFC1939, stat=RFC1939, maildrop=RFC1939,
        headers_only=RFC1939, large_limit=RFC1939, delete=RFC1939),
}
PROFILES = {name: with_keeping(p) for name, p in PROFILES.items()}  # connection-keeping values (live/keeping.py)
CLIENTS = tuple(PROFILES)

#: Fields that are the profile's identity, not a behaviour.
_NOT_BEHAVIOUR = ("name", "summary", "sources", "protocol")


def get_client(name: str) -> _Profile:
    """The client profile called ``name``; a ValueError naming the known ones otherwise. (``get_profile`` is the
    network profile's, :func:`mailstudy.link.get_profile`.)"""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ParameterValueError(f"unknown client profile {name!r}; choose one of {', '.join(CLIENTS)}") from None


def profile_table() -> list[dict]:
    """One row per profile and behaviour: ``{"client", "protocol", "field", "value", "source"}``."""
    rows = []
    for p in PROFILES.values():
        for f in fields(p):
            if f.name not in _NOT_BEHAVIOUR:
                rows.append({"client": p.name, "protocol": p.protocol, "field": f.name,
                             "value": getattr(p, f.name), "source": p.source(f.name)})
    return rows
