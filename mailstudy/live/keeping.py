"""How each client keeps its connection and learns of new mail: the values of the profiles' connection-keeping
fields, each with the file and line of the client's source that sets it, and the table ``docs/clients.md`` shows.

Why a module of its own: the fleet's answer (bytes a day, logins, staleness) depends on whether a client holds its
connection open and waits in IDLE, checks it with NOOP, or connects, logs in and syncs on every poll; those
values and their sources are one table, applied to the profiles of :mod:`mailstudy.live.client_profiles` by
:func:`with_keeping`, so the profile stays the one home of each value and this table the one place they are read
from the clients' sources. Snapshots read (as in the project's research notes on clients): thunderbird-desktop
@9c91f3cb, thunderbird-android @a59bd679, neomutt @ed494b09.

The ways of learning of new mail (``new_mail``):

- ``idle``: the client holds its connection in IDLE (RFC 2177); the server tells it of new mail at once. The
  IDLE is ended and issued again every ``idle_renew_s`` (RFC 2177 asks for at most 29 minutes).
- ``noop``: the client holds its connection and sends NOOP every ``poll_s``; the server's untagged EXISTS tells it
  of new mail, and it fetches what is new.
- ``poll``: every ``poll_s`` the client runs its whole sync: over its kept connection (``keep_connection``; a NOOP
  checks the connection first, then the mailbox is selected again) or, when it does not keep one, by connecting
  and logging in again (reconnect-and-poll).
- ``none``: the client never looks by itself (a user starts it).
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

NEW_MAIL = ("idle", "noop", "poll", "none")
#: The ways that hold a connection (``poll`` only when the profile keeps its connection).
KEPT_WAYS = NEW_MAIL[:3]
#: The connection-keeping fields of a profile, in the order the table shows them.
FIELDS = ("keep_connection", "new_mail", "poll_s", "poll_user_set", "idle_renew_s", "keepalive_s")
#: RFC 2177: a client should re-issue IDLE at least every 29 minutes (servers may log it out after 30).
RFC2177_RENEW_S = 29 * 60

TB_JS = "thunderbird-desktop mailnews/mailnews.js"
TB_CPP = "thunderbird-desktop mailnews/imap/src/nsImapProtocol.cpp"
TB_SERVER = "thunderbird-desktop mailnews/imap/src/nsImapIncomingServer.cpp"
K9_ACCOUNT = "thunderbird-android app-common/src/main/kotlin/net/thunderbird/app/common/account/"
K9_DEFAULTS = f"{K9_ACCOUNT}DefaultAccountDefaultsProvider.kt"
K9_USER_SET = f"{K9_ACCOUNT}AccountCreator.kt:84 (the check frequency the user picks)"
K9_STORE = "thunderbird-android mail/protocols/imap/src/main/java/com/fsck/k9/mail/store/imap/RealImapStore.kt"
NM_CONFIG = "neomutt imap/config.c"
NM_IMAP = "neomutt imap/imap.c"
POP3_SESSION = "RFC 1939 sections 4 and 5: a session sees the maildrop as it was at login, so new mail needs a " \
               "new session"
UNREAD = "ours: not yet read from this client's source; it connects and logs in on every poll, as before"

_TB = ({"keep_connection": True, "new_mail": "idle", "idle_renew_s": 600.0, "keepalive_s": 100.0,
        "poll_user_set": True},
       {"keep_connection": f"{TB_CPP}:1529-1559 (after a URL the connection waits in its thread loop and enters "
                           "IDLE after 2 s)",
        "new_mail": f"{TB_JS}:573 (mail.server.default.use_idle true)",
        "idle_renew_s": f"{TB_JS}:530 (check_time 10 minutes): the biff ({TB_SERVER}:863) runs on the IDLE "
                        f"connection: DONE ({TB_CPP}:7880), NOOP ({TB_CPP}:2740), IDLE again ({TB_CPP}:1557)",
        "keepalive_s": f"{TB_JS}:167,171 (mail.imap.tcp_keepalive idle_time 100 s: TCP keepalives, no payload)",
        "poll_user_set": f"{TB_JS}:530 (the default of each account's own check_time setting)"})
_TB_POP3 = ({"keep_connection": False, "new_mail": "poll", "poll_user_set": True},
            {"keep_connection": POP3_SESSION, "new_mail": f"{TB_JS}:530 (check_time 10 minutes)",
             "idle_renew_s": "RFC 1939 (POP3 has no IDLE)", "keepalive_s": POP3_SESSION,
             "poll_user_set": f"{TB_JS}:530 (the default of each account's own check_time setting)"})
_K9_POP3 = ({"keep_connection": False, "new_mail": "poll", "poll_user_set": True},
            {"keep_connection": POP3_SESSION,
             "new_mail": f"{K9_DEFAULTS}:68 (automaticCheckIntervalMinutes = DEFAULT_SYNC_INTERVAL, 15)",
             "idle_renew_s": "RFC 1939 (POP3 has no IDLE)", "keepalive_s": POP3_SESSION,
             "poll_user_set": K9_USER_SET})

def _one_shot(runs: str, pop3: bool = False) -> tuple[dict, dict]:
    """A tool that syncs once and exits, run again by the user's own timer (cron, systemd): reconnect-and-poll."""
    return ({"keep_connection": False, "new_mail": "poll", "poll_user_set": True},
            {"keep_connection": POP3_SESSION if pop3 else runs, "new_mail": "ours: a timer of the user's (cron, "
             "systemd) runs it", "idle_renew_s": "RFC 1939 (POP3 has no IDLE)" if pop3 else f"{runs}: no IDLE",
             "keepalive_s": runs, "poll_user_set": "ours: the user's own timer"})


