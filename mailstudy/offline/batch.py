"""Analyze captures as they come: a folder, a glob or a list of files, compressed or not, in parallel.

Why a module of its own: capture rotation leaves a folder of files (``mail-0001.pcap.gz``,
``mail-0002.pcapng.zst``, ...), and one file at a time leaves all but one core idle. This module turns the
inputs into a list of capture files (:func:`expand`) and runs :func:`analyze_file` on each through any
``concurrent.futures.Executor`` (the sweep's rule: a ``ProcessPoolExecutor`` here, a Dask cluster's
``client.get_executor()`` to leave the machine). Each file streams (:class:`~mailstudy.offline.analyze.
SessionStream`): its sessions, and their exchanges when asked, go to a Parquet part of its own as they end
(:class:`~mailstudy.offline.tables.ParquetSink`), and what comes back to the caller is the file's summary:
sessions without their events, sorted by ``tcp.stream``. Every session carries the file it came from.

A file that cannot be read, or whose compressed data is cut or corrupt, is one line in its result's
``error`` (naming the file and the offset); the other files are analyzed all the same.
"""

from __future__ import annotations

import glob
import os
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from mailstudy.errors import MailstudyError

__all__ = ["BatchError", "FileResult", "expand", "analyze_file", "analyze_files", "CAPTURE_NAMES"]

#: What a capture's file name ends with in a folder (a compression suffix may follow): other files are left out.
CAPTURE_NAMES = (".pcap", ".pcapng", ".cap", ".dmp")
COMPRESSED = (".gz", ".zst", ".zstd", ".xz")


class BatchError(MailstudyError):
    """The inputs name no capture file (one line, fit to show a user)."""


def _is_capture_name(name: str) -> bool:
    low = name.lower()
    for suffix in COMPRESSED:
        if low.endswith(suffix):
            low = low[:-len(suffix)]
            break
    return low.endswith(CAPTURE_NAMES)


def expand(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """The capture files the inputs name, in order: a file as it is; a folder's files whose names end in
    ``.pcap``, ``.pcapng``, ``.cap`` or ``.dmp`` (optionally ``.gz``, ``.zst``, ``.xz`` after), sorted, hidden
    ones left out; a glob pattern's matches, sorted. Each file once."""
    out: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            names = sorted(n for n in os.listdir(item) if not n.startswith(".") and _is_capture_name(n)
                           and os.path.isfile(os.path.join(item, n)))
            if not names:
                raise BatchError(f"folder {item} holds no capture file (.pcap, .pcapng, .cap, .dmp, "
                                 f"optionally .gz/.zst/.xz)")
            for n in names:
                add(os.path.join(item, n))
        elif glob.has_magic(item) and not os.path.exists(item):
            matches = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not matches:
                raise BatchError(f"no file matches {item}")
            for p in matches:
                add(p)
        else:
            add(item.rstrip("/") or item)  # a file, or a missing one: the reader says what is wrong with it
    return out


@dataclass
class FileResult:
    """What one capture file gave: its sessions (events dropped; exchanges only if asked), sorted by
    ``tcp.stream`` and numbered 0, 1, ... in that order, and the file-level counts; or ``error``."""

    path: str
    sessions: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    packets: int = 0
    tcp_packets: int = 0
    connections: int = 0
    error: str | None = None
    part: str | None = None  # the Parquet part written (sessions; its exchanges beside it), if asked


def analyze_file(path: str, ports: Iterable[int] = (), part: str | None = None,
                 keep_exchanges: bool = False) -> FileResult:
    """Stream one capture (see the module doc). ``part``: write its sessions and exchanges to this Parquet file
    (and ``.exchanges.parquet`` beside it) as they end. Never raises for a bad capture: ``error`` says why."""
    from mailstudy.offline.analyze import SessionStream
    from mailstudy.offline.tables import ParquetSink

    result = FileResult(path=path)
    try:
        stream = SessionStream(path, ports)
    except MailstudyError as exc:
        result.error = str(exc)
        return result
    sessions = []
    sink = ParquetSink(part) if part else None
    try:
        for s in stream:
            if sink is not None:
                sink.add(s, path)
            s.events = []
            if not keep_exchanges:
                s.exchanges = []
            sessions.append(s)
    except MailstudyError as exc:  # compressed data cut short or corrupt: the sessions that ended still count
        result.error = str(exc)
    except OSError as exc:
        result.error = f"cannot read {path}: {exc.strerror or exc}"
    finally:
        if sink is not None:
            sink.close()
            result.part = part
    sessions.sort(key=lambda s: s.connection.index)
    for i, s in enumerate(sessions):
        s.index = i
    result.sessions = sessions
    result.warnings = stream.warnings
    result.packets = stream.stats.packets_total
    result.tcp_packets = stream.stats.tcp_packets
    result.connections = stream.connections
    return result


def analyze_files(paths: list[str], ports: Iterable[int] = (), executor: Executor | None = None,
                  parts: list[str | None] | None = None, keep_exchanges: bool = False) -> Iterator[FileResult]:
    """:func:`analyze_file` for every path, through ``executor`` when given (else one after another here);
    results come in the order of ``paths``. ``parts``: a Parquet part per path (or None)."""
    ports = tuple(ports)
    parts = parts or [None] * len(paths)
    if executor is None:
        for p, part in zip(paths, parts):
            yield analyze_file(p, ports, part, keep_exchanges)
        return
    futures = [executor.submit(analyze_file, p, ports, part, keep_exchanges) for p, part in zip(paths, parts)]
    for f in futures:
        yield f.result()


def merge_parts(parts: list[str], out: str | os.PathLike) -> None:
    """Concatenate Parquet parts (sessions, and their ``.exchanges.parquet``) into ``out`` and its exchanges
    file, row group by row group (bounded memory), atomically; the parts are removed."""
    import pyarrow.parquet as pq

    from mailstudy.offline.tables import exchanges_path, parquet_schemas
    from mailstudy.outputs import publish, tmp_beside

    out = Path(out)
    targets = [out, exchanges_path(out)]
    tmps = [tmp_beside(t) for t in targets]
    try:
        for k, (schema, tmp) in enumerate(zip(parquet_schemas(), tmps)):
            with pq.ParquetWriter(str(tmp), schema) as w:
                for part in parts:
                    src = part if k == 0 else exchanges_path(part)
                    f = pq.ParquetFile(str(src))
                    for i in range(f.num_row_groups):
                        w.write_table(f.read_row_group(i))
        for tmp, target in zip(tmps, targets):
            publish(tmp, target)
    except BaseException:
        for tmp in tmps:
            Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        for part in parts:
            Path(part).unlink(missing_ok=True)
            exchanges_path(part).unlink(missing_ok=True)
