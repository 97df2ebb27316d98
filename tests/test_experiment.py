"""Experiments and sweeps: tidy rows with every parameter, a cache that lets an interrupted sweep resume."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

import mailstudy.study.experiment as experiment
from mailstudy.study.experiment import Experiment, grid, medians, sweep


def test_bad_parameters_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="strategy"):
        Experiment(strategy="download-some")
    with pytest.raises(ValueError, match="size preset"):
        Experiment(sizes="huge")
    with pytest.raises(ValueError, match="read_fraction"):
        Experiment(read_fraction=1.5)


def test_rows_carry_parameters_server_version_and_seed():
    (row,) = experiment.run_experiment(Experiment(messages=4, sizes="fixed-5k", seed=3))
    for key in ("server", "server_version", "protocol", "strategy", "seed", "sizes", "messages",
                "mailstudy_version", "bytes_down", "round_trips", "label", "mailbox_bytes"):
        assert key in row, key
    # 4 x 5120 B of the authors' messages plus the 38,043 B of header fields they gathered on the way (realistic
    # headers, the default; the minimal control gives 4 x 5120)
    assert row["mailbox_bytes"] == 58523 and row["seed"] == 3 and row["headers"] == "realistic"


def test_an_interrupted_sweep_resumes_without_rerunning_finished_cells(tmp_path, monkeypatch):
    cells = grid(Experiment(sizes="fixed-5k"), messages=[3, 4, 5])
    ran: list[int] = []
    real = experiment.run_experiment

    def counting(exp, *a, **kw):
        ran.append(exp.messages)
        return real(exp, *a, **kw)

    monkeypatch.setattr(experiment, "run_experiment", counting)

    def stop_after_two(row):
        if len(ran) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(cells, cache_dir=tmp_path, progress=False, on_row=stop_after_two)
    assert ran == [3, 4]
    cached = sorted(tmp_path.glob("*.json"))
    assert len(cached) == 2 and not list(tmp_path.glob(".*tmp"))  # whole files only, no leftovers
    assert all(json.loads(p.read_text())[0]["integrity_ok"] for p in cached)
    df = sweep(cells, cache_dir=tmp_path, progress=False)
    assert ran == [3, 4, 5]  # only the missing cell ran
    assert sorted(df["messages"]) == [3, 4, 5]


def test_sweep_accepts_an_executor_and_medians_group_repeats(tmp_path):
    cells = [Experiment(sizes="fixed-5k", messages=3, repeats=2, protocol=p) for p in ("imap", "pop3")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        df = sweep(cells, cache_dir=None, executor=pool, progress=False)
    assert len(df) == 4
    med = medians(df)
    assert len(med) == 2 and set(med["protocol"]) == {"imap", "pop3"}
    assert (med["bytes_up"] == df.groupby("protocol")["bytes_up"].median().loc[med["protocol"]].values).all()


def test_real_mail_from_a_folder_is_delivered_and_checked(tmp_path):
    from mailstudy.corpus import generate, save_eml

    save_eml(generate(7, "buchner2009", seed=4), tmp_path / "mail")
    (row,) = experiment.run_experiment(Experiment(mailbox=str(tmp_path / "mail"), messages=0,
                                                  strategy="download-all"))
    assert row["messages"] == 7 and row["bodies_fetched"] == 7 and row["integrity_ok"]
    (first5,) = experiment.run_experiment(Experiment(mailbox=str(tmp_path / "mail"), messages=5,
                                                     protocol="pop3", strategy="download-all"))
    assert first5["messages"] == 5 and first5["mailbox_bytes"] < row["mailbox_bytes"]


def test_the_cache_key_follows_the_mailbox_content_and_the_server_version(tmp_path, monkeypatch):
    """Issue 10: an edited mbox or an upgraded server must not answer from stale cells."""
    from mailstudy.corpus import generate, save_eml

    folder = tmp_path / "mail"
    save_eml(generate(3, "fixed-5k", seed=1), folder)
    exp = Experiment(mailbox=str(folder), messages=0)
    before = exp.key()
    assert Experiment(mailbox=str(folder), messages=0).key() == before  # stable
    first = sorted(folder.iterdir())[0]
    first.write_bytes(first.read_bytes().replace(b"Subject:", b"Subject: edited", 1))
    edited = exp.key()
    assert edited != before  # same path, other content
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    assert Experiment(mailbox=str(moved), messages=0).key() == edited  # other path, same content
    plain = Experiment()
    old = plain.key()
    monkeypatch.setattr(experiment, "server_version", lambda kind: "dovecot 9.9 (upgraded)")
    assert plain.key() != old


def test_results_get_the_umasks_mode_and_default_folders_ignore_the_working_directory(tmp_path, monkeypatch):
    import os

    import pandas as pd

    from mailstudy.outputs import data_dir, project_root

    mask = os.umask(0o022)
    try:
        csv = experiment.write_csv_atomically(pd.DataFrame({"a": [1]}), tmp_path / "deep" / "r.csv")
    finally:
        os.umask(mask)
    assert csv.read_text() == "a\n1\n" and csv.stat().st_mode & 0o777 == 0o644
    assert not [p for p in csv.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind
    here = data_dir("cache")
    monkeypatch.chdir(tmp_path)
    assert data_dir("cache") == here and (project_root() / "pyproject.toml").is_file()
    monkeypatch.setenv("MAILSTUDY_ROOT", str(tmp_path))
    assert data_dir("results") == tmp_path / "data" / "results"


def test_count_cells_over_seeds_through_the_process_pool_equal_those_run_here(tmp_path):
    """Seeds run in parallel through experiment.count_executor: the same counts as one at a time, one cached cell
    per seed (the key holds the seed, so a stopped sweep resumes per seed)."""
    from mailstudy.study.experiment import count_executor

    cells = [Experiment(messages=3, sizes="fixed-5k", seed=s) for s in (0, 1, 2)]
    cols = ["seed", "bytes_up", "bytes_down", "commands", "round_trips"]
    here = sweep(cells, cache_dir=None, progress=False)[cols]
    with count_executor(2) as pool:
        assert pool is not None
        pooled = sweep(cells, cache_dir=tmp_path, executor=pool, progress=False)[cols]
    assert pooled.to_dict("records") == here.to_dict("records")
    assert len(list(tmp_path.glob("*.json"))) == 3
    with count_executor(1) as none:
        assert none is None  # one worker: run here, no pool to start
