"""Captures as they come: gzip/zstd/xz files, pcapng with several interfaces, folders and globs read in parallel,
Parquet out, and the bad cases (a cut or corrupt compressed file, a capture that starts mid-stream or holds one
side only).

The captures are the project's real ones (``captures/``) and the peer captures, compressed here with Python's
``gzip``/``lzma`` and the ``zstandard`` package; every result is compared with the analysis of the plain file.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import zstandard

import badpcaps
from mailstudy.cli.analyze import add_parser, run
from mailstudy.net.pcap import PcapError, PcapStats, read_tcp_tuples
from mailstudy.offline.analyze import analyze_pcap
from mailstudy.offline.batch import BatchError, analyze_files, expand

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
COMPRESS = {"gz": gzip.compress, "xz": lzma.compress, "zst": lambda b: zstandard.ZstdCompressor().compress(b)}


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    import argparse

    parser = argparse.ArgumentParser(prog="mailstudy")
    add_parser(parser.add_subparsers(dest="command"))
    code = run(parser.parse_args(["analyze", *argv]))
    out, err = capsys.readouterr()
    return code, out, err


def _view(analysis) -> list:
    return [(s.connection.index, s.metrics, [(e.command, e.status, e.bytes_down) for e in s.exchanges])
            for s in analysis.sessions]


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_captures_read_as_the_plain_file(kind: str, tmp_path: Path) -> None:
    for src in (CAPTURES / "pop3-keep.pcap", CAPTURES / "imap-header-first.pcap"):
        packed = tmp_path / f"{src.name}.{kind}"
        packed.write_bytes(COMPRESS[kind](src.read_bytes()))
        assert _view(analyze_pcap(packed)) == _view(analyze_pcap(src))
        stats = PcapStats()
        plain = list(read_tcp_tuples(src))
        assert list(read_tcp_tuples(packed, stats)) == plain
        assert stats.compression == {"gz": "gzip", "xz": "xz", "zst": "zstd"}[kind]


def test_zstd_frames_one_after_another(tmp_path: Path) -> None:
    data = (CAPTURES / "pop3-keep.pcap").read_bytes()
    c = zstandard.ZstdCompressor()
    packed = tmp_path / "two-frames.pcap.zst"
    packed.write_bytes(c.compress(data[:10_000]) + c.compress(data[10_000:]))
    assert _view(analyze_pcap(packed)) == _view(analyze_pcap(CAPTURES / "pop3-keep.pcap"))


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_cut_compressed_file_is_one_line_naming_the_file_and_offset(kind: str, tmp_path: Path) -> None:
    data = (CAPTURES / "imap-download-all.pcap").read_bytes()
    packed = COMPRESS[kind](data)
    cut = tmp_path / f"cut.pcap.{kind}"
    cut.write_bytes(packed[:len(packed) // 2])
    with pytest.raises(PcapError) as info:
        analyze_pcap(cut)
    msg = str(info.value)
    assert "\n" not in msg and "cut.pcap." + kind in msg and "truncated" in msg
    assert " bytes of capture" in msg and "byte " in msg  # where: capture bytes read, place in the file


def test_corrupt_zstd_is_one_line(tmp_path: Path) -> None:
    packed = bytearray(zstandard.ZstdCompressor().compress((CAPTURES / "pop3-keep.pcap").read_bytes()))
    packed[len(packed) // 2] ^= 0xFF
    bad = tmp_path / "bad.pcap.zst"
    bad.write_bytes(bytes(packed))
    with pytest.raises(PcapError, match=r"bad\.pcap\.zst: corrupt zstd data after [\d,]+ bytes of capture"):
        analyze_pcap(bad)


def test_pcapng_with_two_interfaces_compressed(tmp_path: Path) -> None:
    plain = tmp_path / "two.pcapng"
    expect = badpcaps.make_pcapng_two_interfaces(plain)
    packed = tmp_path / "two.pcapng.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert list(read_tcp_tuples(packed)) == list(read_tcp_tuples(plain))
    assert len(list(read_tcp_tuples(packed))) == expect.tcp_packets


def _mixed_folder(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A folder as capture rotation leaves it: plain, gzip and zstd files (and a README that is no capture)."""
    folder = tmp_path / "rotated"
    folder.mkdir()
    made = {}
    for src, kind in ((CAPTURES / "imap-header-first.pcap", None), (CAPTURES / "pop3-keep.pcap", "gz"),
                      (CAPTURES / "pop3-pipelined.pcap", "zst"), (CAPTURES / "imap-download-all.pcap", "xz")):
        name = src.name + (f".{kind}" if kind else "")
        (folder / name).write_bytes(COMPRESS[kind](src.read_bytes()) if kind else src.read_bytes())
        made[name] = src
    (folder / "README.txt").write_text("not a capture\n")
    return folder, made


