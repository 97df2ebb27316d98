"""The header fields mail gathers on its way to a mailbox: Received chain, DKIM and ARC, Authentication-Results, List-* and X- fields.

Why a module of its own: what header-first access lists is the header block, and the block a message has when it
reaches a mailbox is several times larger than the one its author's client wrote. Measured on real mail (below),
the header of a delivered message has a median of 7,273 bytes, while a minimal hand-written header (the
``minimal`` control of :func:`mailstudy.corpus.generate`) has about 310. A study that lists headers with the
minimal control understates the listing's cost about twenty times.

Source, measured by us on public real messages available offline: the archive
``linux-mailinglist-archives/linux-integrity.vger.kernel.org.0`` on GitHub (a public-inbox style git archive:
each commit holds one message, as received by the archiving mailbox ``lists@lfdr.de``, in the file ``m``), at
commit ``90ce6c9532d2fef2f36621a4daaf1435f4f513d2``; the newest 1,000 messages (7 March to 14 July 2026). The
header block is everything up to and including the empty line that ends it (:mod:`mailstudy.corpus.sections`),
with line ends made CRLF as IMAP and POP3 carry them. What we measured:

- header block: median 7,273 B, mean 7,913 B; deciles 5,482 / 6,022 / 6,440 / 6,820 / 7,273 / 8,443 / 8,925 /
  9,521 / 10,458 B; smallest 4,952 B, 99th percentile 14,164 B, largest 17,877 B (:data:`HEADER_BLOCK_CDF`);
- 41 fields (median); 7 Received fields (median; deciles 6, 6, 6, 7, 7, 7, 8, 9, 13);
- bytes per family of fields (medians): Received 1,586; ARC-* 958; DKIM-Signature and X-Google-DKIM-Signature
  574; Authentication-Results 416; List-*, Precedence and X-Mailing-List 251; the receiving spam filter's
  X-Spamd-Result and X-Rspamd-* 1,308; other X- fields 967; the rest (From, To, Cc, References, ...) 1,089;
- share of messages carrying a field: Received, ARC-Seal/-Message-Signature/-Authentication-Results,
  Authentication-Results, List-Id/-Subscribe/-Unsubscribe, X-Spamd-Result 100 %; DKIM-Signature 89.5 %;
  References and In-Reply-To 86.5 %; X-Google-DKIM-Signature 21.7 %, X-Gm-Message-State and X-Received 22.4 %.

This is mailing-list mail received by one mailbox that runs a spam filter (rspamd) which writes a long report:
a heavy but ordinary case. Issue 17 estimated "about 3.4 KB" for ordinary mail without giving a source; we use
the measured figure and keep the minimal control beside it so the difference can always be shown.

How the model uses it (our construction): each message draws a target size for its whole header block from
:data:`HEADER_BLOCK_CDF` (linear between the measured points), then builds the fields above with the measured
shares and sizes of real fields (hops, signatures of real lengths, base64 of seeded random bytes), and pads the
spam filter's report (``X-Spamd-Result``, one symbol per folded line, as rspamd writes it) so the block reaches
its target to the byte. The fields are inserted above the author's own header (From, To, Subject, Date,
Message-ID, MIME fields), as MTAs prepend them. They depend only on the seed and the message's index, never on its
size, so :func:`arrival_fields` can be computed without building the message.

Every line is shorter than 78 characters (folded with a tab), all of it 7-bit ASCII, and no line starts with
``From `` (so mbox round trips stay exact).
"""

from __future__ import annotations

import base64
import bisect
import random
from datetime import datetime, timedelta, timezone

__all__ = ["HEADER_MODELS", "HEADER_BLOCK_CDF", "MEASURED_MEDIAN_HEADER", "AUTHOR_HEADER_NOMINAL",
           "arrival_fields"]

#: The header models :func:`mailstudy.corpus.generate` knows: ``realistic`` (the default: mail as it arrives,
#: this module) and ``minimal`` (the control: only the fields the author's client writes).
HEADER_MODELS = ("realistic", "minimal")

