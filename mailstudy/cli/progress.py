"""Progress bars for the long steps of a command (generating and delivering a large mailbox).

Why a module of its own: every subcommand shows progress the same way: tqdm on stderr, only when stderr is a
terminal (``disable=None``) and only for loops long enough to notice, so ``--json`` output and scripts see none.
"""

from __future__ import annotations

from tqdm import tqdm

MIN_ITEMS = 2000  # fewer items finish in well under a second: no bar


def bar(items, total: int, desc: str):
    """``items`` wrapped in a tqdm bar on stderr when ``total`` is large and stderr is a terminal."""
    if total < MIN_ITEMS:
        return items
    return tqdm(items, total=total, desc=desc, unit=" msg", disable=None, leave=False)
