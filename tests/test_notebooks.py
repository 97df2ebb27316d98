"""Every notebook runs from scratch with QUICK=True, as `make study` runs it, and writes what it promises."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_study_quick_executes_every_notebook(tmp_path):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "captures", tmp_path / "captures")
    # the project root is tmp_path (MAILSTUDY_ROOT); the working directory is elsewhere and must not matter
    out = subprocess.run([sys.executable, "-m", "mailstudy.cli", "study", "--quick"],
                         cwd=tmp_path / "notebooks", env={**os.environ, "MAILSTUDY_ROOT": str(tmp_path)},
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        assert (tmp_path / "build" / nb.name).exists()
        assert (tmp_path / "build" / nb.with_suffix(".html").name).stat().st_size > 10_000
    table = pd.read_csv(tmp_path / "data" / "results" / "bytes_down_vs_mailbox_size.csv")
    assert set(table["label"]) == {"IMAP header-first", "IMAP download-all", "POP3 header-first",
                                   "POP3 download-all"}
    assert table["integrity_ok"].all()
    png = tmp_path / "data" / "figures" / "bytes_down_vs_mailbox_size.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
