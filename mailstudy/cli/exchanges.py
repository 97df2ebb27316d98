"""Every exchange of a session as rows, credentials shown as ``***``: what ``session --exchanges`` prints.

Why a module of its own: ``session`` and ``session --client`` list exchanges the same way (text and JSON), and
neither may print a credential. The rule is not ours: :func:`mailstudy.protocol.metrics.redacted` applies the
credential spans of the protocol parsers, as ``analyze`` and ``redact`` do.
"""

from __future__ import annotations


def exchange_records(exchanges) -> list[dict]:
    """Every exchange as a row (index, command, arguments, bytes each way), credentials as ``***`` (see the
    module's docstring for whose rule that is)."""
    from mailstudy.protocol.metrics import exchanges_frame

    frame = exchanges_frame(exchanges)
    return frame[["index", "command", "arguments", "bytes_up", "bytes_down"]].to_dict("records")


def format_exchanges(records: list[dict]) -> str:
    """The rows as a table a person reads."""
    import pandas as pd

    return pd.DataFrame(records).to_string(index=False)
