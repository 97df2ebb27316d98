"""The README's key figures: small copies of charts from ``data/figures/`` kept in ``docs/``.

Why a module of its own: the README shows three or four key figures, and they must be rebuilt the same way
after every full ``make study`` (``python -m mailstudy.faces.thumbnails``), not cropped by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The figures the README shows, in its order.
KEY_FIGURES = ("traffic_volume_up_down", "latency_waiting_vs_rtt", "devices_bytes_per_day", "article_claims")


def thumbnail(src: str | Path, dst: str | Path, width: int = 960) -> Path:
    """Write a copy of the PNG ``src`` at most ``width`` pixels wide to ``dst`` (whole file or nothing)."""
    from PIL import Image  # Pillow comes with matplotlib

    from mailstudy.outputs import publish, tmp_beside

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        if im.width > width:
            im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        tmp = tmp_beside(dst)
        im.save(tmp, format="PNG", optimize=True)
    publish(tmp, dst)
    return dst


def main(argv: list[str] | None = None) -> int:
    from mailstudy.outputs import data_dir, project_root

    figures, docs = data_dir("figures"), project_root() / "docs"
    missing = [n for n in KEY_FIGURES if not (figures / f"{n}.png").exists()]
    for name in KEY_FIGURES:
        if name not in missing:
            print(thumbnail(figures / f"{name}.png", docs / f"{name}.png"))
    if missing:
        print(f"not found under {figures} (run make study first): {', '.join(missing)}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
