"""Input discovery and deterministic Parquet part writing shared by dedup and balance.

Why a custom writer: outputs must be byte-identical on re-run, so rows are re-chunked into fixed-size row
groups and fixed-size parts regardless of how the producer (DuckDB, Arrow, the tasks of a cluster) happened to
batch them, and every table is cast to ``CANONICAL_SCHEMA`` so field nullability and schema metadata survive the
round trip. Each row group is written from one contiguous chunk (``combine_chunks``): Parquet's page breaks
follow the Arrow chunks, so the same rows in other chunks would give other bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from data_catalog.schema import CANONICAL_SCHEMA


def discover_parquet(in_dir: Path, pattern: str = "*.parquet", exclude: Path | None = None) -> list[Path]:
    """Files matching ``pattern`` under ``in_dir`` (recursive), skipping any ``quarantine`` directory.

    Sorted by relative POSIX path so the processing order never depends on the filesystem's listing order.
    """
    in_dir = Path(in_dir)
    found = []
    for path in in_dir.rglob(pattern):
        rel = path.relative_to(in_dir)
        if not path.is_file() or "quarantine" in rel.parts[:-1]:
            continue
        if exclude is not None and path.resolve().is_relative_to(Path(exclude).resolve()):
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(in_dir).as_posix())


SINGLE_FILE_ROW_GROUP = 1 << 20


def write_row_groups(writer: pq.ParquetWriter, table: pa.Table, row_group_size: int) -> None:
    """``table`` as row groups of ``row_group_size`` rows (the last one shorter), each one contiguous chunk."""
    for start in range(0, table.num_rows, row_group_size):
        chunk = table.slice(start, row_group_size).combine_chunks()
        writer.write_table(chunk, row_group_size=row_group_size)


def write_part(path: Path, table: pa.Table, row_group_size: int) -> None:
    """One whole part: what :class:`PartWriter` writes for the same rows (used by the cluster paths)."""
    writer = pq.ParquetWriter(path, CANONICAL_SCHEMA, compression="zstd")
    write_row_groups(writer, conform(table), row_group_size)
    writer.close()


class TableWriter:
    """One zstd Parquet file of ``schema`` streamed in row groups of ``row_group_size`` rows, whatever the
    batches written (``removed.parquet``: the same bytes from one process or from the tasks of a cluster)."""

    def __init__(self, path: Path, schema: pa.Schema, row_group_size: int = SINGLE_FILE_ROW_GROUP) -> None:
        self.schema, self.row_group_size = schema, row_group_size
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self._pending: list[pa.Table] = []
        self._rows = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table.cast(self.schema))
        self._rows += table.num_rows
        if self._rows >= self.row_group_size:
            buf = pa.concat_tables(self._pending)
            whole = buf.num_rows - buf.num_rows % self.row_group_size
            write_row_groups(self._writer, buf.slice(0, whole), self.row_group_size)
            rest = buf.slice(whole)
            self._pending, self._rows = [rest], rest.num_rows

    def close(self) -> None:
        if self._rows:
            write_row_groups(self._writer, pa.concat_tables(self._pending), self.row_group_size)
        self._writer.close()


def write_single(path: Path, table: pa.Table, schema: pa.Schema) -> None:
    writer = TableWriter(path, schema)
    writer.write(table)
    writer.close()


def conform(table: pa.Table | pa.RecordBatch, schema: pa.Schema = CANONICAL_SCHEMA) -> pa.Table:
    """Select and cast to ``schema`` (drops helper columns, restores nullability and metadata)."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    return table.select(schema.names).cast(schema)


class PartWriter:
    """Writes ``part-00000.parquet``, ``part-00001.parquet``... with bounded rows per part and row group."""

    def __init__(self, out_dir: Path, rows_per_part: int = 1_000_000, row_group_size: int = 100_000) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.glob("part-*.parquet"):
            stale.unlink()
        self.rows_per_part = rows_per_part
        self.row_group_size = min(row_group_size, rows_per_part)
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._in_part = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def _open(self) -> None:
        path = self.out_dir / f"part-{len(self.paths):05d}.parquet"
        self._writer = pq.ParquetWriter(path, CANONICAL_SCHEMA, compression="zstd")
        self.paths.append(path)
        self._in_part = 0

    def _flush(self, final: bool) -> None:
        """Write whole row groups from the buffer (and the remainder when ``final``)."""
        if not self._pending_rows:
            return
        buf = pa.concat_tables(self._pending)
        n_write = buf.num_rows if final else buf.num_rows - buf.num_rows % self.row_group_size
        if self._writer is None:
            self._open()
        write_row_groups(self._writer, buf.slice(0, n_write), self.row_group_size)
        rest = buf.slice(n_write)
        self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        table = conform(table)
        while table.num_rows:
            room = self.rows_per_part - self._in_part - self._pending_rows
            head, table = table.slice(0, room), table.slice(room)
            self._pending.append(head)
            self._pending_rows += head.num_rows
            if self._in_part + self._pending_rows >= self.rows_per_part:
                self._flush(final=True)
                self._close_part()
            elif self._pending_rows >= self.row_group_size:
                in_buffer = self._pending_rows
                self._flush(final=False)
                self._in_part += in_buffer - self._pending_rows

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._in_part = 0

    def close(self) -> list[Path]:
        """Flush, close, and guarantee at least ``part-00000.parquet`` exists (empty input -> empty part)."""
        self._flush(final=True)
        self._close_part()
        if not self.paths:
            self._open()
            self._close_part()
        return self.paths

    def write_all(self, batches: Iterable[pa.Table | pa.RecordBatch]) -> list[Path]:
        for batch in batches:
            self.write(batch)
        return self.close()
