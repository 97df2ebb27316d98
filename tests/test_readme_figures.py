"""README.md's figures come from the study's tables (issue 17 item 8): every marked figure equals what the
committed filler computes from the committed snapshot of the study's outputs (``docs/results/``), each mark
names a known figure computed from a named column, filling is idempotent, and a figure moves when its column
does."""

from __future__ import annotations

import pandas as pd
import pytest

from mailstudy.faces import readme_figures as rf
from mailstudy.outputs import project_root

ROOT = project_root()


def test_readme_figures_equal_the_filler_on_the_committed_outputs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tables = rf.load_tables(ROOT / "docs" / "results")
    filled, missing = rf.fill(text, tables)
    assert missing == []
    assert filled == text, "README.md's figures differ from docs/results: run python -m mailstudy.faces.readme_figures"


def test_every_mark_names_a_figure_whose_column_is_in_the_snapshot():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    names = [m.group("name") for m in rf.MARKER.finditer(text)]
    assert len(names) >= 15
    tables = rf.load_tables(ROOT / "docs" / "results")
    for name in names:
        fig = rf.FIGURES[name]
        assert fig.column in tables[fig.table].columns, (name, fig.table, fig.column)


def volume(hf_imap=100.0):
    rows = []
    for protocol, hf in (("imap", hf_imap), ("pop3", 120.0)):
        rows += [dict(server="embedded", protocol=protocol, strategy="header-first", messages=40, bytes_down=hf),
                 dict(server="embedded", protocol=protocol, strategy="download-all", messages=40, bytes_down=1000.0),
                 dict(server="embedded", protocol=protocol, strategy="header-first", messages=10, bytes_down=999.0)]
    return pd.DataFrame(rows)


def test_fill_computes_each_mark_from_its_column_and_is_idempotent():
    template = ("share <!-- study:list_share_imap -->?<!-- /study --> and <!-- study:list_share_pop3 -->?"
                "<!-- /study --> at <!-- study:volume_messages -->?<!-- /study -->; "
                "<!-- study:claims_contradicted -->?<!-- /study --> contradicted")
    tables = {"traffic_volume": volume(),
              "article_claims": pd.DataFrame(dict(key=["a", "a", "b"], server=["embedded", "dovecot", "embedded"],
                                                  verdict=["contradicted", "contradicted", "supported"]))}
    once, missing = rf.fill(template, tables)
    assert missing == []
    assert once == ("share <!-- study:list_share_imap -->10.00 %<!-- /study --> and "
                    "<!-- study:list_share_pop3 -->12.00 %<!-- /study --> at <!-- study:volume_messages -->40"
                    "<!-- /study -->; <!-- study:claims_contradicted -->2<!-- /study --> contradicted")
    assert rf.fill(once, tables)[0] == once
    moved, _ = rf.fill(once, {**tables, "traffic_volume": volume(hf_imap=250.0)})
    assert "<!-- study:list_share_imap -->25.00 %<!-- /study -->" in moved


def test_a_missing_table_leaves_the_figure_and_says_so():
    text = "x <!-- study:model_worst -->old<!-- /study -->"
    assert rf.fill(text, {}) == (text, ["model_worst"])
    with pytest.raises(rf.FigureError, match="unknown figure"):
        rf.value("no-such-figure", {})


def test_interval_over_seeds_is_quoted_when_the_table_has_it():
    df = pd.DataFrame(dict(profile=["4g"], protocol=["imap"], waiting_r=[0.317], waiting_r_lo=[0.142],
                           waiting_r_hi=[0.562], seeds=[10]))
    text = "<!-- study:waiting_breakeven_4g_imap -->?<!-- /study -->"
    filled, _ = rf.fill(text, {"breakeven_per_profile": df})
    assert "0.32 (95 % interval 0.14 to 0.56, 10 seeds)" in filled
    never = df.assign(waiting_r=[1.7])
    assert ">never<" in rf.fill(text, {"breakeven_per_profile": never})[0]


def test_snapshot_keeps_the_quoted_columns_and_the_run(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    volume().assign(extra=1, bytes_down_lo=1.0, bytes_down_hi=2.0, seeds=10).to_csv(results / "traffic_volume.csv",
                                                                                     index=False)
    rf.snapshot(results, tmp_path / "docs", "quick")
    kept = pd.read_csv(tmp_path / "docs" / "traffic_volume.csv")
    assert "extra" not in kept.columns and {"bytes_down_lo", "bytes_down_hi", "seeds"} <= set(kept.columns)
    assert rf.value("run_mode", rf.load_tables(tmp_path / "docs")) == "quick"


def test_after_a_full_study_the_readme_is_refilled(tmp_path):
    results = tmp_path / "data" / "results"
    results.mkdir(parents=True)
    volume().to_csv(results / "traffic_volume.csv", index=False)
    assert "no README.md" in rf.after_study(False, results, tmp_path)
    (tmp_path / "README.md").write_text("IMAP: <!-- study:list_share_imap -->old<!-- /study -->\n")
    assert "left as they were" in rf.after_study(True, results, tmp_path)
    assert "old" in (tmp_path / "README.md").read_text()
    assert "refilled" in rf.after_study(False, results, tmp_path)
    assert (tmp_path / "README.md").read_text() == "IMAP: <!-- study:list_share_imap -->10.00 %<!-- /study -->\n"