#: (share of messages whose header block is at most this size, size in bytes), measured (see the docstring):
#: the smallest, the nine deciles, the 99th percentile and the largest of 1,000 real messages.
HEADER_BLOCK_CDF: tuple[tuple[float, int], ...] = (
    (0.0, 4952), (0.1, 5482), (0.2, 6022), (0.3, 6440), (0.4, 6820), (0.5, 7273), (0.6, 8443), (0.7, 8925),
    (0.8, 9521), (0.9, 10458), (0.99, 14164), (1.0, 17877),
)
MEASURED_MEDIAN_HEADER = 7273  # bytes: the median header block of the source (the test compares against it)
#: Bytes of the author's own header (From, To, Subject, Date, Message-ID, MIME fields) that the arrival fields
#: leave room for: ours, the typical size of the minimal control's header (it varies by about 100 B).
AUTHOR_HEADER_NOMINAL = 330
#: Received fields per message: the measured deciles (6, 6, 6, 7, 7, 7, 8, 9, 13) and, as ours, 13 again for the
#: top tenth (the measurement's 90th percentile; the longest chains are mail that looped through forwarders).
RECEIVED_COUNTS = (6, 6, 6, 7, 7, 7, 8, 9, 13, 13)
DKIM_SHARE = 0.895
GOOGLE_SHARE = 0.22
REFERENCES_SHARE = 0.865

_LIST = "lists.example.net"
_MX = "mx.example.org"
_TO = "alice@example.org"
_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PEOPLE = ("bob.baker", "carol.chen", "dave.dubois", "erin.evans", "frank.fischer", "grace.garcia",
           "heidi.hansen", "ivan.ivanov", "judy.jones", "niaj.nakamura", "olivia.okafor", "peggy.patel")
_SENDER_DOMAINS = ("example.com", "example.net", "mail.example.com", "corp.example.net")
#: Symbols of rspamd's report, with the kind of argument each carries (their names as rspamd writes them).
_SYMBOLS = (
    ("ARC_ALLOW", "-1.00", "{list}:s=arc-20240116:i=2"), ("DMARC_POLICY_ALLOW", "-0.50", "{dom},none"),
    ("R_DKIM_ALLOW", "-0.20", "{dom}:s=20251104"), ("R_SPF_ALLOW", "-0.20", "+ip4:{ip}:c"),
    ("MAILLIST", "-0.15", "generic"), ("MIME_GOOD", "-0.10", "text/plain"), ("HAS_LIST_UNSUB", "-0.01", ""),
    ("RCVD_TLS_LAST", "0.00", ""), ("FROM_HAS_DN", "0.00", ""), ("TO_DN_SOME", "0.00", ""),
    ("MIME_TRACE", "0.00", "0:+"), ("DKIM_TRACE", "0.00", "{dom}:+"), ("PRECEDENCE_BULK", "0.00", ""),
    ("FORWARDED", "0.00", "lists@{mx}"), ("RCVD_COUNT_FIVE", "0.00", "{hops}"),
    ("RCPT_COUNT_SEVEN", "0.00", "{rcpts}"), ("TAGGED_FROM", "0.00", "bounces-{num}-lists"),
    ("FROM_NEQ_ENVFROM", "0.00", "{who}@{dom},list@{list}"), ("ASN", "0.00", "asn:{asn}, ipnet:{ip}/20"),
    ("MID_RHS_MATCH_FROM", "0.00", ""), ("ARC_NA", "0.00", ""), ("NEURAL_HAM", "-0.00", "-0.998"),
)
_MAX_LINE = 77


def _date(when: datetime) -> str:
    """RFC 5322 date in UTC, locale-independent."""
    return (f"{_DAYS[when.weekday()]}, {when.day:2d} {_MONTHS[when.month - 1]} {when.year} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} +0000")


