"""Splitting the input stage by source, so mining holds one source's rows at a time.

Why a partition pass instead of one filtered read per source: the balanced input is sorted by id, so every
source is spread over every row group and a per-source filter would decompress the whole input once per
source. One pass writes each source's rows of the mined stage to its own spill file (input order kept), and
each source is later read back alone. Memory during the pass is one read batch.

Why ``_pos``: the old in-memory pipeline sorted the whole input by id with a *stable* sort, so rows with
equal ids kept their file/row order. Each spilled row carries its global input position, and a source's rows
are read back sorted by ``(id, _pos)``: exactly the order the whole-input sort gave that source's rows, so the
pool, the queries and every sampled negative are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_catalog.schema import CANONICAL_SCHEMA
from kalm.dedup.io import conform, discover_parquet

POS = "_pos"
SPILL_SCHEMA = pa.schema(
    [*CANONICAL_SCHEMA, pa.field(POS, pa.int64(), nullable=False)], metadata=CANONICAL_SCHEMA.metadata
)
READ_BATCH_ROWS = 8192  # rows decoded at once during the partition pass


@dataclass
class StagePartition:
    """Where each source's rows of the mined stage were spilled, and the row counts the stats report."""

    sources: dict[str, Path] = field(default_factory=dict)
    rows_in: int = 0
    rows_other_stages: int = 0


class _SpillWriters:
    """One Parquet writer per source, opened on its first row, named by index (source names may be odd)."""

    def __init__(self, spill_dir: Path) -> None:
        self.spill_dir = spill_dir
        self.paths: dict[str, Path] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}

    def write(self, source: str, table: pa.Table) -> None:
        if source not in self._writers:
            path = self.spill_dir / f"source-{len(self.paths):05d}.parquet"
            self.paths[source] = path
            self._writers[source] = pq.ParquetWriter(path, SPILL_SCHEMA, compression="zstd")
        self._writers[source].write_table(table.cast(SPILL_SCHEMA))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def _batches(files: list[Path]):
    """Conformed input batches in file order, then row order (the order the stable sort breaks ties by)."""
    for path in files:
        with pq.ParquetFile(path) as handle:
            for batch in handle.iter_batches(batch_size=READ_BATCH_ROWS):
                yield conform(batch)


def partition_stage(in_dir: Path, stage: str, spill_dir: Path) -> StagePartition:
    """Spill the ``stage`` rows of ``in_dir``'s ``part-*.parquet`` (quarantine skipped) into one file per source."""
    files = discover_parquet(Path(in_dir), "part-*.parquet")
    if not files:
        raise FileNotFoundError(f"no part-*.parquet files under {in_dir}")
    spill_dir.mkdir(parents=True, exist_ok=True)
    result, writers, position = StagePartition(), _SpillWriters(spill_dir), 0
    try:
        for table in _batches(files):
            n = table.num_rows
            table = table.append_column(POS, pa.array(np.arange(position, position + n), pa.int64()))
            position += n
            kept = table.filter(pc.equal(table["stage"], stage))
            result.rows_in += kept.num_rows
            result.rows_other_stages += n - kept.num_rows
            for source in sorted(pc.unique(kept["source"]).to_pylist()):
                writers.write(source, kept.filter(pc.equal(kept["source"], source)))
    finally:
        writers.close()
    result.sources = writers.paths
    return result


def read_source(path: Path) -> pa.Table:
    """One source's spilled rows, sorted by ``(id, _pos)``: the old whole-input order restricted to it."""
    return pq.read_table(path).sort_by([("id", "ascending"), (POS, "ascending")])
