"""Real mail from disk (mbox, Maildir, a folder of .eml files) into a :class:`~mailstudy.corpus.synthetic.Corpus`, and back out.

Why a module of its own: file formats and their bad inputs (junk files, truncated mboxes) are the I/O half of
the corpus; generation stays pure.
"""

from __future__ import annotations

import logging
import mailbox
import os
import re
from pathlib import Path

from mailstudy.corpus.synthetic import CRLF, Corpus, CorpusError, Message

log = logging.getLogger("mailstudy.corpus")

# -- loading and saving --------------------------------------------------------------------------------------

def _crlf(data: bytes) -> bytes:
    """Normalise every line end (LF, CR, CRLF) to CRLF and make sure the last line ends with one."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    return data if not data or data.endswith(CRLF) else data + CRLF


def _natural(name: str) -> list:
    """Sort key comparing digit runs as numbers: Maildir names start with the delivery time
    (``1700000000.M5P42Q1.host`` before ``1700000000.M123P42Q2.host``)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", name)]


_FIELD = re.compile(rb"^[!-9;-~]+:")  # an RFC 5322 header field name (printable ASCII but ':') and its colon
_HEADER_SCAN = 64 * 1024  # bytes looked at to tell mail from junk: a header is never longer in practice


def looks_like_mail(raw: bytes) -> bool:
    """Whether ``raw`` starts like an RFC 5322 message: header field lines (and folded continuations) up to
    the blank line, no NUL byte, at least one field. An mbox-style ``From `` envelope line is allowed first.
    A JPEG, a ``.DS_Store`` or random bytes fail at their first line."""
    head = raw[:_HEADER_SCAN]
    end = re.search(rb"\r?\n\r?\n", head)
    head = head[:end.start()] if end else head
    lines = re.split(rb"\r?\n", head)
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]
    if not lines or b"\0" in head or not _FIELD.match(lines[0]):
        return False
    return all(_FIELD.match(ln) or ln[:1] in (b" ", b"\t") for ln in lines if ln)


def _mail_files(files: list[Path], skipped: list[str]) -> list[bytes]:
    """The bytes of each file that looks like mail; the others are named in ``skipped``."""
    raws = []
    for f in files:
        raw = f.read_bytes()
        if looks_like_mail(raw):
            raws.append(raw)
        else:
            skipped.append(f.name)
    return raws


def _maildir_files(p: Path) -> list[Path]:
    """The message files of a Maildir (``new/`` and ``cur/``) in delivery order; dotfiles (``.DS_Store``,
    ``._*`` resource forks) and folders are not messages. Read here rather than with :mod:`mailbox`, whose
    Maildir takes every file, so that a skipped file can be named."""
    found = []
    for sub in ("new", "cur"):
        for entry in os.scandir(p / sub):
            if not entry.name.startswith(".") and entry.is_file():
                found.append(Path(entry.path))
    return sorted(found, key=lambda f: _natural(f.name.split(":", 1)[0]))


def _truncation(data: bytes, last: bytes) -> str | None:
    """Why the last message of an mbox looks cut short, or None: the file does not end in a line break, its
    Content-Length says more than its body holds, or its multipart body lacks the closing boundary."""
    if data and not data.endswith(b"\n"):
        return "the file does not end in a line break"
    end = re.search(rb"\r?\n\r?\n", last)
    head, body = (last[:end.start()], last[end.end():]) if end else (last, b"")
    m = re.search(rb"^content-length:[ \t]*(\d+)", head, re.I | re.M)
    if m and int(m.group(1)) > len(body):
        return f"its Content-Length is {int(m.group(1)):,} bytes but its body holds {len(body):,}"
    m = re.search(rb"^content-type:[ \t]*multipart/[^\n]*?boundary=\"?([^\";\r\n]+)", head, re.I | re.M)
    if m and b"--" + m.group(1).strip() + b"--" not in body:
        return "its multipart body lacks the closing boundary"
    return None