def test_folder_to_parquet_in_parallel(tmp_path: Path, capsys) -> None:
    folder, made = _mixed_folder(tmp_path)
    out = tmp_path / "x.parquet"
    code, text, err = _cli([str(folder), "--out", str(out), "--jobs", "2"], capsys)
    assert code == 0, err
    sessions = pd.read_parquet(out)
    exchanges = pd.read_parquet(tmp_path / "x.exchanges.parquet")
    assert sorted(Path(f).name for f in sessions["file"]) == sorted(made)
    for name, src in made.items():
        whole = analyze_pcap(src)
        mine = sessions[sessions["file"] == str(folder / name)]
        assert len(mine) == len(whole.sessions) == 1
        row, s = mine.iloc[0], whole.sessions[0]
        for key in ("stream", "bytes_up", "bytes_down", "commands", "round_trips", "exchanges_failed"):
            want = s.connection.index if key == "stream" else s.metrics[key]
            assert row[key] == want, (name, key)
        ex = exchanges[exchanges["file"] == str(folder / name)]
        assert list(ex["command"]) == [e.command for e in s.exchanges]
        assert list(ex["bytes_down"]) == [e.bytes_down for e in s.exchanges]
    assert "LOGIN" in set(exchanges["command"]) and not exchanges["arguments"].str.contains("wonderland").any()
    assert not list(tmp_path.glob(".*part*"))  # no temporary part is left


