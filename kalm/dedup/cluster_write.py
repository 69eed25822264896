"""Writing a cluster run's outputs from rank ranges: the kept rows as parts, ``removed.parquet`` as one file.

Kept rows arrive at the scratch folder partitioned by rank range (each carrying its rank in ``_rank``), with the
number kept per range known to the driver. Part ``k`` holds kept rows ``k * rows_per_part ..``; its task reads
the ranges that overlap it, sorts them by rank and writes the part with the row groups :class:`PartWriter`
writes, so the bytes equal the single-process output. Parts are written in parallel, each by one task.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa

from data_catalog.schema import CANONICAL_SCHEMA
from kalm.dedup.io import TableWriter, write_part
from kalm.dedup.shuffle import read_partition

Span = list[tuple[int, int, int]]  # (range, first, stop) of the rows a part takes from each range


def part_spans(kept_per_range: np.ndarray, rows_per_part: int) -> list[Span]:
    """Which rows of which ranges each part holds (one empty part when nothing is kept)."""
    starts = np.concatenate(([0], np.cumsum(kept_per_range))).astype(np.int64)
    total = int(starts[-1])
    spans: list[Span] = []
    for k in range(max(1, math.ceil(total / rows_per_part))):
        lo, hi = k * rows_per_part, min((k + 1) * rows_per_part, total)
        spans.append(
            [
                (r, max(lo, int(starts[r])) - int(starts[r]), min(hi, int(starts[r + 1])) - int(starts[r]))
                for r in range(len(kept_per_range))
                if starts[r] < hi and starts[r + 1] > lo
            ]
        )
    return spans


def write_kept_part(k: int, span: Span, kept_files: list[Path], row_group_size: int, out_dir: str) -> int:
    pieces = []
    for r, first, stop in span:
        rows = read_partition(kept_files, r)
        rows = rows.take(np.argsort(rows.column("_rank").to_numpy(), kind="stable"))
        pieces.append(rows.slice(first, stop - first))
    table = pa.concat_tables(pieces) if pieces else CANONICAL_SCHEMA.empty_table()
    write_part(Path(out_dir) / f"part-{k:05d}.parquet", table, row_group_size)
    return table.num_rows


def clear_parts(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("part-*.parquet"):
        stale.unlink()


def write_removed(path: str, ranges: int, files: list[Path], schema: pa.Schema, sort: list[str]) -> int:
    """``removed.parquet`` from per-range batches of ``files``, each range sorted by ``sort``."""
    writer = TableWriter(Path(path), schema)
    rows = 0
    for r in range(ranges):
        t = read_partition(files, r)
        t = t.sort_by([(c, "ascending") for c in sort]).select(schema.names)
        writer.write(t)
        rows += t.num_rows
    writer.close()
    return rows
