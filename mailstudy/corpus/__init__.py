"""Mailboxes to measure: seeded synthetic messages with realistic sizes, or real mail loaded from disk.

Why: every cost IMAP and POP3 pay depends on the messages they carry (how big, how many, how much of each is
header). A study needs mailboxes that are the same on every machine, so byte counts can be asserted exactly
and a chart can be rebuilt from its seed. :func:`generate` builds them; :func:`load` reads a user's own mail
(mbox, Maildir or a folder of ``.eml`` files) into the same :class:`Corpus` shape.

Determinism rules kept here (the regression test in ``tests/test_corpus.py`` guards them):

- all randomness comes from ``random.Random`` instances seeded from ``seed`` (never the clock, the hostname,
  ``os.urandom``, ``email.utils.make_msgid`` or set/dict iteration order);
- message ``i`` draws its content from its own ``Random(f"mailstudy-corpus/{seed}/{i}")`` (string seeds are
  hashed with SHA-512 by ``random``, the same everywhere), so ``generate(10)[:5]`` equals ``generate(5)``;
  sizes are the first ``n`` draws of the size preset from ``Random(seed)``;
- the ``buchner2009`` sampler interpolates in ``decimal`` arithmetic, so no platform's libm can move a size by
  a byte; the ``lognormal`` sampler uses float maths and rounds to whole bytes.

Header models: ``realistic`` (the default) gives mail as it arrives in a mailbox, with the Received chain, DKIM
and ARC signatures, Authentication-Results, List-* and X- fields real mail gathers on its way
(:mod:`mailstudy.corpus.arrival`, which cites the real messages its sizes come from) and varied MIME structures
(``multipart/alternative``, base64 attachments, a forwarded ``message/rfc822``, RFC 2047 display names);
``minimal`` is the control with only the author's header (about 310 B), plain text or text and one attachment.
The author's part of a message (its own header and body) is exactly its drawn size; the realistic model adds
the arrival fields on top, as MTAs do.

Every generated message's author part is exactly its drawn size (the text body is padded to the byte), uses CRLF line ends
everywhere including after the last line, has body lines shorter than 78 characters, parses with the stdlib
``email`` package without defects, and never has a line starting with ``From `` (so an mbox round trip is
exact). About one message in three carries body lines starting with ``.`` (including a line that is exactly
``.``) so POP3 dot-stuffing is exercised; about one in four has a non-ASCII subject as RFC 2047 encoded words.
Messages above :data:`MULTIPART_THRESHOLD` bytes are ``multipart/mixed``: a short text part (or an alternative)
and a base64 attachment of seeded random bytes.
"""

from mailstudy.corpus.arrival import HEADER_MODELS
from mailstudy.corpus.files import load, save_eml
from mailstudy.corpus.synthetic import (
    DEFAULT_MAX_MAILBOX_BYTES,
    MAX_SIZE,
    MIN_SIZE,
    MULTIPART_THRESHOLD,
    SIZE_PRESETS,
    Corpus,
    CorpusError,
    Message,
    check_mailbox_size,
    estimate_bytes,
    generate,
    make_message,
)

__all__ = ["Corpus", "CorpusError", "Message", "generate", "make_message", "load", "save_eml", "SIZE_PRESETS",
           "MIN_SIZE", "MAX_SIZE", "MULTIPART_THRESHOLD", "estimate_bytes", "check_mailbox_size",
           "DEFAULT_MAX_MAILBOX_BYTES", "HEADER_MODELS"]
