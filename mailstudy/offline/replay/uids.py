"""Step 4 of a replay: map an IMAP sequence set of captured UIDs to the UIDs a fresh server gives the same
messages (1..n in delivery order).

Why a module of its own: the mapping rules (ranges, ``*``, UIDs past the end, UIDs never seen) are pure
logic with their own tests, independent of how the client stream is tokenised.
"""

from __future__ import annotations


def map_uid_set(text: str, uid_map: dict[int, int]) -> tuple[str, list[str]]:
    """Map an IMAP sequence set of captured UIDs to the new server's UIDs (module doc, step 4)."""
    if not uid_map:
        return text, []
    ordered = sorted(uid_map)
    top = ordered[-1]
    new_top = max(uid_map.values())
    warnings: list[str] = []

    def one(x: str) -> str:
        if x == "*" or not x.isdigit():
            return x
        u = int(x)
        if u in uid_map:
            return str(uid_map[u])
        if u > top:
            return str(new_top + 1)
        warnings.append(f"UID {u} is not a UID the capture showed; kept as it is")
        return x

    def rng(a: str, b: str) -> str:
        if a == "*" or b == "*" or not (a.isdigit() and b.isdigit()):
            lo = a if b == "*" else b
            if lo.isdigit():
                u = int(lo)
                inside = [x for x in ordered if x >= u]
                lo_new = str(uid_map[inside[0]]) if inside else str(new_top + 1)
                return f"{lo_new}:*" if b == "*" else f"*:{lo_new}"
            return f"{a}:{b}"
        lo, hi = sorted((int(a), int(b)))
        inside = [x for x in ordered if lo <= x <= hi]
        if not inside:
            if lo > top:
                return f"{new_top + 1}:{new_top + 1 + hi - lo}"
            warnings.append(f"UID range {a}:{b} holds no UID the capture showed; kept as it is")
            return f"{a}:{b}"
        return f"{uid_map[inside[0]]}:{uid_map[inside[-1]]}" if len(inside) > 1 or lo != hi else \
            str(uid_map[inside[0]])

    parts = []
    for item in text.split(","):
        a, sep, b = item.partition(":")
        parts.append(rng(a, b) if sep else one(a))
    out = ",".join(parts)
    return (text if out == text else out), warnings
