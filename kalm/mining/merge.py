"""Writing mined output source by source while keeping the whole-stage part layout byte-identical.

Each source's output rows are written as a *run*: a spill Parquet file sorted by ``(id, _group, _pos)``, where
``_group`` is 0 for exemplar (pass-through) rows and ``1 + rank`` of the source for mined rows, and ``_pos``
is the row's input position. That key is exactly the order the in-memory pipeline produced (a stable sort by
id over exemplar rows first, then each source's mined rows in source order), and it is unique per row.

The runs are then k-way merged in bounded buffers (``buffer_rows`` per run) into ``part-NNNNN.parquet`` with
the same part and row-group boundaries as ``kalm.mining.io.write_parts``; every row group is written as one
contiguous chunk (as slices of one in-memory table were), so the Parquet bytes are identical too.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kalm.hashing import hash_file
from kalm.mining.io import MINED_SCHEMA, ROW_GROUP_SIZE, ROWS_PER_PART
from kalm.mining.spill import POS

GROUP = "_group"
RUN_SCHEMA = pa.schema(
    [*MINED_SCHEMA, pa.field(GROUP, pa.int32(), nullable=False), pa.field(POS, pa.int64(), nullable=False)],
    metadata=MINED_SCHEMA.metadata,
)
RUN_ORDER = [("id", "ascending"), (GROUP, "ascending"), (POS, "ascending")]
BUFFER_ROWS = 4096

Key = tuple[str, int, int]


def write_run(rows: list[dict], path: Path) -> int:
    """Write one source's output rows (each with ``_group`` and ``_pos``) sorted by the run order."""
    table = pa.Table.from_pylist(rows, schema=RUN_SCHEMA).sort_by(RUN_ORDER)
    pq.write_table(table, path, row_group_size=BUFFER_ROWS, compression="zstd")
    return table.num_rows


class _Run:
    """A sorted run read ``buffer_rows`` at a time, with its buffered keys for the merge."""

    def __init__(self, path: Path, buffer_rows: int) -> None:
        self._file = pq.ParquetFile(path)
        self._batches: Iterator[pa.RecordBatch] = self._file.iter_batches(batch_size=buffer_rows)
        self.table: pa.Table | None = None
        self.keys: list[Key] = []
        self._refill()

    def _refill(self) -> None:
        for batch in self._batches:
            if batch.num_rows:
                self.table = pa.Table.from_batches([batch])
                columns = (batch[name].to_pylist() for name in ("id", GROUP, POS))
                self.keys = list(zip(*columns, strict=True))
                return
        self.table, self.keys = None, []
        self._file.close()

    def take_upto(self, frontier: Key) -> pa.Table:
        """Remove and return the buffered rows with key <= ``frontier``; refill when the buffer empties."""
        assert self.table is not None
        n = bisect_right(self.keys, frontier)
        head, self.table, self.keys = self.table.slice(0, n), self.table.slice(n), self.keys[n:]
        if not self.keys:
            self._refill()
        return head


class PartSink:
    """Sorted rows in, ``part-NNNNN.parquet`` out, with ``write_parts``' part and row-group boundaries."""

    def __init__(
        self, out_dir: Path, rows_per_part: int = ROWS_PER_PART, row_group_size: int = ROW_GROUP_SIZE
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.glob("part-*.parquet"):
            stale.unlink()
        self.rows_per_part, self.row_group_size = rows_per_part, row_group_size
        self.entries: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._in_part = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table.select(MINED_SCHEMA.names).cast(MINED_SCHEMA))
        self._pending_rows += table.num_rows
        self._flush(final=False)

    def _group_rows(self) -> int:
        """Rows of the next row group: a full group, or what is left of the current part."""
        return min(self.row_group_size, self.rows_per_part - self._in_part)

    def _flush(self, final: bool) -> None:
        while self._pending_rows >= self._group_rows() or (final and self._pending_rows):
            buffer = pa.concat_tables(self._pending)
            size = min(self._group_rows(), buffer.num_rows)
            self._write_group(buffer.slice(0, size).combine_chunks())
            rest = buffer.slice(size)
            self._pending, self._pending_rows = [rest], rest.num_rows

    def _write_group(self, group: pa.Table) -> None:
        if self._writer is None:
            self._path = self.out_dir / f"part-{len(self.entries):05d}.parquet"
            self._writer = pq.ParquetWriter(self._path, MINED_SCHEMA, compression="zstd")
        self._writer.write_table(group, row_group_size=self.row_group_size)
        self._in_part += group.num_rows
        if self._in_part >= self.rows_per_part:
            self._close_part()

    def _close_part(self) -> None:
        assert self._writer is not None and self._path is not None
        self._writer.close()
        self.entries.append({"path": self._path.name, "rows": self._in_part, "sha256": hash_file(self._path)})
        self._writer, self._path, self._in_part = None, None, 0

    def close(self) -> list[dict]:
        """Flush the rest; an empty output is still one (empty) part, as ``write_parts`` writes it."""
        self._flush(final=True)
        if self._writer is None and not self.entries:
            self._write_group(MINED_SCHEMA.empty_table())
        if self._writer is not None:
            self._close_part()
        return self.entries


def merge_runs(
    runs: list[Path],
    out_dir: Path,
    *,
    rows_per_part: int = ROWS_PER_PART,
    row_group_size: int = ROW_GROUP_SIZE,
    buffer_rows: int = BUFFER_ROWS,
) -> list[dict]:
    """Merge sorted runs into ``out_dir``'s parts; return the manifest entries (path, rows, sha256).

    Every unread row of a run sorts after that run's last buffered key, so all buffered rows up to the
    smallest such key over the runs (the frontier) are final; the run that owns it empties its whole buffer,
    so each step makes progress. Memory: ``buffer_rows`` per run plus one output row group.
    """
    sink = PartSink(out_dir, rows_per_part, row_group_size)
    open_runs = [run for run in (_Run(path, buffer_rows) for path in runs) if run.keys]
    while open_runs:
        frontier = min(run.keys[-1] for run in open_runs)
        heads = [run.take_upto(frontier) for run in open_runs]
        sink.write(pa.concat_tables(heads).sort_by(RUN_ORDER))
        open_runs = [run for run in open_runs if run.keys]
    return sink.close()
