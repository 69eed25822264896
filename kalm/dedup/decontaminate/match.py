"""Matching a batch of training rows against the evaluation index: exact keys, then verified near matches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kalm.dedup.decontaminate.config import DecontaminationConfig
from kalm.dedup.decontaminate.index import EvalIndex, match_key, shingled_band_keys
from kalm.dedup.lsh import jaccard
from kalm.dedup.minhash import MinHasher
from kalm.dedup.normalize import normalize_array

KEY_COLUMNS = ["id", "source", "category", "query", "positive"]


def _near_matches(
    norm: pa.Array, index: EvalIndex, cfg: DecontaminationConfig, hasher: MinHasher
) -> list[tuple[int, int, float]]:
    """``(text position, eval index, jaccard)`` for verified near matches of non-empty normalised texts."""
    keys, hashes, offsets = shingled_band_keys(norm, cfg, hasher)
    has = np.diff(offsets) > 0
    found = []
    for b, (sorted_keys, members) in enumerate(index.band_sorted):
        lo = np.searchsorted(sorted_keys, keys[:, b], "left")
        cnt = np.minimum(np.searchsorted(sorted_keys, keys[:, b], "right") - lo, cfg.max_bucket_candidates)
        cnt[~has] = 0
        if not cnt.any():
            continue
        text = np.repeat(np.arange(len(cnt)), cnt)
        first = np.repeat(np.cumsum(cnt) - cnt, cnt)
        found.append(np.stack((text, members[lo[text] + np.arange(len(text)) - first]), axis=1))
    if not found:
        return []
    out = []
    for t, e in np.unique(np.concatenate(found), axis=0).tolist():
        j = jaccard(np.unique(hashes[offsets[t] : offsets[t + 1]]), index.shingle_sets[e])
        if j >= cfg.threshold:
            out.append((t, e, j))
    return out


def batch_matches(batch: pa.RecordBatch, index: EvalIndex, cfg: DecontaminationConfig, hasher: MinHasher):
    """Per matched row position: ``(kind_rank, -jaccard, field_rank, eval index, field, kind, jaccard)``."""
    hits: dict[int, list[tuple]] = {}
    for f_rank, field in enumerate(cfg.fields):
        norm = normalize_array(batch.column(field))
        exact_idx = np.full(len(norm), -1, np.int64)
        if cfg.exact and len(index.keys):
            exact_idx = (
                pc.index_in(match_key(norm), value_set=index.keys)
                .fill_null(-1)
                .to_numpy(zero_copy_only=False)
            )
            for pos in np.flatnonzero(exact_idx >= 0).tolist():
                e = int(exact_idx[pos])
                hits.setdefault(pos, []).append((0, -1.0, f_rank, e, field, "exact", 1.0))
        if cfg.near and index.band_sorted:
            for pos, e, j in _near_matches(norm, index, cfg, hasher):
                if exact_idx[pos] != e:
                    hits.setdefault(pos, []).append((1, -j, f_rank, e, field, "near", j))
    return hits


def removed_records(
    batch: pa.RecordBatch, hits: dict[int, list[tuple]], index: EvalIndex, file_idx: int, row0: int
) -> list[dict]:
    """One record per (dropped row, eval task): that task's best match (exact, then Jaccard, field, text)."""
    cols = {c: batch.column(c) for c in KEY_COLUMNS}
    records = []
    for pos in sorted(hits):
        best: dict[int, tuple] = {}
        for hit in hits[pos]:
            for task, original in index.occurrences[hit[3]]:
                if task not in best or hit[:4] < best[task][0][:4]:
                    best[task] = (hit, original)
        row = {c: cols[c][pos].as_py() for c in KEY_COLUMNS}
        for task in sorted(best, key=lambda t: index.tasks[t]):
            hit, original = best[task]
            records.append(
                {
                    **row,
                    "field": hit[4],
                    "match": hit[5],
                    "jaccard": float(hit[6]),
                    "eval_task": index.tasks[task],
                    "eval_text": original,
                    "_file": file_idx,
                    "_row": row0 + pos,
                }
            )
    return records
