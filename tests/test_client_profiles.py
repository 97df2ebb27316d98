"""Client profiles send what the cited clients send (clients.md, each profile's docstring), on both servers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailstudy.corpus import make_message
from mailstudy.live.client_profiles import (
    CLIENTS,
    Catalog,
    Destination,
    get_client,
    profile_table,
    split_uid_sets,
    uid_set,
)
from mailstudy.live.devices import Device
from mailstudy.study.fleet import client_sessions

TB_FIELDS = ("From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To "
             "Content-Type Reply-To")
K9_FIELDS = ("date subject from content-type to cc bcc reply-to message-id references in-reply-to list-post "
             "list-unsubscribe sender")


def commands(outcome) -> list[str]:
    return [f"{e.command} {e.arguments}".strip() for e in outcome.result.exchanges]


def verbs(outcome) -> list[str]:
    return [e.command for e in outcome.result.exchanges]


def sessions(client, server_kind, refused=(), **kw):
    """The first sync and the next of ``client``; every command answered OK but those in ``refused``."""
    (_first_phase, first), (_next_phase, nxt) = client_sessions(client, server_kind, messages=4, sizes="fixed-5k",
                                                              seed=1, read_fraction=0.5, **kw)
    assert all(e.ok for o in (first, nxt) for e in o.result.exchanges if e.command not in refused)
    return first, nxt


def test_thunderbird(server_kind):
    first, nxt = sessions("thunderbird", server_kind)
    for o in (first, nxt):
        assert "UID FETCH 1:* (FLAGS)" in commands(o)
    assert f"UID FETCH 5:6 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS ({TB_FIELDS})])" in commands(nxt)
    assert "UID FETCH 5:6 (UID BODY.PEEK[])" in commands(nxt)  # offline autosync of the new bodies
    assert commands(first).count("UID FETCH 1:4 (UID BODY.PEEK[])") == 1  # 4 x 5 KB: one 2 MB group
    assert sum(c.startswith("UID STORE") and c.endswith("+FLAGS (\\Seen)") for c in commands(first)) == 2


def test_thunderbird_online_opens_with_body_and_chunks_above_98304_bytes(start_server):
    raws = [make_message(5, 0, 4000).raw, make_message(5, 1, 200_000).raw]
    server = start_server(raws)
    account = Destination(server.host, server.imap_port, server.pop3_port, server.account.user,
                          server.account.password, Catalog(raws))
    device = Device()
    shas = [Catalog(raws).check_message(r, "x") for r in raws]
    out = get_client("thunderbird-online").run(account, device, set(shas))
    cmds = commands(out)
    assert "UID FETCH 1 (UID RFC822.SIZE BODY[])" in cmds
    assert [c for c in cmds if "BODY[]<" in c] == [
        "UID FETCH 2 (UID RFC822.SIZE BODY[]<0.65536>)", "UID FETCH 2 (UID BODY[]<65536.65536>)",
        "UID FETCH 2 (UID BODY[]<131072.65536>)", "UID FETCH 2 (UID BODY[]<196608.65536>)"]
    assert set(device.store) == set(shas) and device.seen == set(shas)
    # and the server now has \Seen on both (BODY[] sets it): a second device learns it by the flag sync
    other = Device()
    get_client("thunderbird-online").run(account, other, set())
    assert other.seen == set(shas) and not other.store


def test_k9(server_kind, start_server):
    first, nxt = sessions("k9", server_kind)
    assert "UID SEARCH 1:4 NOT DELETED" in commands(first)
    assert f"UID FETCH 1:4 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({K9_FIELDS})])" \
        in commands(first)
    assert [c for c in commands(first) if c.endswith("(UID BODY.PEEK[])")] == [
        f"UID FETCH {u} (UID BODY.PEEK[])" for u in (1, 2, 3, 4)]
    assert "UID SEARCH 1:6 NOT DELETED" in commands(nxt) and "UID FETCH 1:4 (UID FLAGS)" in commands(nxt)
    assert sum(c.startswith("UID STORE") and "+FLAGS.SILENT (\\Seen)" in c for c in commands(first)) == 2


def test_k9_fetches_a_large_body_only_up_to_131072_bytes(start_server):
    raws = [make_message(6, 0, 300_000).raw]
    server = start_server(raws)
    account = Destination(server.host, server.imap_port, server.pop3_port, server.account.user,
                          server.account.password, Catalog(raws))
    device = Device()
    out = get_client("k9").run(account, device, set())
    assert "UID FETCH 1 (UID BODY.PEEK[]<0.131072>)" in commands(out)
    assert out.partial_bodies == 1 and not device.store and len(device.partial) == 1
    assert 131072 < out.result.metrics["bytes_down"] < 140000


NM_HEADERS = ("(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM SENDER SUBJECT TO CC "
              "MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION IN-REPLY-TO REPLY-TO LINES LIST-POST "
              "LIST-SUBSCRIBE LIST-UNSUBSCRIBE X-LABEL X-ORIGINAL-TO)])")


def up_stream(outcome) -> bytes:
    from mailstudy.wire import UP

    return outcome.result.trace.stream(UP)


def test_neomutt(server_kind):
    """As NeoMutt 20220429 was captured doing (docs/calibration.md): SASL-IR, CAPABILITY, ENABLE + LIST in one
    flight where ENABLE is offered, SELECT "INBOX", headers of the new by sequence number, flags of the cached,
    bodies when opened, the unread marked Old, CLOSE and no LOGOUT; tags a0000, a0001..."""
    first, nxt = sessions("neomutt", server_kind)
    assert f"FETCH 1:4 {NM_HEADERS}" in commands(first)
    assert "UID FETCH 1:4 (UID FLAGS)" in commands(nxt) and f"FETCH 5:6 {NM_HEADERS}" in commands(nxt)
    opened = [c for c in commands(first) if c.endswith("BODY.PEEK[]")]
    assert len(opened) == 2 and first.bodies == 2 and nxt.bodies == 0  # header-first: bodies only when read
    read = sorted(int(c.split()[2]) for c in opened)
    unread = sorted({1, 2, 3, 4} - set(read))
    # on leaving, the unread are marked Old and the opened \Seen, queued together before CLOSE (clients.md)
    assert commands(first)[-3:] == [f"UID STORE {','.join(map(str, unread))} +FLAGS.SILENT (Old)",
                                    f"UID STORE {','.join(map(str, read))} +FLAGS.SILENT (\\Seen)", "CLOSE"]
    assert b"+FLAGS.SILENT (Old)\r\na" in up_stream(first)  # one write: the two STOREs in one flight
    for o in (first, nxt):
        v = verbs(o)
        assert v[:2] == ["AUTHENTICATE", "CAPABILITY"] and v[-1] == "CLOSE" and "LOGOUT" not in v
        assert 'LIST "" ""' in commands(o) and 'SELECT "INBOX"' in commands(o)
        assert up_stream(o).startswith(b"a0000 AUTHENTICATE PLAIN")
    if server_kind == "dovecot":  # offers ENABLE and SASL-IR: ENABLE and LIST go together, in one flight
        assert verbs(first)[:5] == ["AUTHENTICATE", "CAPABILITY", "ENABLE", "LIST", "SELECT"]
        assert b"a0002 ENABLE UTF8=ACCEPT\r\na0003 LIST" in up_stream(first)
        # two flights of two: ENABLE + LIST, and the Old + \Seen STOREs
        assert first.result.metrics["round_trips"] == first.result.metrics["commands"] - 2


def test_mbsync(server_kind):
    """mbsync 1.4.4 as captured: SASL-IR, NAMESPACE, LIST, SELECT "INBOX", UID FETCH 1:<UIDNEXT-1> (UID FLAGS),
    then every new body in flight at once; tags 1, 2, 3..."""
    first, nxt = sessions("mbsync", server_kind)
    assert "UID FETCH 1:4 (UID FLAGS)" in commands(first) and "UID FETCH 1:6 (UID FLAGS)" in commands(nxt)
    assert [c for c in commands(first) if "BODY.PEEK[]" in c] == [f"UID FETCH {u} (BODY.PEEK[])" for u in (1, 2, 3, 4)]
    assert [c for c in commands(nxt) if "BODY.PEEK[]" in c] == ["UID FETCH 5 (BODY.PEEK[])",
                                                                "UID FETCH 6 (BODY.PEEK[])"]
    assert up_stream(first).startswith(b"1 AUTHENTICATE PLAIN") and first.bodies == 4
    # the four body fetches share one flight (the embedded server offers no SASL-IR: its AUTHENTICATE takes two)
    m = first.result.metrics
    assert m["round_trips"] <= m["commands"] - 2
    if server_kind == "dovecot":
        assert verbs(first)[:4] == ["AUTHENTICATE", "NAMESPACE", "LIST", "SELECT"]
        assert m["round_trips"] == m["commands"] - 3


@pytest.mark.parametrize("client, first_verbs, next_verbs", [
    ("offlineimap3", ["CAPABILITY", "ID", "AUTHENTICATE", "CAPABILITY", "LIST", "LIST", "SELECT", "EXAMINE", "FETCH"]
     + ["UID FETCH"] * 4 + ["LOGOUT"],
     ["CAPABILITY", "ID", "AUTHENTICATE", "CAPABILITY", "LIST", "LIST", "SELECT", "EXAMINE", "FETCH"]
     + ["UID FETCH"] * 2 + ["LOGOUT"]),
    ("getmail6-imap", ["CAPABILITY", "LOGIN", "CAPABILITY", "EXAMINE", "FETCH"] + ["UID FETCH"] * 4
     + ["CLOSE", "LOGOUT"],
     ["CAPABILITY", "LOGIN", "CAPABILITY", "EXAMINE", "FETCH"] + ["UID FETCH"] * 6 + ["CLOSE", "LOGOUT"]),
])
def test_imap_mirrors_and_fetchers(server_kind, client, first_verbs, next_verbs):
    """offlineimap3 and getmail6 as captured (docs/calibration.md); getmail downloads every message again
    (read_all), offlineimap only the new ones."""
    # the embedded server answers CLOSE after EXAMINE with NO (RFC 3501 6.4.2 allows it there); getmail goes on
    first, nxt = sessions(client, server_kind, refused=("CLOSE",) if server_kind == "embedded" else ())
    if server_kind != "dovecot":  # ID is sent only where offered
        first_verbs = [v for v in first_verbs if v != "ID" or "ID" in verbs(first)]
        next_verbs = [v for v in next_verbs if v != "ID" or "ID" in verbs(nxt)]
    assert verbs(first) == first_verbs and verbs(nxt) == next_verbs
    assert "UID FETCH 1 (BODY.PEEK[])" in commands(first)
    assert first.bodies == 4 and nxt.bodies == (6 if client == "getmail6-imap" else 2)


@pytest.mark.parametrize("client, first_verbs", [
    ("thunderbird-pop3", ["CAPA", "USER", "PASS", "STAT", "LIST", "UIDL", "RETR", "RETR", "RETR", "RETR",
                          "QUIT"]),
    ("thunderbird-pop3-headers", ["CAPA", "USER", "PASS", "STAT", "LIST", "UIDL", "TOP", "TOP", "TOP", "TOP",
                                  "RETR", "RETR", "QUIT"]),
    ("k9-pop3", ["USER", "PASS", "STAT", "UIDL", "LIST", "RETR", "RETR", "RETR", "RETR", "QUIT"]),
    ("pop3-delete", ["CAPA", "USER", "PASS", "STAT", "LIST", "UIDL", "RETR", "RETR", "RETR", "RETR", "DELE",
                     "DELE", "DELE", "DELE", "QUIT"]),
    ("mpop", ["CAPA", "USER", "PASS", "STAT", "LIST", "UIDL", "RETR", "RETR", "RETR", "RETR", "QUIT"]),
    ("getmail6-pop3", ["USER", "PASS", "UIDL", "LIST", "UIDL", "LIST", "RETR", "RETR", "RETR", "RETR", "QUIT"]),
    ("fetchmail", ["CAPA", "USER", "PASS", "STAT", "LAST", "UIDL"] + ["LIST", "TOP", "DELE"] * 4 + ["QUIT"]),
])
def test_pop3_profiles(server_kind, client, first_verbs):
    first, nxt = sessions(client, server_kind, refused=("LAST",))  # RFC 1939 dropped LAST; fetchmail then UIDLs
    assert verbs(first) == first_verbs
    fetched_again = [c for c in commands(nxt) if c.split()[0] in ("RETR", "TOP")]
    if client in ("pop3-delete", "fetchmail"):  # the maildrop now holds only the 2 new messages
        assert [c.split()[1] for c in fetched_again] == ["1", "2"]
    elif client == "getmail6-pop3":  # read_all: everything again
        assert fetched_again == [f"RETR {i}" for i in range(1, 7)]
    else:  # UIDL memory: only the 2 new ones
        assert [c.split()[1] for c in fetched_again] == ["5", "6"]
    if client == "thunderbird-pop3-headers":
        assert all(c.endswith(" 0") for c in commands(first) if c.startswith("TOP"))


def test_every_profile_is_a_frozen_value_whose_behaviours_cite_their_source():
    import dataclasses

    cited = re.compile(r"\.(cpp|js|kt|java|c|mjs|conf|py)\b|RFC \d+|getmail6 getmail ")
    for name in CLIENTS:
        profile = get_client(name)
        assert dataclasses.is_dataclass(profile) and profile.__dataclass_params__.frozen
        with pytest.raises(dataclasses.FrozenInstanceError):
            profile.poll_s = 1.0
    rows = profile_table()
    assert {r["client"] for r in rows} == set(CLIENTS)
    for r in rows:
        assert r["source"], r
        assert not r["source"].startswith("/"), r  # a file in the client's repository, never a path here
    # the values that say what the client does cite the client's source (ours: only where labelled so)
    for r in rows:
        if r["field"] in ("listing", "header_fields", "bodies", "delete", "capa", "poll_s"):
            assert cited.search(r["source"]) or r["source"].startswith("ours:"), r


def test_uid_sets_are_compact_and_split_as_thunderbird_splits_them():
    assert uid_set([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"
    sets = split_uid_sets(range(1, 2000, 2), 950)  # every other UID: no ranges
    assert all(len(s) <= 950 for s in sets) and len(sets) > 1
    assert sorted(int(x) for s in sets for x in s.split(",")) == list(range(1, 2000, 2))


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(1, 5000), min_size=1, max_size=600), st.integers(12, 300))
def test_split_uid_sets_round_trip_within_the_limit(uids, limit):
    sets = split_uid_sets(uids, limit)
    assert all(len(s) <= limit for s in sets)
    back = []
    for s in sets:
        for piece in s.split(","):
            a, _, b = piece.partition(":")
            back += range(int(a), int(b or a) + 1)
    assert back == sorted(uids)


def test_pop3_pipelining_fetches_30_messages_in_at_most_8_round_trips(start_server):
    """mpop's pipelining (RFC 2449; mpop sends up to 100 commands before reading): 30 RETRs in one flight, so
    the whole first sync needs at most 8 round trips, on both servers; each message still checked byte for byte."""
    raws = [make_message(7, i, 3000 + 500 * i).raw for i in range(30)]
    server = start_server(raws)
    account = Destination(server.host, server.imap_port, server.pop3_port, server.account.user,
                          server.account.password, Catalog(raws))
    out = get_client("mpop").run(account, Device(), set())
    assert verbs(out).count("RETR") == 30 and out.bodies == 30 and out.result.integrity_ok
    assert out.result.metrics["round_trips"] <= 8, out.result.metrics["round_trips"]
    # the same sync one command at a time: one round trip per command
    serial = get_client("thunderbird-pop3").run(account, Device(), set())
    assert serial.result.metrics["round_trips"] == serial.result.metrics["commands"] >= 37
