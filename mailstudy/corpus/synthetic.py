"""Seeded synthetic mailboxes with realistic sizes, byte-identical for a seed on any machine.

Why a module of its own: generating mail is the corpus's pure half; loading a user's mail from disk lives in
:mod:. The determinism rules are in the package docstring.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import math
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext
from email import policy
from email.parser import BytesHeaderParser
from functools import cached_property
from statistics import NormalDist
from typing import Callable, Iterator

from mailstudy.corpus.arrival import HEADER_MODELS, arrival_fields
from mailstudy.corpus.sections import CRLF, header_of
from mailstudy.errors import MailstudyError

MIN_SIZE = 900  # bytes: floor of every preset (a message smaller than this is mostly header anyway)
MAX_SIZE = 10 * 1024 * 1024  # bytes: cap of every preset (one unlucky draw must not ask for gigabytes)
MULTIPART_THRESHOLD = 16 * 1024  # bytes: larger messages become multipart/mixed with an attachment
DOT_FRACTION = 1 / 3  # share of messages with body lines starting with "."
NON_ASCII_SUBJECT_FRACTION = 1 / 4
MAX_LINE = 77  # longest line content (without CRLF) we generate: RFC 5322 says SHOULD be < 78


class CorpusError(MailstudyError, ValueError):
    """Bad corpus input (unknown preset, missing path, no mail found); the message says what to do."""


# -- messages and corpora ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """One RFC 5322 message as raw bytes with CRLF line ends, plus the views a study needs."""

    raw: bytes

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def header_bytes(self) -> bytes:
        """The header section with the empty line that ends it (:func:`mailstudy.corpus.sections.header_of`)."""
        return header_of(self.raw)

    @cached_property
    def _headers(self):
        return BytesHeaderParser(policy=policy.default).parsebytes(self.header_bytes)

    @cached_property
    def subject(self) -> str:
        """The Subject decoded (RFC 2047 encoded words turned into text); ``""`` when there is none."""
        try:
            value = self._headers["subject"]
            return "" if value is None else str(value)
        except Exception:  # a malformed header in loaded mail must not break a study: give it undecoded
            m = re.search(rb"^subject:[ \t]*((?:.*)(?:\r\n[ \t].*)*)", self.header_bytes,
                          re.IGNORECASE | re.MULTILINE)
            return re.sub(rb"\r\n[ \t]+", b" ", m.group(1)).strip().decode("latin-1") if m else ""

    @cached_property
    def message_id(self) -> str:
        """The Message-ID as written (``<...>``), unfolded and stripped; ``""`` when there is none."""
        m = re.search(rb"^message-id:[ \t]*((?:.*)(?:\r\n[ \t].*)*)", self.header_bytes,
                      re.IGNORECASE | re.MULTILINE)
        if not m:
            return ""
        return re.sub(rb"\r\n[ \t]+", b" ", m.group(1)).strip().decode("ascii", "replace")


@dataclass(frozen=True)
class Corpus:
    """An ordered mailbox: the messages, the preset they came from (or ``loaded:<path>``) and the seed."""

    messages: tuple[Message, ...]
    preset: str
    seed: int | None
    headers: str | None = None  # the header model of a generated corpus; None for mail loaded from disk

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def __getitem__(self, index):
        """An int gives a :class:`Message`; a slice gives a :class:`Corpus` with the same preset and seed."""
        if isinstance(index, slice):
            return Corpus(self.messages[index], self.preset, self.seed, self.headers)
        return self.messages[index]

    @property
    def total_bytes(self) -> int:
        return sum(m.size for m in self.messages)

    def by_sha256(self) -> dict[str, Message]:
        """Messages keyed by the SHA-256 of their bytes (identical messages share one key)."""
        return {m.sha256: m for m in self.messages}

    def raws(self) -> list[bytes]:
        """The raw bytes of every message, in order: what a server's ``mailboxes`` argument wants."""
        return [m.raw for m in self.messages]


# -- size presets --------------------------------------------------------------------------------------------

