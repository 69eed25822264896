"""Signatures and LSH band keys as a Ray Data stage (``DedupConfig.use_ray``), equal to the local path.

Why this shape: signatures are the only expensive, embarrassingly parallel part of near dedup (see
``dedup_anchors.md``: banding 1M signatures takes seconds, union-find under one). So the work is split by
Parquet *row group*: one ``map_batches`` call reads one row group of the input files, normalises
``query``/``positive``, shingles, computes MinHash signatures and reduces them to band keys; only the band keys
(``bands`` x 8 bytes per row) travel back to the driver, which keys them by ``(file, row)`` and places them in
keep-priority order. Every step is a per-row pure function of the text, so the keys (and therefore candidates,
components and the output bytes) are exactly those of the single-process path, whatever the task order.
Grouping keys into buckets and verifying candidates stay on the driver. The input files must be readable from
every Ray node (shared filesystem or object store path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from kalm.dedup.config import DedupConfig
from kalm.dedup.lsh import band_keys
from kalm.dedup.minhash import MinHasher
from kalm.dedup.normalize import join_pair, normalize_array


def ensure_ray(address: str | None = None) -> Any:
    """Connect to ``address`` or start a local Ray (never stops one that is already running)."""
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address)
        else:
            ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False)
    return ray


def row_group_band_keys(batch: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """``map_batches`` body: band keys of every row of the row groups named in ``batch``."""
    c = DedupConfig.model_validate(cfg)
    hasher = MinHasher(c.num_perm, c.seed)
    shingling = {"ngram": c.ngram, "char_ngram": c.char_ngram, "short_text_words": c.short_text_words}
    out: dict[str, list[np.ndarray]] = {"file_idx": [], "row_idx": [], "keys": [], "has": []}
    for file_idx, path, group, row_start in zip(
        batch["file_idx"], batch["path"], batch["row_group"], batch["row_start"], strict=True
    ):
        t = pq.ParquetFile(str(path)).read_row_group(int(group), columns=["query", "positive"])
        text = join_pair(normalize_array(t.column("query")), normalize_array(t.column("positive")))
        for start in range(0, t.num_rows, c.batch_size):
            sig, has = hasher.signatures_of_texts(text.slice(start, c.batch_size), **shingling)
            out["keys"].append(band_keys(sig, c.bands, c.rows))
            out["has"].append(has)
        out["file_idx"].append(np.full(t.num_rows, file_idx, np.int64))
        out["row_idx"].append(np.arange(row_start, row_start + t.num_rows, dtype=np.int64))
    empty = {"keys": np.empty((0, c.bands), np.uint64), "has": np.empty(0, bool)}
    return {k: (np.concatenate(v) if v else empty.get(k, np.empty(0, np.int64))) for k, v in out.items()}


def ray_band_keys(
    files: list[Path], file_idx: np.ndarray, row_idx: np.ndarray, cfg: DedupConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Band keys and has-shingles mask of every row, ordered like ``(file_idx, row_idx)`` (positions)."""
    ray = ensure_ray(cfg.ray_address)
    items, file_rows = [], []
    for i, path in enumerate(files):
        meta = pq.ParquetFile(path).metadata
        start = 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if n:
                items.append({"file_idx": i, "path": str(path), "row_group": g, "row_start": start})
            start += n
        file_rows.append(start)
    offsets = np.concatenate(([0], np.cumsum(file_rows))).astype(np.int64)
    total = int(offsets[-1])
    keys = np.zeros((total, cfg.bands), np.uint64)
    has = np.zeros(total, bool)
    if items:
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            row_group_band_keys,
            fn_kwargs={"cfg": cfg.model_dump(mode="json")},
            batch_size=1,
            batch_format="numpy",
            num_cpus=cfg.ray_num_cpus,
        )
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            g = offsets[b["file_idx"]] + b["row_idx"]
            keys[g], has[g] = b["keys"], b["has"]
    g_of_pos = offsets[file_idx.astype(np.int64)] + row_idx.astype(np.int64)
    return keys[g_of_pos], has[g_of_pos]
