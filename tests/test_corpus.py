"""Tests for mailstudy.corpus: seeded mailboxes must be byte-identical everywhere, exactly sized and valid mail.

Why: every byte count a study reports depends on these messages; if a seed drifts, every exact assertion
downstream (and every published chart) drifts with it.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import mailbox
import random
import re

import pytest

from mailstudy.corpus import arrival
from mailstudy.corpus import synthetic as c
from mailstudy.corpus import CorpusError, Corpus, Message, SIZE_PRESETS, estimate_bytes, generate, load, save_eml


@pytest.fixture(scope="module")
def mixed() -> Corpus:
    """300 buchner2009 messages (the default, realistic headers): enough for every MIME structure, dot lines and
    encoded words to appear."""
    return generate(300, "buchner2009", seed=11)


@pytest.fixture(scope="module")
def minimal() -> Corpus:
    """The same 300 messages with the minimal control's headers."""
    return generate(300, "buchner2009", seed=11, headers="minimal")


def _lines(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\r\n")
    return raw[:-2].split(b"\r\n")


# -- determinism ---------------------------------------------------------------------------------------------

def test_same_seed_gives_identical_messages_and_another_seed_different_ones():
    a = [m.sha256 for m in generate(40, "buchner2009", seed=7)]
    b = [m.sha256 for m in generate(40, "buchner2009", seed=7)]
    other = [m.sha256 for m in generate(40, "buchner2009", seed=8)]
    assert a == b
    assert len(set(a)) == 40
    assert not set(a) & set(other)


def test_a_shorter_corpus_is_a_prefix_of_a_longer_one():
    assert generate(12, "lognormal", seed=3)[:5].raws() == generate(5, "lognormal", seed=3).raws()


@pytest.mark.parametrize("headers,digest", [
    ("minimal", "2134f4636336e2016734d4281a7332557bd6aa11fc1e2d97f6753c56f7ebee1b"),  # unchanged since before
    ("realistic", "2318ce12ae18fa25846198891cd8ccb4d9c74f9f9266f99204170cf0366dae71"),
])
def test_regression_fixed_5k_seed_1_hash(headers, digest):
    """Pasted once from a run of this code: guards byte-for-byte determinism across machines, Python builds and
    refactors. If this fails, the same seed no longer gives the same mailbox, so every exact byte count and
    every stored result built from a seed is invalidated: change it only on purpose, and say so. The minimal
    control's digest is the one every corpus had before the realistic header model became the default."""
    corpus = generate(3, "fixed-5k", seed=1, headers=headers)
    joined = "".join(m.sha256 for m in corpus)
    assert hashlib.sha256(joined.encode("ascii")).hexdigest() == digest


def test_regression_buchner2009_first_sizes():
    """Pasted once: the first draws of the buchner2009 sampler for seed 0, guarding the decimal interpolation
    (sizes must not depend on the platform's libm)."""
    rng = random.Random(0)
    assert [SIZE_PRESETS["buchner2009"](rng) for _ in range(8)] == [
        37808, 17242, 3378, 2184, 4404, 3239, 21803, 2462]


# -- sizes ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", sorted(SIZE_PRESETS))
def test_each_message_is_exactly_its_drawn_size(preset):
    """Minimal: the drawn size. Realistic: the drawn size (the author's part) plus the arrival fields on top."""
    rng = random.Random(5)
    drawn = [SIZE_PRESETS[preset](rng) for _ in range(60)]
    corpus = generate(60, preset, seed=5, headers="minimal")
    assert [m.size for m in corpus] == drawn
    assert corpus.total_bytes == sum(drawn) == estimate_bytes(60, preset, 5, "minimal")
    real = generate(60, preset, seed=5)
    extra = [len(arrival.arrival_fields(5, i)) for i in range(60)]
    assert [m.size for m in real] == [d + e for d, e in zip(drawn, extra)]
    assert real.total_bytes == estimate_bytes(60, preset, 5) and real.headers == "realistic"
    for m, a, e in zip(real, corpus, extra):
        assert m.raw.startswith(arrival.arrival_fields(5, m and real.messages.index(m)))
        assert len(m.raw) - e == a.size


def test_lognormal_parameters_are_used_and_sizes_exact():
    small = generate(50, "lognormal", seed=2, lognormal_mu=7.0, lognormal_sigma=0.1, headers="minimal")
    large = generate(50, "lognormal", seed=2, lognormal_mu=10.0, lognormal_sigma=0.1, headers="minimal")
    rng = random.Random(2)
    assert [m.size for m in small] == [c.lognormal_size(rng, 7.0, 0.1) for _ in range(50)]
    assert max(m.size for m in small) < 1600 < 16000 < min(m.size for m in large)


def test_fixed_5k_is_5120_bytes_every_time():
    assert {m.size for m in generate(50, "fixed-5k", seed=9, headers="minimal")} == {5120}


def test_buchner2009_empirical_cdf_matches_the_paper_within_3_points():
    rng = random.Random(2009)
    draws = [SIZE_PRESETS["buchner2009"](rng) for _ in range(4000)]
    for size, share in [(2048, 0.235), (4096, 0.492), (8192, 0.676), (65536, 0.905), (1048576, 0.985)]:
        below = sum(d < size for d in draws) / len(draws)
        assert abs(below - share) <= 0.03, (size, below, share)
    assert min(draws) >= 900
    assert max(draws) <= c.MAX_SIZE
    assert max(draws) > 1048576  # the tail beyond 1 MiB is really drawn


@pytest.fixture(scope="module")
def many_buchner() -> list[int]:
    rng = random.Random(2024)
    return [SIZE_PRESETS["buchner2009"](rng) for _ in range(100_000)]


def test_buchner2009_follows_every_published_point_and_the_papers_tail(many_buchner):
    """Each published point within 0.5 percentage points over 100,000 draws (the sampling error is at most 0.16);
    above 2 MiB 0.04 % as the paper has it (0.02 to 0.07 %: 40 draws expected, Poisson spread); before this
    change the preset put 1.03 % above 2 MiB."""
    n = len(many_buchner)
    for size, share in c.BUCHNER2009_CDF[1:-1]:
        below = sum(d < size for d in many_buchner) / n
        assert abs(below - share) <= 0.005, (size, below, share)
    above = sum(d > 2 * 1024 * 1024 for d in many_buchner) / n
    assert 0.0002 <= above <= 0.0007, above
    assert c.BUCHNER2009_ABOVE_2MIB == 0.0004
    assert max(many_buchner) <= c.MAX_SIZE


def test_buchner2009_mean_against_the_paper(many_buchner):
    """The paper's mean is about 52 KiB (as issue 17 quotes it; before this change the preset's was about 95 KiB).
    Through the published points with our log-linear interpolation the exact mean is 59.6 KiB, 14.6 % above the
    paper's: the shape between the points (64 KiB to 2 MiB carries most of the mean) is ours, and a power-law
    interpolation would give 44.5 KiB instead. The drawn mean must agree with the exact one within 5 % (the
    heavy tail makes a sample mean noisy: 100,000 draws hold about 40 above 2 MiB)."""
    exact = c.cdf_mean(c.BUCHNER2009_CDF)
    assert round(exact / 1024, 1) == 59.6
    assert 1.14 <= exact / c.BUCHNER2009_MEAN <= 1.15
    mean = sum(many_buchner) / len(many_buchner)
    assert abs(mean - exact) / exact <= 0.05, mean / 1024


def test_lists2026_follows_its_measured_points():
    rng = random.Random(7)
    draws = [SIZE_PRESETS["lists2026"](rng) for _ in range(20_000)]
    for size, share in c.LISTS2026_CDF[1:-1]:
        below = sum(d <= size for d in draws) / len(draws)
        assert abs(below - share) <= 0.015, (size, below, share)
    assert sum(d == c.MIN_SIZE for d in draws) / len(draws) == pytest.approx(0.1, abs=0.01)  # the floor (ours)
    assert sorted(draws)[len(draws) // 2] == pytest.approx(2705, rel=0.03)  # the measured median body


# -- header model --------------------------------------------------------------------------------------------

def test_default_median_header_block_matches_the_measured_source_within_10_percent(mixed, minimal):
    """Done-when of issue 17 item 1: the default corpus's median header block is within 10 % of the real mail it
    is modelled on (7,273 B, :mod:`mailstudy.corpus.arrival`); the minimal control is about 310 B."""
    headers = sorted(len(m.header_bytes) for m in mixed)
    median = (headers[149] + headers[150]) / 2
    assert abs(median - arrival.MEASURED_MEDIAN_HEADER) / arrival.MEASURED_MEDIAN_HEADER <= 0.10, median
    assert min(headers) >= 4500 and max(headers) <= 19000
    small = sorted(len(m.header_bytes) for m in minimal)
    assert 250 <= small[150] <= 400


def test_realistic_headers_carry_the_blocks_real_mail_carries(mixed):
    counts = {"received": [], "dkim-signature": 0, "arc-seal": 0, "authentication-results": 0, "list-id": 0,
              "x-spamd-result": 0, "references": 0}
    for m in mixed:
        names = [ln.split(b":", 1)[0].lower().decode() for ln in m.header_bytes.split(b"\r\n")
                 if ln and ln[:1] not in (b" ", b"\t")]
        counts["received"].append(names.count("received"))
        for k in counts:
            if k != "received" and k in names:
                counts[k] += 1
        assert names.index("received") < names.index("from")  # transit fields above the author's
    assert min(counts["received"]) >= 6 and max(counts["received"]) <= 13
    assert sorted(counts["received"])[150] == 7  # the measured median
    assert counts["arc-seal"] == counts["authentication-results"] == counts["list-id"] == 300
    assert 0.84 <= counts["dkim-signature"] / 300 <= 0.95  # measured 89.5 %
    assert 0.80 <= counts["references"] / 300 <= 0.93  # measured 86.5 %
    assert counts["x-spamd-result"] >= 240  # measured 100 %; ours omits it when the other fields reach the target


def test_arrival_fields_depend_on_seed_and_index_only():
    assert arrival.arrival_fields(3, 4) == arrival.arrival_fields(3, 4)
    assert arrival.arrival_fields(3, 4) != arrival.arrival_fields(3, 5) != arrival.arrival_fields(4, 4)
    small = c.make_message(3, 4, 1200)
    large = c.make_message(3, 4, 200_000)
    assert small.raw.startswith(arrival.arrival_fields(3, 4)) and large.raw.startswith(arrival.arrival_fields(3, 4))
    with pytest.raises(CorpusError, match="unknown header model 'fancy'"):
        generate(2, headers="fancy")


def test_floor_of_900_bytes_is_respected_and_such_messages_are_valid():
    corpus = generate(40, "lognormal", seed=4, lognormal_mu=5.0, lognormal_sigma=1.0, headers="minimal")
    assert min(m.size for m in corpus) == 900
    assert all(m.size >= 900 for m in corpus)
    for m in corpus:
        assert not email.message_from_bytes(m.raw).defects


def test_bad_arguments_give_corpus_errors():
    with pytest.raises(CorpusError, match="unknown size preset 'huge'"):
        generate(3, "huge")
    with pytest.raises(CorpusError, match="n must be"):
        generate(-1)
    assert issubclass(CorpusError, ValueError)
    assert len(generate(0)) == 0


# -- message form --------------------------------------------------------------------------------------------

def test_crlf_only_short_lines_and_no_from_lines(mixed):
    for m in mixed:
        assert re.search(rb"(?<!\r)\n", m.raw) is None  # no bare LF
        assert re.search(rb"\r(?!\n)", m.raw) is None  # no bare CR
        assert m.raw.endswith(b"\r\n")
        for line in _lines(m.raw):
            assert len(line) < 78, line
            assert not line.startswith(b"From ")


def test_messages_parse_without_defects_and_are_multipart_above_16k(minimal):
    """The minimal control: plain text up to 16 KiB, above it text and one base64 attachment."""
    kinds = set()
    for m in minimal:
        for pol in (email.policy.compat32, email.policy.default):
            msg = email.message_from_bytes(m.raw, policy=pol)
            for part in msg.walk():
                assert not part.defects, (m.message_id, part.defects)
        msg = email.message_from_bytes(m.raw)
        if m.size > c.MULTIPART_THRESHOLD:
            assert msg.get_content_type() == "multipart/mixed"
            parts = msg.get_payload()
            assert [p.get_content_type() for p in parts] == ["text/plain", "application/octet-stream"]
            data = parts[1].get_payload(decode=True)
            assert len(data) > 8000
            b64 = parts[1].get_payload().split("\r\n")
            assert all(len(x) == 76 for x in b64[:-2])  # all full lines but the last
            kinds.add("multipart")
        else:
            assert msg.get_content_type() == "text/plain"
            kinds.add("plain")
    assert kinds == {"multipart", "plain"}


def test_realistic_bodies_have_varied_mime_structures_and_parse_without_defects(mixed):
    structures = set()
    for m in mixed:
        for pol in (email.policy.compat32, email.policy.default):
            msg = email.message_from_bytes(m.raw, policy=pol)
            for part in msg.walk():
                assert not part.defects, (m.message_id, part.defects)
        msg = email.message_from_bytes(m.raw, policy=email.policy.default)
        types = [p.get_content_type() for p in msg.walk()]
        structures.add(types[0])
        if "message/rfc822" in types:
            structures.add("forward")
            fwd = next(p for p in msg.walk() if p.get_content_type() == "message/rfc822")
            assert fwd.get_content()["Message-ID"]
        for p in msg.walk():
            if p.get("Content-Transfer-Encoding") == "base64":
                assert len(p.get_content()) > 4000
                structures.add("base64")
        if m.size - len(m.header_bytes) <= c.MULTIPART_THRESHOLD - 300:
            assert types[0] in ("text/plain", "multipart/alternative")
    assert structures == {"text/plain", "multipart/alternative", "multipart/mixed", "forward", "base64"}
    names = [m for m in mixed if re.search(rb"^From: =\?utf-8\?b\?", m.header_bytes, re.M)]
    assert names  # RFC 2047 display names
    for m in names:
        assert not str(email.message_from_bytes(m.header_bytes, policy=email.policy.default)["From"]).isascii()


def test_headers_and_properties(mixed):
    dates = []
    for i, m in enumerate(mixed):
        assert m.raw.startswith(m.header_bytes) and m.header_bytes.endswith(b"\r\n\r\n")
        assert b"\r\n\r\n" not in m.header_bytes[:-4]
        assert re.fullmatch(rf"<11-{i}\.[0-9a-f]{{16}}@mailstudy\.invalid>", m.message_id)
        assert m.sha256 == hashlib.sha256(m.raw).hexdigest()
        msg = email.message_from_bytes(m.header_bytes)
        assert msg["MIME-Version"] == "1.0" and msg["From"] and msg["To"]
        dates.append(email.utils.parsedate_to_datetime(msg["Date"]))
    assert dates == sorted(dates)
    assert len(mixed.by_sha256()) == len(mixed)
    assert mixed[3] is mixed.messages[3] and list(mixed)[3] is mixed[3]
    assert mixed.raws()[3] == mixed[3].raw


def test_some_subjects_are_encoded_words_decoding_to_non_ascii(mixed):
    encoded = [m for m in mixed if b"Subject: =?utf-8?b?" in m.header_bytes]
    assert 20 <= len(encoded) <= 130
    for m in encoded:
        assert not m.subject.isascii()
        m.header_bytes.decode("ascii")  # the header itself stays 7-bit
    assert any(m.subject and m.subject.isascii() for m in mixed)  # plain subjects too


def test_about_a_third_of_messages_have_lines_starting_with_a_dot(mixed):
    with_dots = [m for m in mixed if any(line.startswith(b".") for line in _lines(m.raw))]
    assert 0.2 * len(mixed) <= len(with_dots) <= 0.5 * len(mixed)
    assert any(b"." in _lines(m.raw) for m in with_dots)  # a line that is exactly "."
    assert any(b".." in _lines(m.raw) for m in with_dots)


# -- loading and saving --------------------------------------------------------------------------------------

def test_save_eml_then_load_round_trips(tmp_path):
    corpus = generate(25, "buchner2009", seed=21)
    save_eml(corpus, tmp_path / "eml")
    back = load(tmp_path / "eml")
    assert back.raws() == corpus.raws()
    assert back.preset == f"loaded:{tmp_path / 'eml'}" and back.seed is None
    with pytest.raises(CorpusError, match="already holds .eml files"):
        save_eml(corpus, tmp_path / "eml")
    assert load(tmp_path / "eml" / "000003.eml").raws() == [corpus[3].raw]


def test_mbox_loading_keeps_messages_and_normalises_line_ends(tmp_path):
    corpus = generate(15, "buchner2009", seed=22)
    path = tmp_path / "inbox.mbox"
    box = mailbox.mbox(str(path))
    for raw in corpus.raws():
        box.add(raw)
    box.add(b"From: x@example.com\nSubject: lf only\n\nFrom here on\nbye\n")
    box.flush()
    box.close()
    back = load(path)
    assert back.raws()[:15] == corpus.raws()
    assert back[15].raw == b"From: x@example.com\r\nSubject: lf only\r\n\r\n>From here on\r\nbye\r\n"
    assert back[15].subject == "lf only"


def test_maildir_loading(tmp_path):
    corpus = generate(15, "buchner2009", seed=23)
    box = mailbox.Maildir(str(tmp_path / "md"))
    for raw in corpus.raws():
        box.add(raw)
    box.close()
    back = load(tmp_path / "md")
    assert sorted(back.by_sha256()) == sorted(corpus.by_sha256())
    assert len(back) == 15


def test_maildir_order_compares_numbers_in_names(tmp_path):
    md = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "new" / "1000.M123P1Q2.host").write_bytes(b"Subject: second\n\nb\n")
    (md / "new" / "999.M9P1Q3.host").write_bytes(b"Subject: first\n\na\n")
    (md / "cur" / "1000.M5P1Q1.host:2,S").write_bytes(b"Subject: middle\n\nc\n")
    assert [m.subject for m in load(md)] == ["first", "middle", "second"]


def test_missing_paths_and_empty_folders_give_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such file or directory"):
        load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no mail in"):
        load(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("not mail")
    with pytest.raises(CorpusError, match="no mail in"):
        load(tmp_path / "junk")
    mailbox.Maildir(str(tmp_path / "emptymd")).close()
    with pytest.raises(CorpusError, match="holds no messages"):
        load(tmp_path / "emptymd")
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(CorpusError, match="not an mbox file"):
        load(tmp_path / "notes.txt")


def test_message_without_body_and_unknown_headers():
    m = Message(b"X-Other: 1\r\n")
    assert m.header_bytes == m.raw
    assert m.subject == "" and m.message_id == ""


@pytest.mark.parametrize("raw,header", [
    (b"A: 1\r\n\r\nbody\r\n", b"A: 1\r\n\r\n"),
    (b"\r\nno header at all\r\n", b"\r\n"),
    (b"", b""),
    (b"Subject: only a header\r\n", b"Subject: only a header\r\n"),
    (b"A: 1\r\n\r\n", b"A: 1\r\n\r\n"),
])
def test_one_definition_of_the_header_serves_corpus_client_and_pop3_server(raw, header):
    from mailstudy.corpus.sections import header_end, header_of
    from mailstudy.servers.pop3d import wire_form

    assert header_of(raw) == header and header_end(raw) == len(header)
    assert Message(raw).header_bytes == header
    assert wire_form(raw).top(0) == (header if header.endswith(b"\r\n") else header + b"\r\n")
