"""What a server does when two devices open the same POP3 maildrop at the same moment.

Why: RFC 1939 (section 8) gives a POP3 session an exclusive lock on the maildrop, and the article says POP3 can
be used "from only one device at a time". Whether that is so depends on the server: this probe opens a second
session while the first still holds the maildrop, and reports what happened in words a table can show.
"""

from __future__ import annotations

import poplib
import time


def probe_concurrent_pop3(host: str, port: int, user: str, password: str, timeout: float = 20.0) -> dict:
    """Two POP3 logins on one account, the first still open: ``{"pop3_second_session": ..., "pop3_second_s":
    seconds the second login took}``. The outcome is ``served`` (both sessions see the maildrop) or
    ``refused: <server's words>``."""
    first = poplib.POP3(host, port, timeout=timeout)
    try:
        first.user(user)
        first.pass_(password)
        first.stat()
        t0 = time.perf_counter()
        second = None
        try:
            second = poplib.POP3(host, port, timeout=timeout)
            second.user(user)
            second.pass_(password)
            second.stat()
            outcome = "served"
        except (poplib.error_proto, OSError) as exc:
            words = exc.args[0] if exc.args else type(exc).__name__
            outcome = "refused: " + (words.decode("utf-8", "replace") if isinstance(words, bytes) else str(words))
        finally:
            if second is not None:
                try:
                    second.quit()
                except (poplib.error_proto, OSError):
                    second.close()
        return {"pop3_second_session": outcome, "pop3_second_s": time.perf_counter() - t0}
    finally:
        try:
            first.quit()
        except (poplib.error_proto, OSError):
            first.close()
