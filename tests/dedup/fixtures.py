"""Helpers that build canonical-schema Parquet fixtures for dedup/balance tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_catalog.schema import CANONICAL_SCHEMA

_DEFAULTS: dict[str, Any] = {
    "source": "src",
    "category": "cat",
    "stage": "finetune",
    "task_type": "retrieval",
    "language": "en",
    "instruction": "",
    "query": "",
    "positive": "",
    "negatives": [],
    "label": None,
}


def rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """A CANONICAL_SCHEMA table from partial row dicts (``id`` required, other fields defaulted)."""
    full = [{**_DEFAULTS, **r} for r in rows]
    return pa.Table.from_pylist(full, schema=CANONICAL_SCHEMA)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows_table(rows), path, compression="zstd")
    return path


def random_words(rng: np.random.Generator, vocab: list[str], n: int) -> list[str]:
    return [vocab[i] for i in rng.integers(0, len(vocab), n)]


def read_dir(out_dir: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(out_dir.glob("part-*.parquet"))])