#: client profile -> (values, sources) of its connection-keeping fields.
KEEPING: dict[str, tuple[dict, dict]] = {
    "thunderbird": _TB,
    "thunderbird-online": _TB,
    "k9": ({"keep_connection": True, "new_mail": "poll", "idle_renew_s": 1440.0, "poll_user_set": True},
           {"keep_connection": f"{K9_STORE}:266-275 (a connected connection goes back to the pool) and 245-255 "
                               "(the next poll takes it after a NOOP)",
            "new_mail": f"{K9_DEFAULTS}:81 (folderPushMode NONE: push off, so the 15-minute poll)",
            "idle_renew_s": f"{K9_DEFAULTS}:69 (idleRefreshMinutes = 24; used only when push is on)",
            "keepalive_s": f"ours: none found in {K9_STORE}; the pooled connection is checked when reused",
            "poll_user_set": K9_USER_SET}),
    "neomutt": ({"keep_connection": True, "new_mail": "noop", "idle_renew_s": 300.0, "keepalive_s": 300.0,
                 "poll_user_set": True},
                {"keep_connection": f"{NM_IMAP}:1215-1262 (imap_check_mailbox polls the open connection)",
                 "new_mail": f"{NM_CONFIG}:90 (imap_idle false), so NOOP: {NM_IMAP}:1261-1262",
                 "idle_renew_s": f"{NM_IMAP}:1236-1238 (with imap_idle set, IDLE is issued again after "
                                 "imap_keep_alive)",
                 "keepalive_s": f"{NM_CONFIG}:111 (imap_keep_alive 300); neomutt imap/adata.c:54-62 sends the "
                                "NOOP on the input loop's 1-second timeout (neomutt key/get.c:282)",
                 "poll_user_set": f"{NM_CONFIG}:111 (imap_keep_alive is a user setting; so is timeout, neomutt "
                                  "mutt_config.c:602)"}),
    "mbsync": ({"keep_connection": False, "new_mail": "poll", "poll_user_set": True},
               {"keep_connection": "isync mbsync.1 (mbsync synchronizes and exits)",
                "new_mail": "ours: a timer of the user's (cron, systemd) runs mbsync",
                "idle_renew_s": "isync mbsync.1 (no IDLE)", "keepalive_s": "isync mbsync.1 (exits after a sync)",
                "poll_user_set": "ours: the user's own timer"}),
    "offlineimap3": _one_shot("offlineimap3 offlineimap.1 (without -a autorefresh, one sync and exit)"),
    "getmail6-imap": _one_shot("getmail6 docs/getmail.1 (getmail retrieves and exits)"),
    "getmail6-pop3": _one_shot("getmail6 docs/getmail.1 (getmail retrieves and exits)", pop3=True),
    "mpop": _one_shot("mpop doc/mpop.1 (mpop retrieves and exits)", pop3=True),
    "fetchmail": _one_shot("fetchmail fetchmail.1 (without --daemon, one poll and exit)", pop3=True),
    "thunderbird-pop3": _TB_POP3,
    "thunderbird-pop3-headers": _TB_POP3,
    "k9-pop3": _K9_POP3,
    "pop3-delete": ({"keep_connection": False, "new_mail": "poll", "poll_user_set": True},
                    {"keep_connection": POP3_SESSION, "new_mail": "ours: a poll, as every POP3 client",
                     "idle_renew_s": "RFC 1939 (POP3 has no IDLE)", "keepalive_s": POP3_SESSION,
                     "poll_user_set": "ours"}),
}


def with_keeping(profile):
    """``profile`` with its connection-keeping values and their sources from :data:`KEEPING` (a client not in
    the table keeps the defaults, reconnect-and-poll, and says that this is ours)."""
    values, sources = KEEPING.get(profile.name, ({}, {}))
    unread = {f: UNREAD for f in FIELDS if f != "poll_s"}
    return replace(profile, **values, sources=MappingProxyType({**profile.sources, **unread, **sources}))


def ships_with(profile) -> str:
    """What the client does between syncs as it ships, in words (``"keeps its connection; IDLE, ..."``)."""
    if profile.new_mail == "none":
        return "checks only when the user starts it"
    if not profile.keep_connection:
        return f"connects and logs in every {profile.poll_s:g} s"
    how = {"idle": f"IDLE, checked every {profile.idle_renew_s:g} s", "noop": f"NOOP every {profile.poll_s:g} s",
           "poll": f"its whole sync every {profile.poll_s:g} s"}[profile.new_mail]
    return f"keeps its connection; {how}"


def keeping_rows(profiles) -> list[dict]:
    """One row per profile: its connection-keeping values (each with ``<field>_source``)."""
    rows = []
    for p in profiles:
        row = {"client": p.name, "protocol": p.protocol}
        for f in FIELDS:
            row[f], row[f"{f}_source"] = getattr(p, f), p.source(f)
        rows.append(row)
    return rows


def _cell(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v).replace("|", "\\|")


def keeping_markdown(profiles) -> str:
    """The table of ``docs/clients.md``: a row per client with every connection-keeping value, then a row per
    value with its source."""
    head = ["client", "protocol", *FIELDS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = keeping_rows(profiles)
    lines += ["| " + " | ".join(_cell(r[c]) for c in head) + " |" for r in rows]
    lines += ["", "| client | field | value | source |", "|---|---|---|---|"]
    lines += [f"| {r['client']} | {f} | {_cell(r[f])} | {_cell(r[f + '_source'])} |" for r in rows for f in FIELDS]
    return "\n".join(lines) + "\n"


__all__ = ["FIELDS", "KEEPING", "KEPT_WAYS", "NEW_MAIL", "RFC2177_RENEW_S", "keeping_markdown", "keeping_rows",
           "ships_with", "with_keeping"]