def _field(name: str, tokens: list[str]) -> str:
    """``name: tokens...`` folded greedily into lines of at most 77 characters (continuations start with a tab);
    the field ends with CRLF. Every token must fit on a continuation line."""
    lines, cur = [], f"{name}:"
    for tok in tokens:
        if len(cur) + 1 + len(tok) <= _MAX_LINE:
            cur += " " + tok
        else:
            lines.append(cur)
            cur = "\t" + tok
    lines.append(cur)
    return "\r\n".join(lines) + "\r\n"


def _blob(rng: random.Random, nbytes: int, prefix: str = "b=", suffix: str = "") -> list[str]:
    """A base64 value of ``nbytes`` seeded random bytes split into tokens that fold (signatures fold anywhere)."""
    text = prefix + base64.b64encode(rng.randbytes(nbytes)).decode("ascii") + suffix
    return [text[i:i + 70] for i in range(0, len(text), 70)]


def _ip(rng: random.Random) -> str:
    return f"{rng.choice((209, 198, 185, 172, 149))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}X}"


def _hop(rng: random.Random, frm: str, by: str, when: datetime, tls: bool, ident: str) -> str:
    tokens = [f"from {frm} ({frm} [{_ip(rng)}])"]
    if tls:
        tokens += ["(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384", "(256/256 bits)", "key-exchange X25519",
                   "server-signature RSA-PSS (2048 bits))", "(No client certificate requested)"]
    tokens += [f"by {by} (Postfix) with {'ESMTPS' if tls else 'ESMTP'} id {ident}", f"for <{_TO}>;", _date(when)]
    return _field("Received", tokens)


def _symbol_line(name: str, score: str, arg: str) -> str:
    return f"\t{name}({score})[{arg}];"


def _exact_symbol(rng: random.Random, n: int) -> str:
    """A report line (tab included, CRLF excluded) of exactly ``n`` characters, 20 <= n <= 77."""
    pad = n - len(_symbol_line("BAYES_HAM", "-3.00", ""))
    arg = str(rng.randrange(10 ** (pad - 1), 10 ** pad)) if pad > 0 else ""
    line = _symbol_line("BAYES_HAM", "-3.00", arg)
    assert len(line) == n, (line, n)
    return line


def _report(rng: random.Random, nbytes: int, subs: dict) -> str:
    """The spam filter's ``X-Spamd-Result`` field of exactly ``nbytes`` bytes (CRLFs included): the verdict on
    its first line, then one symbol per folded line, the last padded to the byte. ``nbytes`` >= 75."""
    first = "X-Spamd-Result: default: False [-0.66 / 15.00];"
    lines = [first]
    left = nbytes - len(first) - 2
    order = list(_SYMBOLS)
    rng.shuffle(order)
    k = 0
    while left > (_MAX_LINE + 2) + (20 + 2):
        name, score, arg = order[k % len(order)]
        k += 1
        line = _symbol_line(name if k <= len(order) else f"{name}_{k}", score, arg.format(**subs))[:_MAX_LINE]
        if not line.endswith("];"):
            line = line[:_MAX_LINE - 2] + "];"
        lines.append(line)
        left -= len(line) + 2
    # 22 <= left <= 2 * 79: one or two exact lines
    if left > _MAX_LINE + 2:
        first_part = left // 2
        lines.append(_exact_symbol(rng, first_part - 2))
        left -= first_part
    lines.append(_exact_symbol(rng, left - 2))
    out = "\r\n".join(lines) + "\r\n"
    assert len(out) == nbytes, (len(out), nbytes)
    return out


def header_target(rng: random.Random) -> int:
    """A whole header block's size in bytes, drawn from :data:`HEADER_BLOCK_CDF` (linear between its points)."""
    u = rng.random()
    shares = [p for p, _ in HEADER_BLOCK_CDF]
    i = min(max(bisect.bisect_right(shares, u) - 1, 0), len(shares) - 2)
    (p0, s0), (p1, s1) = HEADER_BLOCK_CDF[i], HEADER_BLOCK_CDF[i + 1]
    return round(s0 + (u - p0) / (p1 - p0) * (s1 - s0))


