"""Where the peer captures (real IMAP/POP3 pcaps from another project) are, for every test that reads them.

CI lays a copy of shared/ beside the checkout (``../shared/peer-captures``); a developer's machine has it at
``/work/shared``; ``MAILSTUDY_PEER_CAPTURES`` names any other place. Under CI a missing folder is an error, not
a reason to skip: CI must exercise them.
"""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    os.environ.get("MAILSTUDY_PEER_CAPTURES"),
    Path(__file__).resolve().parents[2] / "shared" / "peer-captures",
    "/work/shared/peer-captures",
]


def _find() -> Path:
    for c in _CANDIDATES:
        if c and Path(c).is_dir() and any(Path(c).glob("*.pcap*")):
            return Path(c)
    if os.environ.get("CI"):
        raise RuntimeError(f"peer captures not found in any of {[str(c) for c in _CANDIDATES if c]}")
    return Path(_CANDIDATES[1])


PEER = _find()
PEER_FILES = sorted(PEER.glob("*.pcap*")) if PEER.is_dir() else []
