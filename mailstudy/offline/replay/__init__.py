"""Replay a captured mail session against a fresh local server, and measure it the same way as the original.

Why: a capture of *any* client (curl, fetchmail, mbsync, Thunderbird, our own engine) says what that client
cost against that server. Replaying its bytes against a fresh server of a chosen kind, with the same mailbox and
the same pipelining, answers "what would the same client behaviour cost on Dovecot / on the embedded server?"
and checks that a capture is understood: replayed on the same server kind, our own sessions give the same
commands, round trips and downloaded bytes, and every message comes back byte for byte.

The steps, for each plain-text session that :func:`mailstudy.offline.analyze.analyze_pcap` finds:

1. **Mailbox** (:func:`rebuild_mailbox`). IMAP: the untagged ``FETCH`` responses of the server's stream give, per
   sequence number, the UID, ``RFC822.SIZE`` and message data. A whole message is ``BODY[]``/``RFC822`` (or
   ``BODY[]<0>`` of the full size), or ``BODY[HEADER]`` + ``BODY[TEXT]`` (what fetchmail fetches). Otherwise the
   message is a *placeholder*: the header (``BODY[HEADER]``, ``RFC822.HEADER``, ``BODY[HEADER.FIELDS ...]``) or
   a partial ``BODY[]<0>``, followed by filler lines up to the ``RFC822.SIZE`` seen, if any. Sequence numbers up
   to the first ``* n EXISTS`` that were never fetched become small placeholders, so ``1:*`` and ``EXISTS``
   mean the same on the new server. POP3: ``RETR`` data (already un-stuffed by the parser) is whole; ``TOP``
   data is a placeholder head, filled to the ``LIST`` size; ``STAT`` gives the count. Order: sequence number
   (IMAP, which is UID order) or message number (POP3).
2. **A fresh server** (``make_server(kind)``) with that mailbox in the INBOX of its default account.
3. **Credentials** are mapped to the new account: IMAP ``LOGIN`` (atom, quoted string or literal, keeping the
   form), ``AUTHENTICATE PLAIN``/``LOGIN`` (initial response or continuation lines); POP3 ``USER``, ``PASS``,
   ``AUTH PLAIN``/``LOGIN``. Other mechanisms and ``APOP`` cannot be mapped: a warning says so and the login
   is replayed as captured (and fails).
4. **UIDs**: a fresh server numbers the messages 1..n in delivery order, so the message at sequence number i gets
   UID i. The first argument (a sequence set) of ``UID FETCH|STORE|COPY|MOVE|EXPUNGE`` is mapped element-wise:
   a captured UID becomes the new UID of the same message; a range ``a:b`` becomes the range of the new UIDs of
   the captured UIDs inside it (order is kept, so it stays a range); ``*`` stays; a number no captured message
   had is kept (a warning says so) unless it lies above every captured UID, where it becomes ``max+1`` (same
   meaning: past the end). Sequence numbers (plain ``FETCH 1:*``) are unchanged. ``UID SEARCH`` criteria are
   not mapped. When the captured UIDs are already 1..n nothing changes, byte for byte.
5. **Flights** (:func:`client_flights`): a flight is a maximal run of client payload not interrupted by server
   payload (``metrics.round_trips``). Each flight is sent with one ``sendall`` on a traced socket; then the
   server's replies are read until the replay has reached the point the original had reached before the next
   flight: as many complete exchanges (and continuation requests ``+``, which is how a synchronizing literal
   or a SASL exchange waits) as the original, judged by feeding what was sent and received into a fresh sans-IO
   parser, and at least one byte when the original had a reply there. A flight that does not get that far
   within ``timeout`` stops the replay of that session with a warning. After a final ``LOGOUT``/``QUIT`` the
   replay reads to the server's close, as our own clients do, so the byte counts are what crossed the wire.
6. **Metrics** of the replay come from the trace through ``parse_session`` and ``metrics.session_metrics``, the
   same definitions the original's analysis used. Messages fetched whole in the replay are compared byte for
   byte with the mailbox (``messages_checked``/``messages_matched``).

What may differ between servers even for a faithful replay: the greeting, capability lists, untagged responses
to ``SELECT`` (Dovecot adds ``HIGHESTMODSEQ``, ``PERMANENTFLAGS`` ...), status texts (Dovecot's ``(0.001 + 0.000
secs)`` timing text varies run to run), UIDL strings; so across server kinds only commands and round trips are
expected to be equal. Sessions that switched to TLS (or to COMPRESS) cannot be replayed: their bytes after the
switch are opaque; the result says so.

Layout (one job per module; this ``__init__`` only re-exports the public API):

- :mod:`.report` -- the result types (:class:`SessionReplay`, :class:`ReplayReport`), ``METRIC_KEYS``,
  :class:`ReplayError`.
- :mod:`.captured` -- the captured session's plain byte streams and exchanges, as the other steps read them.
- :mod:`.imap_fetch` -- what an IMAP server stream's ``FETCH``/``EXISTS``/``RECENT`` responses carried.
- :mod:`.mailbox` -- step 1: rebuild the mailbox (:func:`rebuild_mailbox`, :func:`filler`).
- :mod:`.uids` -- step 4's sequence-set mapping (:func:`map_uid_set`).
- :mod:`.rewrite` -- steps 3 and 4: edits to the client's bytes (:func:`rewrite_client_stream`).
- :mod:`.flights` -- step 5, offline: cut the client stream into flights with their targets, apply the edits.
- :mod:`.run` -- step 5, live: send the flights on a traced socket and read replies until each target.
- :mod:`.session` -- steps 2 and 6 around the others: :func:`replay_session`.
- :mod:`.pcap_file` -- a whole capture file: :func:`replay_pcap`.
"""

from __future__ import annotations

from mailstudy.offline.replay.flights import (
           ReplayFlight,
           Target,
           apply_edits,
           client_flights,
)
from mailstudy.offline.replay.imap_fetch import imap_fetched
from mailstudy.offline.replay.mailbox import (
           FILLER_LINE,
           Mailbox,
           filler,
           rebuild_mailbox,
)
from mailstudy.offline.replay.pcap_file import SERVER_KINDS, replay_pcap
from mailstudy.offline.replay.report import (
           METRIC_KEYS,
           ReplayError,
           ReplayReport,
           SessionReplay,
)
from mailstudy.offline.replay.rewrite import Edit, rewrite_client_stream
from mailstudy.offline.replay.run import CLOSE_TIMEOUT_S, DEFAULT_TIMEOUT_S
from mailstudy.offline.replay.session import replay_session
from mailstudy.offline.replay.uids import map_uid_set

__all__ = ["ReplayFlight", "Mailbox", "ReplayError", "ReplayReport", "SessionReplay", "Target", "METRIC_KEYS",
           "client_flights", "filler", "map_uid_set", "rebuild_mailbox", "replay_pcap", "replay_session",
           "rewrite_client_stream", "apply_edits"]

