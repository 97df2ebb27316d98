"""Write analyzed sessions and their exchanges to Parquet as they come: ``mailstudy analyze ... --out x.parquet``.

Why a module of its own: the analysis streams sessions (``mailstudy.offline.analyze.iter_sessions``) so that
a day of traffic fits in memory; its results must stream to disk too, or the table would hold what the
analysis let go. pyarrow's ``ParquetWriter`` writes row groups as they fill. Two files: ``x.parquet`` holds one
row per session, ``x.exchanges.parquet`` one row per exchange; both carry ``file`` (the capture a session came
from) and ``stream`` (tshark's ``tcp.stream``), which join them. Both are written to hidden temporary files
beside the targets and moved into place only when complete (:mod:`mailstudy.outputs`): an interrupted run
leaves no half table.

The columns are the analysis's own (``SESSION_COLUMNS``, ``metrics.FRAME_COLUMNS``: times in seconds from the
session's start, arguments with credentials redacted); nothing is computed here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mailstudy.errors import MailstudyError
from mailstudy.outputs import publish, tmp_beside
from mailstudy.protocol import metrics as _metrics

if TYPE_CHECKING:  # pragma: no cover
    from mailstudy.offline.analyze import SessionAnalysis

__all__ = ["ParquetSink", "exchanges_path", "TableError"]

ROWS_PER_GROUP = 8192


class TableError(MailstudyError):
    """The results cannot be written where asked (one line, fit to show a user)."""


def exchanges_path(path: str | os.PathLike) -> Path:
    """Where the exchanges of ``x.parquet`` go: ``x.exchanges.parquet`` beside it."""
    p = Path(path)
    stem = p.name[:-len(".parquet")] if p.name.endswith(".parquet") else p.name
    return p.with_name(stem + ".exchanges.parquet")


def parquet_schemas():
    """The Arrow schemas of the two tables (sessions, exchanges), written by :class:`ParquetSink` and by
    :func:`mailstudy.offline.batch.merge_parts`."""
    import pyarrow as pa

    from mailstudy.offline.analyze import SESSION_COLUMNS

    types = {"client": pa.string(), "server": pa.string(), "protocol": pa.string(), "port": pa.int32(),
             "encrypted": pa.bool_(), "packets": pa.int64(), "duration_s": pa.float64(),
             "time_to_list_s": pa.float64()}
    sessions = pa.schema([("file", pa.string()), ("stream", pa.int64())]
                         + [(k, types.get(k, pa.int64())) for k in SESSION_COLUMNS]
                         + [("mid_stream", pa.bool_()), ("partial", pa.bool_()), ("gaps", pa.int64()),
                            ("warnings", pa.list_(pa.string()))])
    ex_types = {"tag": pa.string(), "command": pa.string(), "arguments": pa.string(), "status": pa.string(),
                "t_sent_s": pa.float64(), "t_first_response_s": pa.float64(), "t_done_s": pa.float64(),
                "latency_s": pa.float64()}
    exchanges = pa.schema([("file", pa.string()), ("stream", pa.int64())]
                          + [(k, ex_types.get(k, pa.int64())) for k in _metrics.FRAME_COLUMNS])
    return sessions, exchanges


class ParquetSink:
    """Sessions in, two Parquet files out (see the module doc); a context manager that publishes on success
    and removes its temporary files on error."""

    def __init__(self, path: str | os.PathLike) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.ex_path = exchanges_path(self.path)
        if self.path.is_dir():
            raise TableError(f"{self.path} is a folder; --out wants a file name ending in .parquet")
        if not self.path.parent.is_dir():
            raise TableError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        self._schemas = parquet_schemas()
        self._tmp = [tmp_beside(self.path), tmp_beside(self.ex_path)]
        self._writers = [pq.ParquetWriter(str(t), s) for t, s in zip(self._tmp, self._schemas)]
        self._rows: list[list[dict]] = [[], []]
        self.sessions = 0
        self.exchanges = 0
        self._done = False

    def add(self, s: SessionAnalysis, file: str = "") -> None:
        """One session and its exchanges (``file``: the capture it came from; default: the session's own)."""
        file = file or getattr(s, "file", "") or ""
        conn = s.connection
        self._rows[0].append({"file": file, "stream": conn.index, **s.metrics,
                              "mid_stream": conn.mid_stream, "partial": bool(getattr(s, "partial", False)),
                              "gaps": conn.gaps, "warnings": list(s.warnings)})
        if s.exchanges:
            for rec in _metrics.exchange_rows(s.exchanges, time_scale=1.0, t_start=s.t_start):
                self._rows[1].append({"file": file, "stream": conn.index, **rec})
            self.exchanges += len(s.exchanges)
        self.sessions += 1
        for i in (0, 1):
            if len(self._rows[i]) >= ROWS_PER_GROUP:
                self._flush(i)

    def _flush(self, i: int) -> None:
        import pyarrow as pa

        rows = self._rows[i]
        if not rows:
            return
        schema = self._schemas[i]
        cols = {name: [_none_if_nan(r.get(name)) for r in rows] for name in schema.names}
        self._writers[i].write_table(pa.table(cols, schema=schema))
        rows.clear()

    def close(self) -> None:
        """Write what is buffered and move both files into place."""
        if self._done:
            return
        self._done = True
        for i in (0, 1):
            self._flush(i)
            self._writers[i].close()
        publish(self._tmp[0], self.path)
        publish(self._tmp[1], self.ex_path)

    def abort(self) -> None:
        """Drop both files (nothing is published)."""
        if self._done:
            return
        self._done = True
        for w, t in zip(self._writers, self._tmp):
            try:
                w.close()
            finally:
                Path(t).unlink(missing_ok=True)

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _none_if_nan(v):
    if isinstance(v, float) and v != v:
        return None
    return v
