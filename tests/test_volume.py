"""Notebook 01's arithmetic on real sessions: content against overhead, and the measured break-even."""

from __future__ import annotations

import pandas as pd

from mailstudy.study.experiment import Experiment
from mailstudy.study.volume import measured_breakeven, read_fraction_sweep, volume_sweep, with_overhead


def test_download_all_content_is_the_mailbox_and_overhead_is_the_rest():
    df = with_overhead(volume_sweep(["embedded"], (8,), sizes="fixed-5k"))
    whole = df[df["strategy"] == "download-all"]
    assert (whole["content_bytes"] == whole["mailbox_bytes"]).all()
    assert (df["overhead_bytes"] > 0).all() and (df["overhead_share"] < 1).all()
    # header-first moves headers only: its content is exactly the header blocks, which with mail as it arrives
    # (realistic headers, about 7 kB each) are more than half of a mailbox of 5 kB messages
    first = df[df["strategy"] == "header-first"]
    heads = sum(len(m.header_bytes) for m in Experiment(messages=8, sizes="fixed-5k").corpus())
    assert (first["content_bytes"] == heads).all()
    assert (first["mailbox_bytes"] / 2 < heads).all() and (heads < first["mailbox_bytes"]).all()


def test_breakeven_lies_where_header_first_reaches_download_all():
    # the mechanics of the break-even, on the minimal control's small headers (realistic ones move it below 0.5)
    df = read_fraction_sweep(Experiment(messages=10, sizes="fixed-5k", headers="minimal"), [0.0, 0.5, 1.0])
    even = measured_breakeven(df)
    assert set(even) == {"imap", "pop3"}
    for protocol, f in even.items():
        part = df[df["protocol"] == protocol]
        whole = part[part["strategy"] == "download-all"]["bytes_down"].iloc[0]
        top = part[(part["strategy"] == "header-first") & (part["read_fraction"] == 1.0)]["bytes_down"].iloc[0]
        assert top > whole  # reading everything one by one costs more than one download-all
        assert 0.5 < f < 1.0


def test_breakeven_is_none_when_header_first_never_gets_there():
    df = pd.DataFrame({"protocol": ["imap"] * 3, "strategy": ["header-first", "header-first", "download-all"],
                       "read_fraction": [0.0, 1.0, 0.0], "bytes_down": [10, 50, 100]})
    assert measured_breakeven(df) == {"imap": None}
