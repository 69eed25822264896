"""What decontamination writes: the kept rows (sorted like dedup), ``removed.parquet`` and the statistics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from kalm.dedup.decontaminate.config import (
    CategoryContamination,
    ContaminationExample,
    DecontaminationConfig,
    DecontaminationStats,
    TaskContamination,
)
from kalm.dedup.decontaminate.index import EvalIndex
from kalm.dedup.io import PartWriter

REMOVED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("positive", pa.string(), nullable=False),
        pa.field("field", pa.string(), nullable=False),
        pa.field("match", pa.string(), nullable=False),
        pa.field("jaccard", pa.float64(), nullable=False),
        pa.field("eval_task", pa.string(), nullable=False),
        pa.field("eval_text", pa.string(), nullable=False),
    ]
)


def write_kept(files: list[Path], dropped: list[tuple[int, int]], out_dir: Path, cfg) -> None:
    """All rows except ``dropped`` ``(file, row)``, sorted by ``(id, file, row)``, streamed by DuckDB."""
    writer = PartWriter(out_dir, cfg.rows_per_part, cfg.row_group_size)
    if not files:
        writer.close()
        return
    con = duckdb.connect()
    try:
        con.register(
            "file_map",
            pa.table({"file_idx": pa.array(range(len(files)), pa.int32()), "path": [str(f) for f in files]}),
        )
        drop = np.array(dropped, np.int64).reshape(-1, 2)
        con.register("dropped", pa.table({"file_idx": drop[:, 0], "row_idx": drop[:, 1]}))
        sql = """
            SELECT r.* EXCLUDE (filename, file_row_number)
            FROM read_parquet($files, filename = true, file_row_number = true) r
            JOIN file_map f ON r.filename = f.path
            ANTI JOIN dropped d ON d.file_idx = f.file_idx AND d.row_idx = r.file_row_number
            ORDER BY r.id, f.file_idx, r.file_row_number
        """
        reader = con.sql(sql, params={"files": [str(f) for f in files]}).to_arrow_reader(cfg.row_group_size)
        writer.write_all(reader)
    finally:
        con.close()


def contamination_stats(
    records: list[dict], rows_in: Counter, index: EvalIndex | None, cfg: DecontaminationConfig
) -> DecontaminationStats:
    per_task = {
        t: TaskContamination(eval_texts=n)
        for t, n in zip(index.tasks if index else [], index.per_task_texts if index else [], strict=True)
    }
    dropped_by_cat: Counter = Counter()
    seen: set[tuple[int, int]] = set()
    for r in records:
        s = per_task[r["eval_task"]]
        s.rows_dropped += 1
        s.exact += r["match"] == "exact"
        s.near += r["match"] == "near"
        if len(s.examples) < cfg.max_examples:
            s.examples.append(
                ContaminationExample(
                    id=r["id"],
                    field=r["field"],
                    text=r[r["field"]][:300],
                    eval_text=r["eval_text"][:300],
                    match=r["match"],
                    jaccard=r["jaccard"],
                )
            )
        key = (r["_file"], r["_row"])
        if key not in seen:
            seen.add(key)
            dropped_by_cat[r["category"]] += 1
    per_category = {
        c: CategoryContamination(
            rows_in=rows_in[c], contaminated=dropped_by_cat[c], out=rows_in[c] - dropped_by_cat[c]
        )
        for c in sorted(rows_in)
    }
    total = sum(rows_in.values())
    return DecontaminationStats(
        rows_in=total,
        rows_dropped=len(seen),
        rows_out=total - len(seen),
        eval_texts=len(index.keys) if index else 0,
        per_task=per_task,
        per_category=per_category,
    )