def arrival_fields(seed: int, index: int) -> bytes:
    """The fields message ``index`` of the corpus with ``seed`` gathers on its way (CRLF-ended lines, no
    empty line): to be inserted above the author's header. Seeded by ``(seed, index)`` alone."""
    rng = random.Random(f"mailstudy-corpus/{seed}/{index}/arrival")
    target = header_target(rng) - AUTHOR_HEADER_NOMINAL
    when = _EPOCH + timedelta(seconds=random.Random(f"mailstudy-corpus/{seed}/epoch").randrange(180 * 86400)
                              + index * 3600 + rng.randrange(3600))
    who = rng.choice(_PEOPLE)
    dom = rng.choice(_SENDER_DOMAINS)
    num = rng.randrange(100000, 999999)
    bounce = f"list+bounces-{num}-alice=example.org@{_LIST}"
    hops = rng.choice(RECEIVED_COUNTS)
    google = rng.random() < GOOGLE_SHARE
    first_mta = f"mail-{rng.choice(('lj1', 'wr1', 'pf1', 'io1'))}-f{rng.randrange(10, 250)}.google.com" if google \
        else f"smtp{rng.randrange(1, 9)}.{dom}"

    top: list[str] = [_field("Return-Path", [f"<{bounce}>"]), _field("Delivered-To", [_TO])]
    # the chain, newest first: our MX's LMTP hop, the MX, list servers, then the sender's own hops
    t = when + timedelta(seconds=5 * (hops + 2))
    top.append(_field("Received", [f"from {_MX}", f"by {_MX} with LMTP", f"id {base64.b64encode(rng.randbytes(12)).decode()}",
                                   f"(envelope-from <{bounce}>)", f"for <{_TO}>;", _date(t)]))
    top.append(_field("X-Original-To", [_TO]))
    chain_hosts = [("lists-out.example.net", _MX, True), ("smtp.subspace.example.net", "lists-out.example.net", False),
                   ("localhost.localdomain", "smtp.subspace.example.net", False),
                   (first_mta, "smtp.subspace.example.net", True)]
    extra = max(0, hops - 1 - len(chain_hosts) - 1)
    chain_hosts += [(f"relay{j}.{dom}", f"relay{j - 1}.{dom}" if j else first_mta, rng.random() < 0.5)
                    for j in range(extra)]
    received = []
    for j, (frm, by, tls) in enumerate(chain_hosts[: hops - 2]):
        received.append(_hop(rng, frm, by, t - timedelta(seconds=5 * (j + 1)), tls, _hex(rng, 10)))
    origin = chain_hosts[hops - 3][0] if hops - 2 > len(chain_hosts[:4]) else first_mta  # the deepest relay
    received.append(_field("Received", [f"by {origin} with SMTP id {_hex(rng, 8).lower()}.{rng.randrange(1, 9)}",
                                        f"for <list@{_LIST}>;", _date(when)]))
    auth = _field("Authentication-Results", [
        f"{_MX};", f"dkim=pass header.d={dom} header.s=20251104 header.b=\"{_blob(rng, 6, '')[0][:8]}\";",
        f"dmarc=pass (policy=none) header.from={dom};",
        "spf=pass", f"({_MX}: domain of", f"\"{bounce}\"", f"designates {_ip(rng)} as permitted sender)",
        f"smtp.mailfrom=\"{bounce}\";", f"arc=pass (\"subspace.example.net:s=arc-20240116:i=2\")"])
    arc2 = [
        _field("ARC-Seal", ["i=2;", "a=rsa-sha256;", "d=subspace.example.net;", "s=arc-20240116;",
                            f"t={int(when.timestamp())};", "cv=pass;", *_blob(rng, 128)]),
        _field("ARC-Message-Signature", ["i=2;", "a=rsa-sha256;", "d=subspace.example.net;", "s=arc-20240116;",
                                         f"t={int(when.timestamp())};", "c=relaxed/simple;", *_blob(rng, 32, "bh=", ";"),
                                         "h=MIME-Version:References:In-Reply-To:From:Date:Message-ID:Subject:",
                                         "To:Cc:Content-Type;", *_blob(rng, 128)]),
        _field("ARC-Authentication-Results", ["i=2;", "smtp.subspace.example.net;",
                                              f"dmarc=pass (p=none dis=none) header.from={dom};",
                                              f"spf=pass smtp.mailfrom={dom};", "dkim=pass (2048-bit key)",
                                              f"header.d={dom} header.i=@{dom} header.b=abcd1234;", "arc=none",
                                              f"smtp.client-ip={_ip(rng)}"]),
    ]
    signed = []
    if rng.random() < DKIM_SHARE:
        signed.append(_field("DKIM-Signature", [
            "v=1;", "a=rsa-sha256;", "c=relaxed/relaxed;", f"d={dom};", "s=20251104;",
            f"t={int(when.timestamp())};", f"x={int(when.timestamp()) + 604800};", f"darn={_LIST};",
            "h=content-transfer-encoding:cc:to:subject:message-id:date:from",
            ":in-reply-to:references:mime-version:from:to:cc:subject:date", ":message-id:reply-to;",
            *_blob(rng, 32, "bh=", ";"), *_blob(rng, 256)]))
    if google:
        signed.append(_field("X-Google-DKIM-Signature", [
            "v=1;", "a=rsa-sha256;", "c=relaxed/relaxed;", "d=1e100.net;", "s=20251104;",
            f"t={int(when.timestamp())};", "h=content-transfer-encoding:cc:to:subject:message-id:date:from",
            ":in-reply-to:references:mime-version:x-gm-message-state:from;", *_blob(rng, 32, "bh=", ";"),
            *_blob(rng, 256)]))
        signed.append(_field("X-Gm-Message-State", _blob(rng, 96, "AOJu0Y")))
        signed.append(_field("X-Received", [f"by 2002:a05:6512:{rng.randrange(4096):x}:b0:{rng.randrange(4096):x}",
                                            f"with SMTP id {_hex(rng, 20).lower()}.{rng.randrange(10)};",
                                            _date(when)]))
    lists = [_field("Precedence", ["bulk"]), _field("X-Mailing-List", [f"list@{_LIST}"]),
             _field("List-Id", [f"<list.{_LIST}>"]), _field("List-Subscribe", [f"<mailto:list+subscribe@{_LIST}>"]),
             _field("List-Unsubscribe", [f"<mailto:list+unsubscribe@{_LIST}>"])]
    rcpts = rng.randrange(1, 12)
    author = [_field("Cc", [f"{rng.choice(_PEOPLE)}@{rng.choice(_SENDER_DOMAINS)}," for _ in range(rcpts)]
                     + [f"list@{_LIST}"])]
    if rng.random() < REFERENCES_SHARE:
        refs = [f"<{_hex(rng, 16).lower()}.{rng.randrange(10 ** 6)}@{dom}>" for _ in range(rng.randrange(1, 5))]
        author += [_field("References", refs), _field("In-Reply-To", [refs[-1]])]
    author.append(_field("X-Mailer", [f"git-send-email 2.{rng.randrange(40, 52)}.{rng.randrange(4)}"])
                  if rng.random() < 0.5 else _field("User-Agent", ["Mozilla Thunderbird"]))
    tail = [_field("X-Rspamd-Server", ["mx"]), _field("X-Rspamd-Queue-Id", [_hex(rng, 11)]),
            _field("X-Rspamd-Action", ["no action"])]

    fixed = top + received[:1] + [auth] + received[1:3] + arc2 + received[3:] + signed + lists + author + tail
    used = sum(len(f) for f in fixed)
    left = target - used
    if left >= 75:
        subs = dict(list=_LIST, dom=dom, ip=_ip(rng), mx=_MX, hops=hops, rcpts=rcpts + 1, num=num, who=who,
                    asn=rng.randrange(1000, 65000))
        fixed.insert(len(fixed) - len(tail), _report(rng, left, subs))
    return "".join(fixed).encode("ascii")