#: (size in bytes, share of messages smaller than that size), from J. Buchner (2009), "Modelling realistic email
#: traffic: email size distribution": 23.5 % under 2 KiB, 49.2 % under 4 KiB, 67.6 % under 8 KiB, 90.5 % under
#: 64 KiB, 98.5 % under 1 MiB, and 0.04 % above 2 MiB (the paper's largest point; the 2 MiB point and the paper's
#: mean of about 52 KiB are as issue 17 quotes the paper: we could not read the paper offline). Between points
#: the CDF is linear in log(size) (ours). Ours too: the 900 B floor (the CDF starts at 0 there) and the 10 MiB
#: cap (:data:`MAX_SIZE`) over which the paper's last 0.04 % is spread.
BUCHNER2009_CDF: tuple[tuple[int, float], ...] = (
    (MIN_SIZE, 0.0),
    (2 * 1024, 0.235),
    (4 * 1024, 0.492),
    (8 * 1024, 0.676),
    (64 * 1024, 0.905),
    (1024 * 1024, 0.985),
    (2 * 1024 * 1024, 0.9996),
    (MAX_SIZE, 1.0),
)
#: The paper's figures the preset is tested against (``tests/test_corpus.py``), as issue 17 quotes them.
BUCHNER2009_MEAN = 52 * 1024
BUCHNER2009_ABOVE_2MIB = 0.0004

#: (size in bytes, share of messages at most that size): the body sizes (everything after the header block, CRLF
#: line ends) of the same 1,000 real messages whose headers :mod:`mailstudy.corpus.arrival` measures (the
#: linux-integrity list archive at commit 90ce6c95, March to July 2026), measured by us: deciles 901 / 1,313 /
#: 1,671 / 2,181 / 2,705 / 3,527 / 4,213 / 5,712 / 8,827 B, 99th percentile 34,987 B, largest 334,422 B; mean
#: 5,090 B. Mailing-list mail (patches and their reviews): small bodies, few attachments. Ours: the 900 B floor
#: (the measured 10 % below 901 B are drawn at 900 B: the generator's author header alone takes about 310 B) and
#: log-linear interpolation between the measured points.
LISTS2026_CDF: tuple[tuple[int, float], ...] = (
    (MIN_SIZE, 0.1), (1313, 0.2), (1671, 0.3), (2181, 0.4), (2705, 0.5), (3527, 0.6), (4213, 0.7), (5712, 0.8),
    (8827, 0.9), (34987, 0.99), (334422, 1.0),
)


def _from_cdf(points: tuple[tuple[int, float], ...], rng: random.Random) -> int:
    """Inverse-CDF draw (one ``rng.random()``) from ``points`` (size, share), linear in log(size) between points;
    a draw below the first share gives the first size. Interpolation runs in ``decimal`` so the result is the
    same on every platform."""
    u = rng.random()
    cdf = [c for _, c in points]
    if u < cdf[0]:
        return points[0][0]
    i = min(max(bisect.bisect_right(cdf, u) - 1, 0), len(cdf) - 2)
    (s0, c0), (s1, c1) = points[i], points[i + 1]
    with localcontext() as ctx:
        ctx.prec = 40
        frac = (Decimal(u) - Decimal(c0)) / (Decimal(c1) - Decimal(c0))
        ln0, ln1 = Decimal(s0).ln(), Decimal(s1).ln()
        size = int((ln0 + frac * (ln1 - ln0)).exp().to_integral_value())
    return min(max(size, MIN_SIZE), MAX_SIZE)


def cdf_mean(points: tuple[tuple[int, float], ...]) -> float:
    """The exact mean of :func:`_from_cdf`'s distribution (before rounding to whole bytes): a share below the
    first point sits at the first size; between points the size is log-uniform, whose mean is
    ``(s1 - s0) / ln(s1 / s0)``."""
    total = points[0][0] * points[0][1]
    for (s0, c0), (s1, c1) in zip(points, points[1:]):
        total += (c1 - c0) * (s1 - s0) / math.log(s1 / s0)
    return total


def buchner2009_size(rng: random.Random) -> int:
    """Whole-message size drawn from the email size distribution of J. Buchner (2009) through every point of
    :data:`BUCHNER2009_CDF` (which says what is the paper's and what is ours)."""
    return _from_cdf(BUCHNER2009_CDF, rng)


