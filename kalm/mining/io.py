"""The mined output schema, corpora for mining, and writing mined Parquet parts and the manifest.

The output keeps every canonical column (so the training reader needs no change) and adds provenance columns;
``kalm.dedup.io.PartWriter`` cannot be used because it casts to the canonical schema and would drop them.
Parts are re-chunked into fixed-size row groups after sorting by id, so re-runs are byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from data_catalog.schema import CANONICAL_SCHEMA, SCHEMA_VERSION
from kalm.hashing import hash_file

PROVENANCE_FIELDS = [
    pa.field("mined", pa.bool_(), nullable=False),
    pa.field("miner_checkpoint", pa.string(), nullable=True),
    pa.field("negative_ranks", pa.list_(pa.int32()), nullable=True),
    pa.field("negative_scores", pa.list_(pa.float32()), nullable=True),
    pa.field("positive_rank", pa.int32(), nullable=True),
    pa.field("positive_score", pa.float32(), nullable=True),
    pa.field("filled_random", pa.bool_(), nullable=False),
]
MINED_SCHEMA = pa.schema(
    list(CANONICAL_SCHEMA) + PROVENANCE_FIELDS,
    metadata={"kalm_schema_version": str(SCHEMA_VERSION), "kalm_mined": "1"},
)
ROWS_PER_PART = 1_000_000
ROW_GROUP_SIZE = 100_000


def load_corpus(path: Path) -> list[str]:
    """Texts of a BEIR-style corpus: JSONL or Parquet with ``text`` and optional ``title``.

    Title and text are joined by a blank line, as the catalog builds positives from ``[title, text]``, so a
    corpus document and the same document used as a positive are one pool entry.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        records = pq.read_table(path).to_pylist()
    else:
        with open(path, "rb") as handle:
            records = [orjson.loads(line) for line in handle if line.strip()]
    texts = []
    for record in records:
        parts = [str(record.get("title") or ""), str(record.get("text") or "")]
        text = "\n\n".join(p for p in parts if p.strip())
        if text:
            texts.append(text)
    return texts


def write_parts(
    rows: list[dict], out_dir: Path, rows_per_part: int = ROWS_PER_PART, row_group_size: int = ROW_GROUP_SIZE
) -> list[dict]:
    """Write ``rows`` (sorted by id) as ``part-NNNNN.parquet``; return manifest entries per file.

    The in-memory writer, for small row lists; ``mine_dataset`` streams through ``kalm.mining.merge``, whose
    output is byte-identical to this one's (the tests check it against this function).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("part-*.parquet"):
        stale.unlink()
    rows = sorted(rows, key=lambda r: r["id"])
    table = pa.Table.from_pylist(rows, schema=MINED_SCHEMA)
    entries = []
    for index, start in enumerate(range(0, max(1, table.num_rows), rows_per_part)):
        path = out_dir / f"part-{index:05d}.parquet"
        part = table.slice(start, rows_per_part)
        with pq.ParquetWriter(path, MINED_SCHEMA, compression="zstd") as writer:
            for group in range(0, max(1, part.num_rows), row_group_size):
                writer.write_table(part.slice(group, row_group_size), row_group_size=row_group_size)
        entries.append({"path": path.name, "rows": part.num_rows, "sha256": hash_file(path)})
    return entries


def write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
