"""The one base of every error mailstudy raises on purpose, so the command line can catch them all at once.

Why a module of its own (pure layer, imports nothing): every layer defines its own error classes next to the
rule they guard (``PcapError`` beside the pcap reader, ``ServerError`` beside the servers), and each derives
from :class:`MailstudyError` as well as from the built-in kind it already was (``ValueError`` for bad input,
``RuntimeError`` for a failure while running), so existing ``except ValueError`` callers keep working.

The command line prints ``mailstudy: error: MESSAGE`` and exits 2 for any :class:`MailstudyError`, and exits 1
for a :class:`CheckFailed` (a measurement that ran but whose check failed, such as a message whose downloaded
bytes differ from what was delivered).
"""

from __future__ import annotations


class MailstudyError(Exception):
    """An error mailstudy raises on purpose; its message is one line that says what to change."""


class CheckFailed(MailstudyError):
    """Work ran to the end but a check of its result failed (exit status 1, not 2)."""

    #: What failed, as the command line names it: ``mailstudy: CHECK failed: MESSAGE``.
    check = "check"