def lists2026_size(rng: random.Random) -> int:
    """Message size drawn from the body sizes of real mailing-list mail (:data:`LISTS2026_CDF`): a second,
    independent measurement beside ``buchner2009``, for a sensitivity check."""
    return _from_cdf(LISTS2026_CDF, rng)


def fixed_5k_size(rng: random.Random) -> int:
    """Every message exactly 5120 bytes: a control with no size variance (no source; a round 5 KiB, close to
    the median of Buchner 2009)."""
    return 5120


def lognormal_size(rng: random.Random, mu: float = 8.5, sigma: float = 1.2) -> int:
    """``exp(N(mu, sigma))`` bytes, floor 900 B, cap 10 MiB: the log-normal shape commonly fitted to email
    sizes (e.g. Paxson, "Empirically derived analytic models of wide-area TCP connections", 1994, for SMTP
    transfer sizes). The defaults give a median of exp(8.5) = 4915 B, close to Buchner 2009's median.
    One uniform draw per size, turned into a normal by the inverse CDF."""
    u = (rng.getrandbits(53) + 0.5) / 2.0 ** 53  # in (0, 1), never 0 or 1
    z = NormalDist().inv_cdf(u)
    with localcontext() as ctx:
        ctx.prec = 40
        value = (Decimal(mu) + Decimal(sigma) * Decimal(z))
        size = MAX_SIZE if value > Decimal(MAX_SIZE).ln() else int(value.exp().to_integral_value())
    return min(max(size, MIN_SIZE), MAX_SIZE)


SIZE_PRESETS: dict[str, Callable[[random.Random], int]] = {
    "buchner2009": buchner2009_size,
    "lists2026": lists2026_size,
    "fixed-5k": fixed_5k_size,
    "lognormal": lognormal_size,
}


# -- message content -----------------------------------------------------------------------------------------

# No word starts with "from" (no line may start with "From ") and none with "." (dot lines are chosen apart).
_WORDS = (
    "the", "meeting", "report", "draft", "budget", "schedule", "please", "review", "attached", "notes", "team",
    "project", "update", "thanks", "regards", "tomorrow", "monday", "friday", "office", "server", "mailbox",
    "client", "message", "folder", "header", "body", "network", "latency", "bytes", "round", "trip", "protocol",
    "quarter", "results", "figures", "agenda", "minutes", "question", "answer", "about", "with", "before", "after",
    "and", "or", "but", "we", "you", "they", "will", "should", "could", "may", "need", "send", "read", "sync",
    "device", "phone", "laptop", "desk", "lunch", "coffee", "plan", "idea", "change", "version", "release",
    "test", "build", "issue", "fix", "patch", "list", "summary", "detail", "paper", "chart", "table", "data",
)
_NAMES = (
    ("Bob", "Baker"), ("Carol", "Chen"), ("Dave", "Dubois"), ("Erin", "Evans"), ("Frank", "Fischer"),
    ("Grace", "Garcia"), ("Heidi", "Hansen"), ("Ivan", "Ivanov"), ("Judy", "Jones"), ("Mallory", "Moreau"),
    ("Niaj", "Nakamura"), ("Olivia", "Okafor"), ("Peggy", "Patel"), ("Rupert", "Rossi"), ("Sybil", "Schmidt"),
    ("Trent", "Tanaka"), ("Victor", "Virtanen"), ("Walter", "Wang"),
)
_DOMAINS = ("example.com", "example.net", "example.org")
_TO = "Alice Liddell <alice@example.org>"
_ASCII_SUBJECTS = (
    "Meeting notes", "Quarterly report", "Re: budget draft", "Lunch on Friday?", "Server update tonight",
    "Fwd: latency figures", "Agenda for Monday", "Review request", "Re: Re: the release plan", "Photos",
    "Question about the protocol", "Weekly summary", "Invoice", "Build results", "Re: coffee",
)
_NON_ASCII_SUBJECTS = (
    "Grüße aus München", "Réunion à 14 h", "Отчёт за неделю", "会議の議事録", "Ελέγχος λογαριασμού",
    "Café ☕ demain ?", "Número de versión", "Zürich: Präsentation", "Ünïcödé tëst", "报告草稿",
)
#: Lines starting with "." that POP3 must dot-stuff; "." alone would end a multi-line reply if not stuffed.
DOT_LINES = (".", "..", ".hidden", "...and so on", ".signature follows")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ZONES_MIN = (0, 0, 60, 120, -300, -480, 330, 540)  # UTC offsets in minutes
_EPOCH = datetime(2009, 1, 1, tzinfo=timezone.utc)


