"""Decontamination on a Ray cluster (``DecontaminationConfig.use_ray``): the evaluation index is small and
broadcast to the workers (``ray.put``), training rows stream through them one unit at a time, and the output
equals the single-process path byte for byte.

Stages: ``match`` (unit) matches the unit's rows in ``batch_size`` batches exactly as the local loop does and
sends ``(id, g)`` to its id range; ``rank`` (range) numbers rows in ``(id, file, row)`` order
(:mod:`kalm.dedup.ranks`); ``keep`` (unit) sends every row that matched nothing to its rank range; the parts are
written by :mod:`kalm.dedup.cluster_write`. What reaches the driver is the removed records (one per dropped row
and task: O(contaminated rows), which is small by nature) and per-unit counts.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kalm.dedup.cluster_write import clear_parts, part_spans, write_kept_part
from kalm.dedup.decontaminate.config import DecontaminationConfig
from kalm.dedup.decontaminate.index import EvalIndex
from kalm.dedup.decontaminate.match import KEY_COLUMNS, batch_matches, removed_records
from kalm.dedup.minhash import MinHasher
from kalm.dedup.ranks import (
    Unit,
    boundaries,
    plan_units,
    range_of,
    rank_count,
    read_unit,
    sample_ids,
    unit_ranks,
    write_rank_rows,
)
from kalm.dedup.shuffle import StageRunner, ensure_ray, fresh_dir, scratch_dir, write_partitioned

SAMPLES_PER_UNIT = 32


def match(unit: Unit, bounds: list[str], index: EvalIndex | None, cfg: dict, scratch: Path) -> tuple:
    """The unit's removed records (``_row`` = global row number) and its rows per category."""
    c = DecontaminationConfig.model_validate(cfg)
    hasher = MinHasher(c.num_perm, c.seed)
    rows_in: Counter = Counter()
    records: list[dict] = []
    row0 = unit.g_start
    reader = pq.ParquetFile(unit.path)
    ids = []
    for batch in reader.iter_batches(c.batch_size, row_groups=list(unit.row_groups), columns=KEY_COLUMNS):
        ids.append(batch.column("id"))
        for v in pc.value_counts(batch.column("category")).to_pylist():
            rows_in[v["values"]] += v["counts"]
        if index is not None:
            records += removed_records(batch, batch_matches(batch, index, c, hasher), index, 0, row0)
        row0 += batch.num_rows
    write_rank_rows(Path(scratch), unit, pa.chunked_array(ids, pa.string()), bounds, {})
    return records, rows_in


def keep(unit: Unit, dropped: np.ndarray, ranges: int, offsets: np.ndarray, scratch: Path) -> dict:
    """Rows that matched nothing to their rank range; the ranks of the ``dropped`` global rows."""
    ranks = unit_ranks(unit, ranges, offsets, Path(scratch))
    drop = np.zeros(unit.rows, bool)
    drop[dropped - unit.g_start] = True
    rows = np.flatnonzero(~drop)
    kept = read_unit(unit).take(pa.array(rows)).append_column("_rank", pa.array(ranks[rows]))
    where = range_of(ranks[rows], offsets)
    write_partitioned(Path(scratch) / "kept" / f"{unit.index:06d}.arrow", kept, where, ranges, "lz4")
    return {"kept": np.bincount(where, minlength=ranges), "ranks": ranks[dropped - unit.g_start]}


def cluster_decontaminate(
    files: list[Path], out_dir: Path, index: EvalIndex | None, cfg: DecontaminationConfig
) -> tuple[list[dict], Counter] | None:
    """Write the kept parts of ``files`` into ``out_dir``; the removed records sorted like the local path's
    (``_row`` = the row's rank) and the rows per category. None when the inputs hold no rows."""
    units = plan_units(files, cfg.ray_unit_rows)
    n = sum(u.rows for u in units)
    if not n:
        return None
    ray = ensure_ray(cfg.ray_address)
    scratch = fresh_dir(scratch_dir(out_dir, cfg.scratch_dir))
    try:
        runner = StageRunner(scratch, cfg.ray_num_cpus, cfg.ray_max_retries)
        count, parts = len(units), max(1, math.ceil(n / cfg.ray_partition_rows))
        starts = ray.put(np.array([u.g_start for u in units], np.int64))
        bounds = boundaries(runner.run("sample", sample_ids, [(u, SAMPLES_PER_UNIT) for u in units]), parts)
        ranges = len(bounds) + 1
        config, index_ref = cfg.model_dump(mode="json"), ray.put(index)
        matched = runner.run("match", match, [(u, bounds, index_ref, config, scratch) for u in units])
        sizes = runner.run("rank", rank_count, [(r, count, starts, scratch) for r in range(ranges)])
        offsets = ray.put(np.concatenate(([0], np.cumsum(sizes))).astype(np.int64))
        dropped = [np.unique(np.array([r["_row"] for r in recs], np.int64)) for recs, _ in matched]
        kept = runner.run("keep", keep, [(u, dropped[u.index], ranges, offsets, scratch) for u in units])
        clear_parts(out_dir)
        files_kept = [scratch / "kept" / f"{u:06d}.arrow" for u in range(count)]
        row_group = min(cfg.row_group_size, cfg.rows_per_part)
        spans = part_spans(sum(k["kept"] for k in kept), cfg.rows_per_part)
        runner.run(
            "parts",
            write_kept_part,
            [(k, s, files_kept, row_group, str(out_dir)) for k, s in enumerate(spans)],
        )
        records = []
        for (recs, _), done, gone in zip(matched, kept, dropped, strict=True):
            rank_of = dict(zip(gone.tolist(), done["ranks"].tolist(), strict=True))
            records += [{**r, "_file": 0, "_row": rank_of[r["_row"]]} for r in recs]
        records.sort(key=lambda r: (r["_row"], r["eval_task"]))
        return records, sum((rows for _, rows in matched), Counter())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
