"""Bounded-memory Parquet shard writing: rows are buffered column by column and written as row groups.

Memory is bounded by ``batch_rows`` (one row group), not by the shard: a shard is a ``ParquetWriter`` that
receives a row group every ``batch_rows`` rows and is closed after ``shard_rows``. Column lists instead of one
dict per row make the Arrow conversion cheap, and the per-source constant columns (source, stage,
instruction…) are built by Arrow instead of being repeated in Python. Same rows in → same bytes out.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from kalm.hashing import hash_file


class ShardInfo(BaseModel):
    file: str
    rows: int
    bytes: int
    sha256: str


class ShardWriter:
    """``add`` rows (keyword per non-constant column); ``close`` at the end; ``shards`` lists what was written."""

    def __init__(
        self,
        out_dir: Path,
        schema: pa.Schema,
        shard_rows: int,
        batch_rows: int,
        constants: dict[str, str] | None = None,
    ) -> None:
        self.out_dir, self.schema = out_dir, schema
        self.shard_rows, self.batch_rows = shard_rows, min(batch_rows, shard_rows)
        self.constants = constants or {}
        self.columns: dict[str, list] = {n: [] for n in schema.names if n not in self.constants}
        self.buffered = 0
        self.shards: list[ShardInfo] = []
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._shard_count = 0

    def add(self, **values: object) -> None:
        for name, column in self.columns.items():
            column.append(values[name])
        self.buffered += 1
        if self.buffered >= self.batch_rows or self._shard_count + self.buffered >= self.shard_rows:
            self._write_batch()

    def _write_batch(self) -> None:
        if not self.buffered:
            return
        if self._writer is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._path = self.out_dir / f"part-{len(self.shards):05d}.parquet"
            self._writer = pq.ParquetWriter(self._path, self.schema, compression="zstd")
        arrays = [
            pa.repeat(pa.scalar(self.constants[f.name], f.type), self.buffered)
            if f.name in self.constants
            else pa.array(self.columns[f.name], f.type)
            for f in self.schema
        ]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self._shard_count += self.buffered
        self.columns = {name: [] for name in self.columns}
        self.buffered = 0
        if self._shard_count >= self.shard_rows:
            self._close_shard()

    def _close_shard(self) -> None:
        if self._writer is None or self._path is None:
            return
        self._writer.close()
        path = self._path
        self.shards.append(
            ShardInfo(
                file=path.name, rows=self._shard_count, bytes=path.stat().st_size, sha256=hash_file(path)
            )
        )
        self._writer, self._path, self._shard_count = None, None, 0

    def close(self) -> None:
        self._write_batch()
        self._close_shard()