def _format_date(when: datetime) -> str:
    """RFC 5322 date, locale-independent (no strftime names)."""
    off = int(when.utcoffset().total_seconds() // 60)
    sign = "+" if off >= 0 else "-"
    return (f"{_DAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} {when.year} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {sign}{abs(off) // 60:02d}{abs(off) % 60:02d}")


def _encode_subject(text: str) -> str:
    """RFC 2047 ``=?utf-8?b?...?=`` words of at most 30 UTF-8 bytes each, folded one per line."""
    words, chunk = [], ""
    for ch in text:
        if len((chunk + ch).encode()) > 30:
            words.append(chunk)
            chunk = ""
        chunk += ch
    words.append(chunk)
    encoded = ["=?utf-8?b?" + base64.b64encode(w.encode()).decode("ascii") + "?=" for w in words]
    return "\r\n ".join(encoded)


def _line(rng: random.Random, width: int) -> str:
    """A line of random words, at most ``width`` characters, first word capitalised."""
    words = [rng.choice(_WORDS)]
    while True:
        w = rng.choice(_WORDS)
        if len(words[0]) + sum(len(x) + 1 for x in words[1:]) + len(w) + 1 > width:
            break
        words.append(w)
    s = " ".join(words)
    return s[0].upper() + s[1:]


def _exact_line(rng: random.Random, n: int) -> str:
    """A line of exactly ``n`` characters (0 <= n <= MAX_LINE): words, no leading dot, no trailing space."""
    if n == 0:
        return ""
    s = _line(rng, 200)
    while len(s) < n:
        s += " " + rng.choice(_WORDS)
    s = s[:n]
    return s if s[-1] != " " else s[:-1] + "s"


def _text(rng: random.Random, nbytes: int, greeting: str, dots: bool) -> bytes:
    """A plain-text body of exactly ``nbytes`` bytes: CRLF-ended lines shorter than 78 characters."""
    lines = [greeting, ""]
    dot_lines = [rng.choice(DOT_LINES) for _ in range(rng.randint(1, 3))] if dots else []
    used = sum(len(x) + 2 for x in lines + dot_lines)
    if used + 4 > nbytes:
        raise CorpusError(f"a text body of {nbytes} bytes is too small for this generator")
    while nbytes - used > 150:
        line = "" if rng.random() < 0.08 else _line(rng, rng.randint(40, 72))
        lines.append(line)
        used += len(line) + 2
    for d in dot_lines:
        lines.insert(rng.randint(2, len(lines)), d)
    rest = nbytes - used  # 4 .. 150 (two exact lines of at most 75 bytes each)
    first = rest // 2
    lines.append(_exact_line(rng, first - 2))
    lines.append(_exact_line(rng, rest - first - 2))
    body = "\r\n".join(lines).encode("ascii") + CRLF
    assert len(body) == nbytes, (len(body), nbytes)
    return body


def _b64_len(m: int) -> int:
    """Bytes of ``m`` raw bytes once base64-encoded in 76-character CRLF-ended lines."""
    chars = 4 * -(-m // 3)
    return chars + 2 * -(-chars // 76)


def _b64_lines(data: bytes) -> bytes:
    enc = base64.b64encode(data)
    return b"".join(enc[i:i + 76] + CRLF for i in range(0, len(enc), 76))


def make_message(seed: int, index: int, size: int, headers: str = "realistic") -> Message:
    """Message ``index`` of the corpus with ``seed``.

    ``headers="minimal"`` (the control): the author's header only, the message exactly ``size`` bytes; plain text
    up to :data:`MULTIPART_THRESHOLD`, above it ``multipart/mixed`` with a base64 attachment.
    ``headers="realistic"`` (the default): the same author's header and a body of varied MIME structure
    (:func:`_varied_body`), together exactly ``size`` bytes, with the fields the message gathers on its way
    (:func:`mailstudy.corpus.arrival.arrival_fields`) above them: ``size`` plus those fields' length.
    """
    _check_headers(headers)
    rng = random.Random(f"mailstudy-corpus/{seed}/{index}")
    first, last = rng.choice(_NAMES)
    sender = f"{first} {last} <{first.lower()}.{last.lower()}@{rng.choice(_DOMAINS)}>"
    if rng.random() < NON_ASCII_SUBJECT_FRACTION:
        subject = _encode_subject(rng.choice(_NON_ASCII_SUBJECTS))
    else:
        subject = rng.choice(_ASCII_SUBJECTS)
    base = _EPOCH + timedelta(seconds=random.Random(f"mailstudy-corpus/{seed}/epoch").randrange(365 * 86400))
    zone = timezone(timedelta(minutes=rng.choice(_ZONES_MIN)))
    when = (base + timedelta(seconds=index * 3600 + rng.randrange(3600))).astimezone(zone)
    msgid = f"<{seed}-{index}.{rng.getrandbits(64):016x}@mailstudy.invalid>"
    dots = rng.random() < DOT_FRACTION
    greeting = f"Hi Alice, this is {first}."
    if headers == "realistic":
        mrng = random.Random(f"mailstudy-corpus/{seed}/{index}/mime")
        if mrng.random() < NON_ASCII_NAME_FRACTION:
            name = mrng.choice(_NON_ASCII_NAMES)
            sender = f"{_encode_subject(name)}\r\n <{first.lower()}.{last.lower()}@{mrng.choice(_DOMAINS)}>"
    head = [f"From: {sender}", f"To: {_TO}", f"Subject: {subject}", f"Date: {_format_date(when)}",
            f"Message-ID: {msgid}", "MIME-Version: 1.0"]

    if headers == "realistic":
        raw = _varied_body(rng, mrng, seed, index, size, head, greeting, dots)
        if len(raw) != size:  # a bug, not bad input: the padding arithmetic must be exact
            raise AssertionError(f"message {index} is {len(raw)} bytes, wanted {size}")
        return Message(arrival_fields(seed, index) + raw)
    if size <= MULTIPART_THRESHOLD:
        head += ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"]
        header = ("\r\n".join(head) + "\r\n\r\n").encode("ascii")
        raw = header + _text(rng, size - len(header), greeting, dots)
    else:
        boundary = f"=_mailstudy_{rng.getrandbits(64):016x}"
        name = f"attachment-{index}.bin"
        head += [f'Content-Type: multipart/mixed; boundary="{boundary}"']
        header = ("\r\n".join(head) + "\r\n\r\n").encode("ascii")
        preamble = b"This is a multi-part message in MIME format.\r\n"
        text_head = (f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n"
                     f"Content-Transfer-Encoding: 7bit\r\n\r\n").encode("ascii")
        att_head = (f"--{boundary}\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n"
                    f"Content-Transfer-Encoding: base64\r\n"
                    f"Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n").encode("ascii")
        closing = f"--{boundary}--\r\n".encode("ascii")
        text_target = rng.randint(600, 4000)
        budget = size - len(header) - len(preamble) - len(text_head) - len(att_head) - len(closing) - text_target
        m = _fit_b64(budget)
        text = _text(rng, text_target + budget - _b64_len(m), greeting, dots)
        raw = header + preamble + text_head + text + att_head + _b64_lines(rng.randbytes(m)) + closing
    if len(raw) != size:  # a bug, not bad input: the padding arithmetic above must be exact
        raise AssertionError(f"message {index} is {len(raw)} bytes, wanted {size}")
    return Message(raw)


def _fit_b64(budget: int) -> int:
    """The most raw bytes whose base64 lines (:func:`_b64_len`) fit in ``budget`` bytes."""
    m = max(0, budget * 57 // 78 - 64)  # a little under the ideal, then step up to the largest that fits
    while _b64_len(m + 1) <= budget:
        m += 1
    return m


#: Realistic bodies (ours, no source: a spread so that BODYSTRUCTURE and partial fetches meet real structures):
#: below :data:`MULTIPART_THRESHOLD`, a share of ``multipart/alternative`` (text and HTML); above it,
#: ``multipart/mixed`` with a base64 attachment, its first part plain text or an alternative, and a share
#: forwarding a whole message as ``message/rfc822``.
ALTERNATIVE_FRACTION = 0.35
FORWARD_FRACTION = 0.15
NON_ASCII_NAME_FRACTION = 0.15
_NON_ASCII_NAMES = ("Renée Müller", "José Núñez", "Zoë Ødegård", "Jürgen Weiß", "Łukasz Żółw", "Søren Åberg",
                    "Ирина Петрова", "田中 花子")
_TEXT_PART = "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
_HTML_PART = "Content-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"


def _alternative(rng: random.Random, boundary: str, nbytes: int, greeting: str, dots: bool) -> bytes:
    """A ``multipart/alternative`` body (text, then the same words as HTML) of exactly ``nbytes`` bytes."""
    frame = (f"--{boundary}\r\n{_TEXT_PART}", f"--{boundary}\r\n{_HTML_PART}", f"--{boundary}--\r\n")
    wrap = ("<html><body>\r\n", "</body></html>\r\n")
    inner = nbytes - sum(len(x) for x in frame) - sum(len(x) for x in wrap)
    html_inner = inner * 11 // 20
    text = _text(rng, inner - html_inner, greeting, dots)
    html = wrap[0].encode() + _text(rng, html_inner, f"<p>{greeting}</p>", False) + wrap[1].encode()
    return frame[0].encode() + text + frame[1].encode() + html + frame[2].encode()


def _varied_body(rng: random.Random, mrng: random.Random, seed: int, index: int, size: int, head: list[str],
                 greeting: str, dots: bool) -> bytes:
    """The author's header ``head`` with its MIME fields and a body of varied structure: exactly ``size`` bytes."""
    outer = f"=_mailstudy_{rng.getrandbits(64):016x}"
    inner = f"=_alt_{rng.getrandbits(64):016x}"
    if size <= MULTIPART_THRESHOLD:
        if size >= 2500 and mrng.random() < ALTERNATIVE_FRACTION:
            header = ("\r\n".join(head + [f'Content-Type: multipart/alternative; boundary="{outer}"'])
                      + "\r\n\r\n").encode("ascii")
            return header + _alternative(rng, outer, size - len(header), greeting, dots)
        header = ("\r\n".join(head + ["Content-Type: text/plain; charset=us-ascii",
                                      "Content-Transfer-Encoding: 7bit"]) + "\r\n\r\n").encode("ascii")
        return header + _text(rng, size - len(header), greeting, dots)
    header = ("\r\n".join(head + [f'Content-Type: multipart/mixed; boundary="{outer}"']) + "\r\n\r\n").encode()
    preamble = b"This is a multi-part message in MIME format.\r\n"
    alt = mrng.random() < ALTERNATIVE_FRACTION
    first_head = (f"--{outer}\r\nContent-Type: multipart/alternative; boundary=\"{inner}\"\r\n\r\n" if alt
                  else f"--{outer}\r\n{_TEXT_PART}").encode("ascii")
    middle = b""
    if mrng.random() < FORWARD_FRACTION:
        forwarded = make_message(seed, 1_000_000 + index, mrng.randint(1200, 4000), "minimal").raw
        middle = (f"--{outer}\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n").encode() \
            + forwarded
    name = f"attachment-{index}.{mrng.choice(('pdf', 'png', 'zip', 'doc'))}"
    kind = {"pdf": "application/pdf", "png": "image/png", "zip": "application/zip",
            "doc": "application/msword"}[name.rsplit(".", 1)[1]]
    att_head = (f"--{outer}\r\nContent-Type: {kind};\r\n name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n"
                f"Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n").encode("ascii")
    closing = f"--{outer}--\r\n".encode("ascii")
    first_target = rng.randint(2600, 6000) if alt else rng.randint(600, 4000)
    budget = size - len(header) - len(preamble) - len(first_head) - len(middle) - len(att_head) - len(closing) \
        - first_target
    m = _fit_b64(budget)
    first_len = first_target + budget - _b64_len(m)
    first = _alternative(rng, inner, first_len, greeting, dots) if alt else _text(rng, first_len, greeting, dots)
    return header + preamble + first_head + first + middle + att_head + _b64_lines(rng.randbytes(m)) + closing


#: Draws an estimate looks at: the first ones of the real sequence, so a small mailbox is estimated exactly.
ESTIMATE_DRAWS = 2000
#: The largest generated mailbox a command builds unless told otherwise (the corpus, the server's copy and the
#: pickle or Maildir each hold it once, so memory needs a few times this).
DEFAULT_MAX_MAILBOX_BYTES = 2 << 30


def _check_headers(headers: str) -> None:
    if headers not in HEADER_MODELS:
        raise CorpusError(f"unknown header model {headers!r}; choose one of {', '.join(HEADER_MODELS)}")


def estimate_bytes(n: int, sizes: str = "buchner2009", seed: int = 0, headers: str = "realistic") -> int:
    """The size of ``generate(n, sizes, seed, headers=headers)`` without building it: exact up to
    :data:`ESTIMATE_DRAWS` messages, else the mean of that many messages times ``n``."""
    if sizes not in SIZE_PRESETS:
        raise CorpusError(f"unknown size preset {sizes!r}; choose one of {', '.join(sorted(SIZE_PRESETS))}")
    _check_headers(headers)
    rng = random.Random(seed)
    k = min(n, ESTIMATE_DRAWS)
    drawn = sum(SIZE_PRESETS[sizes](rng) for _ in range(k))
    if headers == "realistic":
        drawn += sum(len(arrival_fields(seed, i)) for i in range(k))
    return drawn if k == n else round(drawn / k * n)


def check_mailbox_size(n: int, sizes: str, seed: int, limit: int = DEFAULT_MAX_MAILBOX_BYTES,
                       headers: str = "realistic") -> int:
    """Refuse (CorpusError) a generated mailbox estimated above ``limit`` bytes; returns the estimate."""
    est = estimate_bytes(n, sizes, seed, headers)
    if est > limit:
        raise CorpusError(f"{n:,} messages of {sizes} would make a mailbox of about {est / 1e9:,.1f} GB, above "
                          f"the limit of {limit / 1e9:,.1f} GB (memory needs a few times that); use fewer "
                          f"messages or raise the limit with --max-mailbox-gb")
    return est


def _no_bar(items, total: int, desc: str):
    return items


def generate(n: int, sizes: str = "buchner2009", seed: int = 0, *, lognormal_mu: float = 8.5,
             lognormal_sigma: float = 1.2, progress=_no_bar, headers: str = "realistic") -> Corpus:
    """A synthetic mailbox of ``n`` messages, the same bytes for the same arguments on every machine.

    ``sizes`` names a :data:`SIZE_PRESETS` entry; ``lognormal_mu``/``lognormal_sigma`` apply to ``lognormal``.
    ``headers`` names a header model (:data:`mailstudy.corpus.arrival.HEADER_MODELS`): ``realistic`` (the
    default: mail as it arrives, with the fields it gathers on its way and varied MIME structures) or
    ``minimal`` (the control: the author's header only, plain text or text and one attachment).
    ``progress(items, total, desc)`` may wrap the message loop in a progress bar (the command line passes tqdm).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CorpusError(f"n must be a whole number >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CorpusError(f"seed must be an int, got {seed!r}")
    if sizes not in SIZE_PRESETS:
        raise CorpusError(f"unknown size preset {sizes!r}; choose one of {', '.join(sorted(SIZE_PRESETS))}")
    _check_headers(headers)
    if sizes == "lognormal":
        if not lognormal_sigma >= 0:
            raise CorpusError(f"lognormal_sigma must be >= 0, got {lognormal_sigma!r}")
        sampler = lambda r: lognormal_size(r, lognormal_mu, lognormal_sigma)  # noqa: E731
    else:
        sampler = SIZE_PRESETS[sizes]
    size_rng = random.Random(seed)
    targets = [sampler(size_rng) for _ in range(n)]
    made = progress(enumerate(targets), n, "generating mail")
    return Corpus(tuple(make_message(seed, i, t, headers) for i, t in made), sizes, seed, headers)