def load(path: str | Path) -> Corpus:
    """Read real mail: an mbox file, a Maildir directory (with ``cur/`` and ``new/``) or a folder of ``.eml``
    files (sorted by name; a single ``.eml`` file also works). Line ends become CRLF, and the last line gets
    one if it had none. Maildir messages are ordered by file name with digit runs compared as numbers
    (delivery time first in the usual naming). mbox ``>From`` quoting is kept as stored, as :mod:`mailbox`
    does. Dotfiles are ignored; a file that does not look like mail (:func:`looks_like_mail`) is skipped with a
    warning naming it, and a truncated mbox gets a warning (both on the ``mailstudy.corpus`` logger). Raises
    :class:`CorpusError` when the path is missing or holds no mail."""
    p = Path(path)
    label = f"loaded:{path}"
    skipped: list[str] = []
    try:
        if not p.exists():
            raise CorpusError(f"no such file or directory: {p}")
        if p.is_dir():
            if (p / "cur").is_dir() and (p / "new").is_dir():
                raws = _mail_files(_maildir_files(p), skipped)
                kind = "Maildir"
            else:
                files = sorted(f for f in p.iterdir()
                               if f.is_file() and f.suffix.lower() == ".eml" and not f.name.startswith("."))
                raws = _mail_files(files, skipped)
                kind = "folder of .eml files"
                if not raws and not skipped:
                    raise CorpusError(f"no mail in {p}: expected an mbox file, a Maildir (cur/ and new/) "
                                      f"or .eml files")
        elif p.suffix.lower() == ".eml":
            raws, kind = _mail_files([p], skipped), ".eml file"
        else:
            if not p.is_file():
                raise CorpusError(f"{p} is not a regular file; give an mbox file, a Maildir or a folder of "
                                  f".eml files")
            with p.open("rb") as fh:
                start = fh.read(5)
            if start != b"From ":
                raise CorpusError(f"{p} is not an mbox file (it does not start with 'From '); "
                                  f"give an mbox file, a Maildir or a folder of .eml files")
            mb = mailbox.mbox(str(p), factory=None, create=False)
            try:
                raws = [mb.get_bytes(k) for k in mb.keys()]
            finally:
                mb.close()
            kind = "mbox file"
            with p.open("rb") as fh:
                fh.seek(max(0, p.stat().st_size - 1))
                tail = fh.read(1)
            why = _truncation(tail, raws[-1]) if raws else None
            if why:
                log.warning("%s: the last message (%d) may be cut short: %s", p, len(raws), why)
    except OSError as exc:
        raise CorpusError(f"cannot read mail from {p}: {exc.strerror or exc}") from exc
    for name in skipped:
        log.warning("%s: skipped %s: it does not look like a mail message (no header fields)", p, name)
    raws = [r for r in raws if r.strip()]
    if not raws:
        raise CorpusError(f"no mail in {p} ({kind} holds no messages)")
    return Corpus(tuple(Message(_crlf(r)) for r in raws), label, None)


def save_eml(corpus: Corpus, folder: str | Path) -> None:
    """Write each message to ``folder/NNNNNN.eml`` (in corpus order, so :func:`load` reads them back in order).

    Creates ``folder``; refuses (CorpusError) when it already holds ``.eml`` files, which would mix mailboxes."""
    d = Path(folder)
    try:
        d.mkdir(parents=True, exist_ok=True)
        if any(f.suffix.lower() == ".eml" for f in d.iterdir()):
            raise CorpusError(f"{d} already holds .eml files; choose an empty folder")
        width = max(6, len(str(len(corpus) - 1)))
        for i, m in enumerate(corpus):
            (d / f"{i:0{width}d}.eml").write_bytes(m.raw)
    except OSError as exc:
        raise CorpusError(f"cannot write .eml files to {d}: {exc.strerror or exc}") from exc