def test_a_cut_file_in_a_folder_is_one_line_and_the_rest_is_written(tmp_path: Path) -> None:
    folder, made = _mixed_folder(tmp_path)
    data = gzip.compress((CAPTURES / "pop3-delete.pcap").read_bytes())
    (folder / "zz-cut.pcap.gz").write_bytes(data[:len(data) // 2])
    out = tmp_path / "x.parquet"
    proc = subprocess.run([sys.executable, "-m", "mailstudy.cli", "analyze", str(folder), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailstudy: error: zz-cut.pcap.gz: truncated gzip data after")
    assert "Traceback" not in proc.stderr
    sessions = pd.read_parquet(out)
    assert sorted(Path(f).name for f in sessions["file"]) == sorted(made)


def test_glob_and_expand(tmp_path: Path) -> None:
    folder, made = _mixed_folder(tmp_path)
    assert [Path(p).name for p in expand([str(folder / "pop3-*")])] == ["pop3-keep.pcap.gz", "pop3-pipelined.pcap.zst"]
    assert sorted(Path(p).name for p in expand([str(folder)])) == sorted(made)
    with pytest.raises(BatchError, match="no file matches"):
        expand([str(folder / "nothing-*.pcap")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BatchError, match="holds no capture file"):
        expand([str(empty)])


def test_results_carry_their_file(tmp_path: Path) -> None:
    folder, made = _mixed_folder(tmp_path)
    results = list(analyze_files(expand([str(folder)])))
    for r in results:
        assert r.error is None and r.sessions
        assert all(s.file == r.path for s in r.sessions)


def test_mid_stream_capture_is_partial_and_starts_at_a_command(tmp_path: Path) -> None:
    """Drop the first half of a real POP3 capture's packets: the session is marked partial, no warning quotes
    mail, and the exchanges from the first command seen on are those of the whole capture."""
    import struct

    from mailstudy.net.pcap import read_tcp

    # the example ran on a free port; put it on 110 so that the port, not a greeting, tells POP3
    port = analyze_pcap(CAPTURES / "pop3-keep.pcap").sessions[0].port
    data = bytearray((CAPTURES / "pop3-keep.pcap").read_bytes())
    for p in read_tcp(CAPTURES / "pop3-keep.pcap"):
        for at, value in ((p.tcp_offset, p.sport), (p.tcp_offset + 2, p.dport)):
            if value == port:
                data[at:at + 2] = (110).to_bytes(2, "big")
    src = tmp_path / "pop3-110.pcap"
    src.write_bytes(bytes(data))
    data = bytes(data)
    pos, records = 24, []
    while pos < len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        records.append(data[pos:pos + 16 + incl])
        pos += 16 + incl
    cut = tmp_path / "late.pcap"
    cut.write_bytes(data[:24] + b"".join(records[len(records) // 2:]))
    whole = analyze_pcap(src).sessions[0]
    late = analyze_pcap(cut).sessions[0]
    assert late.partial and not whole.partial
    seen = [(e.command, e.arguments, e.status, e.bytes_down) for e in late.exchanges if e.status is not None]
    full = [(e.command, e.arguments, e.status, e.bytes_down) for e in whole.exchanges]
    assert seen and seen == full[len(full) - len(seen):]
    assert not any("octets" in w or "Subject" in w for w in late.warnings)


def test_one_side_only_is_partial(tmp_path: Path) -> None:
    segs = [s for s in badpcaps.conversation() if s.sport == 143]  # the server's packets only
    path = tmp_path / "one-side.pcap"
    badpcaps.write_pcap(path, [(s.t_ns, badpcaps.frame(s)) for s in segs])
    a = analyze_pcap(path)
    assert len(a.sessions) == 1 and a.sessions[0].partial
    assert any("only one side" in w for w in a.sessions[0].warnings)


def test_cli_json_for_several_files(tmp_path: Path, capsys) -> None:
    import json

    folder, made = _mixed_folder(tmp_path)
    code, text, err = _cli([str(folder / "imap-*"), str(folder / "pop3-keep.pcap.gz"), "--json", "--jobs", "1"],
                           capsys)
    assert code == 0, err
    doc = json.loads(text)
    assert [Path(f["file"]).name for f in doc["files"]] == ["imap-download-all.pcap.xz", "imap-header-first.pcap",
                                                            "pop3-keep.pcap.gz"]
    assert doc["errors"] == []


def test_a_dask_cluster_analyzes_a_folder_as_the_serial_run(tmp_path: Path, capsys) -> None:
    """The sweep's rule: any Executor; a Dask cluster (``--scheduler``) gives what one process gives."""
    distributed = pytest.importorskip("distributed", reason="Dask is the optional extra mailstudy[dask] "
                                                            "(make test installs it)")
    folder, made = _mixed_folder(tmp_path)
    paths = expand([str(folder)])
    serial = [[_row(s) for s in r.sessions] for r in analyze_files(paths)]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = [[_row(s) for s in r.sessions] for r in analyze_files(paths, executor=client.get_executor())]
        out = tmp_path / "d.parquet"
        code, _text, err = _cli([str(folder), "--out", str(out), "--scheduler", cluster.scheduler_address], capsys)
    assert remote == serial and len(serial) == len(made)
    assert code == 0, err
    assert len(pd.read_parquet(out)) == len(made)


def _row(s) -> tuple:
    return s.file, s.connection.index, s.metrics["bytes_down"], s.metrics["commands"]


def test_redact_refuses_a_compressed_capture(tmp_path: Path) -> None:
    """Redaction patches packets in place at their file offsets, which a compressed file does not have."""
    from mailstudy.offline.redact import RedactError, redact_pcap

    packed = tmp_path / "keep.pcap.gz"
    packed.write_bytes(gzip.compress((CAPTURES / "pop3-keep.pcap").read_bytes()))
    with pytest.raises(RedactError, match="gzip-compressed: decompress it first"):
        redact_pcap(packed, tmp_path / "out.pcap")
    assert not (tmp_path / "out.pcap").exists()
