"""Signatures, LSH band keys and bucket grouping as Ray Data stages (``DedupConfig.use_ray``), equal to local.

Why this shape: signatures are the expensive, embarrassingly parallel part of near dedup, and grouping band
keys into buckets is the part whose memory grows with the corpus (470M rows x 16 bands x 8 bytes is ~60 GB),
so neither may run on the driver at scale. Stage 1 (``map_batches``, one task per Parquet *row group*) reads
``query``/``positive``, normalises, shingles, computes MinHash signatures and band keys, and emits one
``(key, slot)`` row per band for every exact-dedup survivor that has shingles (``slot`` = the survivor's
index, looked up in a shared array the driver puts in the object store). Stage 2 hash-shuffles those rows
by ``key % ray_bucket_partitions`` (``groupby().map_groups``) and turns each partition's buckets into
candidate pairs with the very function the local path uses. Only candidate pairs travel back to the
driver, which verifies them against exact Jaccard.

Why the output equals the local path: band keys already mix in the band index, so one key column holding
every band's keys forms exactly the local per-band buckets (up to a 2**-64 key collision, which verification
would reject); members are ordered by slot before pairing, as locally, so even the bounded pairing inside
huge buckets (``bucket_window``) picks the same pairs. The input files must be readable from every Ray node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from kalm.dedup.config import DedupConfig
from kalm.dedup.lsh import candidate_pairs, text_band_keys
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


def row_group_bucket_rows(
    batch: dict[str, np.ndarray], cfg: dict[str, Any], slot_ref: list[Any]
) -> dict[str, np.ndarray]:
    """Stage 1 body: ``(key, slot, part)`` rows for every band of every surviving row of the named row groups."""
    import ray

    c = DedupConfig.model_validate(cfg)
    slot_of_row = ray.get(slot_ref[0])
    keys, slots = [np.empty((0, c.bands), np.uint64)], [np.empty(0, np.int64)]
    for path, group, row_start in zip(batch["path"], batch["row_group"], batch["global_start"], strict=True):
        t = pq.ParquetFile(str(path)).read_row_group(int(group), columns=["query", "positive"])
        slot = slot_of_row[int(row_start) : int(row_start) + t.num_rows]
        live = np.flatnonzero(slot >= 0)
        if not len(live):
            continue
        t = t.take(live)
        text = join_pair(normalize_array(t.column("query")), normalize_array(t.column("positive")))
        key, has = text_band_keys(text, c)
        keys.append(key[has])
        slots.append(slot[live][has])
    key, slot = np.concatenate(keys), np.concatenate(slots)
    flat_key = key.ravel()
    return {
        "key": flat_key,
        "slot": np.repeat(slot, c.bands),
        "part": (flat_key % np.uint64(c.ray_bucket_partitions)).astype(np.int64),
    }


def partition_pairs(batch: dict[str, np.ndarray], window: int) -> dict[str, np.ndarray]:
    """Stage 2 body: candidate pairs of one hash partition of ``(key, slot)`` rows, members in slot order."""
    order = np.argsort(batch["slot"], kind="stable")
    pairs = candidate_pairs(batch["key"][order][:, None], batch["slot"][order], window)
    return {"i": pairs[:, 0], "j": pairs[:, 1]}


def ray_candidate_pairs(
    files: list[Path], file_idx: np.ndarray, row_idx: np.ndarray, survivors: np.ndarray, cfg: DedupConfig
) -> np.ndarray:
    """Unique sorted ``(i, j)`` candidate pairs over survivor indices (``survivors`` = their positions)."""
    ray = ensure_ray(cfg.ray_address)
    items, file_rows = [], []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        start = 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if n:
                items.append({"path": str(path), "row_group": g, "global_start": sum(file_rows) + start})
            start += n
        file_rows.append(start)
    offsets = np.concatenate(([0], np.cumsum(file_rows))).astype(np.int64)
    slot_of_row = np.full(int(offsets[-1]), -1, np.int64)
    global_row = offsets[file_idx.astype(np.int64)] + row_idx.astype(np.int64)
    slot_of_row[global_row[survivors]] = np.arange(len(survivors))
    if not items or not len(survivors):
        return np.empty((0, 2), np.int64)
    ds = (
        ray.data.from_items(items, override_num_blocks=len(items))
        .map_batches(
            row_group_bucket_rows,
            fn_kwargs={"cfg": cfg.model_dump(mode="json"), "slot_ref": [ray.put(slot_of_row)]},
            batch_size=1,
            batch_format="numpy",
            num_cpus=cfg.ray_num_cpus,
        )
        .groupby("part", num_partitions=cfg.ray_bucket_partitions)
        .map_groups(
            partition_pairs,
            fn_kwargs={"window": cfg.bucket_window},
            batch_format="numpy",
            num_cpus=cfg.ray_num_cpus,
        )
    )
    found = [
        np.stack((b["i"], b["j"]), axis=1) for b in ds.iter_batches(batch_size=None, batch_format="numpy")
    ]
    pairs = np.concatenate(found).astype(np.int64) if found else np.empty((0, 2), np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs
