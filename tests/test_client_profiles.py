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


def sessions(client, server_kind, **kw):
    (_first_phase, first), (_next_phase, nxt) = client_sessions(client, server_kind, messages=4, sizes="fixed-5k",
                                                              seed=1, read_fraction=0.5, **kw)
    assert all(e.ok for o in (first, nxt) for e in o.result.exchanges)
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


def test_neomutt(server_kind):
    first, nxt = sessions("neomutt", server_kind)
    header = re.compile(r"UID FETCH (\d+):\* \(UID FLAGS INTERNALDATE RFC822\.SIZE BODY\.PEEK\[HEADER\.FIELDS "
                        r"\(DATE FROM SENDER SUBJECT TO CC MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION "
                        r"IN-REPLY-TO REPLY-TO LINES LIST-POST LIST-SUBSCRIBE LIST-UNSUBSCRIBE X-LABEL "
                        r"X-ORIGINAL-TO\)\]\)")
    assert [header.fullmatch(c).group(1) for c in commands(first) if header.fullmatch(c)] == ["1"]
    assert "UID FETCH 1:4 (UID FLAGS)" in commands(nxt)
    assert [header.fullmatch(c).group(1) for c in commands(nxt) if header.fullmatch(c)] == ["5"]
    opened = [c for c in commands(first) if c.endswith("BODY.PEEK[]")]
    assert len(opened) == 2 and first.bodies == 2 and nxt.bodies == 0  # header-first: bodies only when read


def test_mbsync(server_kind):
    first, nxt = sessions("mbsync", server_kind)
    for o in (first, nxt):
        assert "UID FETCH 1:* (UID FLAGS)" in commands(o)
    assert [c for c in commands(nxt) if "BODY.PEEK[]" in c] == ["UID FETCH 5 (UID BODY.PEEK[])",
                                                                "UID FETCH 6 (UID BODY.PEEK[])"]


@pytest.mark.parametrize("client, first_verbs", [
    ("thunderbird-pop3", ["CAPA", "USER", "PASS", "STAT", "LIST", "UIDL", "RETR", "RETR", "RETR", "RETR",
                          "QUIT"]),
    ("thunderbird-pop3-headers", ["CAPA", "USER", "PASS", "STAT", "LIST", "UIDL", "TOP", "TOP", "TOP", "TOP",
                                  "RETR", "RETR", "QUIT"]),
    ("k9-pop3", ["USER", "PASS", "STAT", "UIDL", "LIST", "RETR", "RETR", "RETR", "RETR", "QUIT"]),
    ("pop3-delete", ["CAPA", "USER", "PASS", "STAT", "LIST", "UIDL", "RETR", "RETR", "RETR", "RETR", "DELE",
                     "DELE", "DELE", "DELE", "QUIT"]),
])
def test_pop3_profiles(server_kind, client, first_verbs):
    first, nxt = sessions(client, server_kind)
    assert verbs(first) == first_verbs
    fetched_again = [c for c in commands(nxt) if c.split()[0] in ("RETR", "TOP")]
    if client == "pop3-delete":
        assert fetched_again == ["RETR 1", "RETR 2"]  # the maildrop now holds only the 2 new messages
    else:  # UIDL memory: only the 2 new ones
        assert [c.split()[1] for c in fetched_again] == ["5", "6"]
    if client == "thunderbird-pop3-headers":
        assert all(c.endswith(" 0") for c in commands(first) if c.startswith("TOP"))


def test_every_profile_is_a_frozen_value_whose_behaviours_cite_their_source():
    import dataclasses

    cited = re.compile(r"\.(cpp|js|kt|java|c|mjs|conf)\b|RFC \d+")
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
