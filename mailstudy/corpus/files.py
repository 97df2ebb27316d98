"""Real mail from disk (mbox, Maildir, a folder of .eml files) into a :class:`~mailstudy.corpus.synthetic.Corpus`, and back out.

Why a module of its own: file formats and their bad inputs (junk files, truncated mboxes) are the I/O half of
the corpus; generation stays pure.
"""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

from mailstudy.corpus.synthetic import CRLF, Corpus, CorpusError, Message

# -- loading and saving --------------------------------------------------------------------------------------

def _crlf(data: bytes) -> bytes:
    """Normalise every line end (LF, CR, CRLF) to CRLF and make sure the last line ends with one."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    return data if not data or data.endswith(CRLF) else data + CRLF


def _natural(name: str) -> list:
    """Sort key comparing digit runs as numbers: Maildir names start with the delivery time
    (``1700000000.M5P42Q1.host`` before ``1700000000.M123P42Q2.host``)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", name)]


def load(path: str | Path) -> Corpus:
    """Read real mail: an mbox file, a Maildir directory (with ``cur/`` and ``new/``) or a folder of ``.eml``
    files (sorted by name; a single ``.eml`` file also works). Line ends become CRLF, and the last line gets
    one if it had none. Maildir messages are ordered by file name with digit runs compared as numbers
    (delivery time first in the usual naming). mbox ``>From`` quoting is kept as stored, as :mod:`mailbox`
    does. Raises :class:`CorpusError` when the path is missing or holds no mail."""
    p = Path(path)
    label = f"loaded:{path}"
    try:
        if not p.exists():
            raise CorpusError(f"no such file or directory: {p}")
        if p.is_dir():
            if (p / "cur").is_dir() and (p / "new").is_dir():
                md = mailbox.Maildir(str(p), factory=None, create=False)
                raws = [md.get_bytes(k) for k in sorted(md.keys(), key=_natural)]
                kind = "Maildir"
            else:
                files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".eml")
                raws = [f.read_bytes() for f in files]
                kind = "folder of .eml files"
                if not raws:
                    raise CorpusError(f"no mail in {p}: expected an mbox file, a Maildir (cur/ and new/) "
                                      f"or .eml files")
        elif p.suffix.lower() == ".eml":
            raws, kind = [p.read_bytes()], ".eml file"
        else:
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
    except OSError as exc:
        raise CorpusError(f"cannot read mail from {p}: {exc.strerror or exc}") from exc
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
