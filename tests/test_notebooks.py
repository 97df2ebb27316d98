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
@pytest.mark.timeout(960)  # the study's own subprocess timeout (900 s) decides, not pytest-timeout's 300 s default
def test_study_quick_executes_every_notebook(tmp_path):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "captures", tmp_path / "captures")
    # the project root is tmp_path (MAILSTUDY_ROOT); the working directory is elsewhere and must not matter
    out = subprocess.run([sys.executable, "-m", "mailstudy.cli", "study", "--quick"],
                         cwd=tmp_path / "notebooks", env={**os.environ, "MAILSTUDY_ROOT": str(tmp_path)},
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    from mailstudy.study.notebooks import missing_needs

    skipped = {nb.stem: missing_needs(nb) for nb in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")}
    skipped = {k: v for k, v in skipped.items() if v}
    if os.environ.get("CI"):
        assert not skipped, f"CI runs every notebook: {skipped}"
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        if nb.stem in skipped:
            assert f"skipped {nb.stem}: {skipped[nb.stem]}" in out.stdout
            continue
        assert (tmp_path / "build" / nb.name).exists()
        assert (tmp_path / "build" / nb.with_suffix(".html").name).stat().st_size > 10_000
    table = pd.read_csv(tmp_path / "data" / "results" / "traffic_volume.csv")
    assert set(table["label"]) == {"IMAP header-first", "IMAP download-all", "POP3 header-first",
                                   "POP3 download-all"}
    assert table["integrity_ok"].all()
    latency = () if "03-round-trips-and-latency" in skipped else (
        "latency_list_open", "latency_model_vs_measured", "latency_waiting_vs_rtt", "latency_pipelining_batching",
        "latency_breakeven")
    for name in ("traffic_volume_up_down", "bytes_vs_read_fraction", "traffic_volume_overhead", "article_claims",
                 "devices_bytes_per_day", "devices_agreement", "devices_losses", "devices_condstore", "listing_share",
                 *latency,
                 *(() if "08-large-mailboxes" in skipped else ("mailbox_sync_dovecot",))):
        png = tmp_path / "data" / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    if latency:  # the study's latency and break-even numbers run over TLS with each profile's loss by default
        even = pd.read_csv(tmp_path / "data" / "results" / "breakeven_per_profile.csv")
        assert set(even["conditions"]) == {"realistic"} and set(even["tls"]) == {"implicit"}
        assert even.set_index(["profile", "protocol"]).loc[("edge", "imap"), "loss"] > 0
    # every table is a median over the quick run's two seeds, with its interval beside it (study/intervals.py)
    results = tmp_path / "data" / "results"
    summaries = {"traffic_volume": "bytes_down", "bytes_vs_read_fraction": "bytes_down",
                 "devices_fleet": "bytes_down_per_day", "devices_losses": "messages_lost",
                 "devices_condstore": "bytes_down_per_day", "devices_kept_connections": "bytes_per_day"}
    if latency:
        summaries.update(latency_measured="time_to_list_s", model_vs_measured="error",
                         waiting_vs_rtt="duration_s", pipelining_batching="round_trips",
                         breakeven_per_profile="waiting_r")
    for name, metric in summaries.items():
        summary = pd.read_csv(results / f"{name}.csv")
        assert {metric, f"{metric}_lo", f"{metric}_hi", "seeds"} <= set(summary.columns), name
        assert set(summary["seeds"]) == {2}, name
        assert (summary[f"{metric}_lo"] <= summary[metric]).all() and (summary[metric] <= summary[
            f"{metric}_hi"]).all() or metric == "waiting_r", name  # a break-even may be "never" (empty)
        assert sorted(pd.read_csv(results / f"{name}_seeds.csv")["seed"].unique()) == [0, 1], name
    claims = pd.read_csv(tmp_path / "data" / "results" / "article_claims.csv")
    assert claims["verdict"].notna().all() and len(claims) >= 15
    index = (tmp_path / "build" / "index.html").read_text()
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        assert (f"skipped: {skipped[nb.stem]}" if nb.stem in skipped else f'href="{nb.stem}.html"') in index


@pytest.mark.slow
@pytest.mark.parametrize("notebook, params, expected", [
    ("06-the-article-claims", {"SERVERS": ["moon"]}, "ParameterError: SERVERS: unknown 'moon'"),
    ("01-traffic-volume", {"MESSAGE_COUNTS": [0]}, "ParameterError: MESSAGE_COUNTS must be a whole number"),
])
def test_nonsense_parameters_stop_the_first_cell_with_one_line(tmp_path, notebook, params, expected):
    import papermill as pm

    from mailstudy.study.notebooks import _why, kernels_of_this_run

    out = tmp_path / f"{notebook}.ipynb"
    # the study's kernels (over Unix sockets: a TCP kernel can lose its port to another before it binds it)
    with kernels_of_this_run() as manager, pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(ROOT / "notebooks" / f"{notebook}.ipynb"), str(out),
                            parameters={"QUICK": True, **params}, progress_bar=False, kernel_name="python3",
                            kernel_manager_class=manager, cwd=str(ROOT))
    assert err.value.exec_count == 3  # parameters, injected parameters, then the check
    line = _why(err.value, out)
    assert line.startswith(expected) and "\n" not in line and "Traceback" not in line


def test_study_only_names_the_notebooks_when_nothing_matches(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mailstudy.cli", "study", "--only", "no-such-notebook"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "no-such-notebook" in out.stderr and "05-pcap-explorer" in out.stderr


@pytest.mark.slow
def test_notebook_02_runs_from_the_notebooks_folder(tmp_path, monkeypatch):
    """JupyterLab opened from the checkout starts kernels in notebooks/: paths come from the project root."""
    import papermill as pm

    shutil.copytree(ROOT / "captures", tmp_path / "captures")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    monkeypatch.setenv("MAILSTUDY_ROOT", str(tmp_path))
    from mailstudy.study.notebooks import kernels_of_this_run

    out = tmp_path / "out.ipynb"
    with kernels_of_this_run() as manager:  # over Unix sockets, as the study's
        pm.execute_notebook(str(tmp_path / "notebooks" / "02-what-crosses-the-wire.ipynb"), str(out),
                            parameters={"QUICK": True}, progress_bar=False, kernel_name="python3",
                            kernel_manager_class=manager, cwd=str(tmp_path / "notebooks"))
    assert (tmp_path / "build" / "live-pop3.pcap").exists() and not (tmp_path / "notebooks" / "build").exists()
    assert (tmp_path / "data" / "figures" / "ladder-imap-header-first.png").exists()
    assert not (tmp_path / "notebooks" / "data").exists()


def _tiny_notebook(path: Path, code: str, question: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}\n\n**Question:** {question}"),
                nbformat.v4.new_code_cell("QUICK = False", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_notebooks_run_side_by_side_and_a_failure_names_its_notebook(tmp_path):
    """Three notebooks two at a time: the two that work are executed, with HTML and an index row; the one
    that fails is named in one error, with its cell and exception."""
    from mailstudy.study.notebooks import NotebookError, run_notebooks

    folder, build = tmp_path / "notebooks", tmp_path / "build"
    folder.mkdir()
    _tiny_notebook(folder / "01-one.ipynb", "x = 1 + 1\nprint('one', x)", "does one run?")
    _tiny_notebook(folder / "02-two.ipynb", "raise ValueError('two is broken')", "does two fail?")
    _tiny_notebook(folder / "03-three.ipynb", "print('three')", "does three run?")
    with pytest.raises(NotebookError) as err:
        run_notebooks(quick=True, build=build, notebooks=folder, jobs=2, progress=False)
    assert str(err.value).startswith("02-two.ipynb stopped in cell") and "ValueError: two is broken" in str(err.value)
    assert "\n" not in str(err.value)
    assert (build / "02-two.ipynb").exists()  # published with its error cell, for the reader to see
    # 01 ran beside 02; 03 ran (when 02 failed it had already started) or was not started: never half written
    assert (build / "01-one.ipynb").exists() and (build / "01-one.html").stat().st_size > 1000
    assert not list(build.glob(".*.part"))
    runs = run_notebooks(quick=True, build=build, notebooks=folder, only=["01", "03"], jobs=2, progress=False)
    assert sorted(r.notebook.name for r in runs) == ["01-one.ipynb", "03-three.ipynb"]
    assert all(r.html.exists() and r.seconds > 0 for r in runs)
    index = (build / "index.html").read_text()
    assert "does one run?" in index and "does three run?" in index


def test_a_notebook_that_reads_another_waits_for_it():
    """06's claims read back the sessions 01 ran: 06 starts only when 01 is neither waiting nor running."""
    from mailstudy.study.notebooks import AFTER, _next_ready

    assert "01" in AFTER["06"]
    nb = {n: Path(f"{n}-x.ipynb") for n in ("01", "06", "08")}
    assert _next_ready([nb["06"], nb["08"]], [nb["01"]]) == nb["08"]
    assert _next_ready([nb["06"], nb["01"]], []) == nb["01"]
    assert _next_ready([nb["06"]], [nb["01"]]) is None
    assert _next_ready([nb["06"]], [nb["08"]]) == nb["06"]


def test_the_study_kernels_talk_over_unix_sockets_even_when_tmpdir_is_long(tmp_path, monkeypatch):
    """Kernels over TCP can lose their port to a kernel started beside them ("Address already in use"); the
    study's kernels use Unix sockets, whose paths must stay under 108 bytes whatever TMPDIR is."""
    import asyncio
    import tempfile

    from mailstudy.study.notebooks import kernels_of_this_run

    long_tmp = tmp_path / ("t" * 80)
    long_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))

    async def run(manager_class):
        km = manager_class(kernel_name="python3")
        await km.start_kernel()
        try:
            client = km.client()
            client.start_channels()
            await client.wait_for_ready(timeout=60)
            reply = await client.execute_interactive("x = 6 * 7", timeout=60)
            client.stop_channels()
            return km.transport, km.ip, km.get_connection_info(), reply["content"]["status"]
        finally:
            await km.shutdown_kernel(now=True)

    with kernels_of_this_run() as manager:
        transport, ip, info, status = asyncio.run(run(manager))
        assert transport == "ipc" and info["transport"] == "ipc" and status == "ok"
        sockets = [f"{ip}-{info[k]}" for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")]
        assert all(len(s.encode()) < 108 for s in sockets), sockets
        assert str(long_tmp) not in ip  # the long temporary folder was not used for the sockets
