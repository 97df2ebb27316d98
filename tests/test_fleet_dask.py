"""Fleet sweeps leave one machine through any ``concurrent.futures.Executor``: a Dask cluster gives the same
count rows as the serial run, and ``mailstudy fleet --scheduler`` sends its cell to an existing cluster."""

from __future__ import annotations

import json

import pytest

distributed = pytest.importorskip("distributed", reason="Dask is the optional extra mailstudy[dask] "
                                                        "(make test installs it)")

from mailstudy.cli.commands import main
from mailstudy.study.fleet import FleetCell, counts_only, fleet_sweep

CELLS = [FleetCell(devices=2, clients=c, hours=2, rate=72, start_messages=2, poll_s=1800, seed=3)
         for c in (("k9",), ("thunderbird-pop3", "neomutt"))]


def _records(tables, name):
    return sorted(counts_only(tables[name].to_dict("records")), key=lambda r: json.dumps(r, default=str,
                                                                                          sort_keys=True))


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as c:
        yield c


def test_a_dask_cluster_gives_the_serial_rows(cluster, tmp_path):
    serial = fleet_sweep(CELLS, cache_dir=None, progress=False)
    with distributed.Client(cluster) as client:
        remote = fleet_sweep(CELLS, cache_dir=tmp_path, executor=client.get_executor(), progress=False)
    for name in ("devices", "fleet", "sessions"):
        assert len(serial[name]) and _records(serial, name) == _records(remote, name), name
    assert len(list(tmp_path.glob("fleet-*.json"))) == len(CELLS)  # each finished cell cached


def test_cli_sends_the_cell_to_a_scheduler(cluster, tmp_path, capsys):
    rc = main(["fleet", "--devices", "2", "--client", "k9", "--hours", "2", "--rate", "72", "--poll", "30m",
               "--scheduler", cluster.scheduler_address, "--cache-dir", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["fleet"]["devices"] == 2 and len(out["devices"]) == 2
    assert out["fleet"]["sessions"] == sum(d["sessions"] for d in out["devices"]) > 0


def test_an_unreachable_scheduler_is_a_one_line_error(capsys):
    rc = main(["fleet", "--scheduler", "tcp://127.0.0.1:9", "--hours", "1", "--poll", "30m"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Dask scheduler" in err
