"""The cluster dedup's stage bodies, called in this process (no Ray): ranks are the single-process positions and
the bucket shuffle yields exactly the local candidate pairs, also where buckets outgrow ``bucket_window``."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kalm.dedup import DedupConfig
from kalm.dedup import cluster_stages as stages
from kalm.dedup.cluster import components
from kalm.dedup.io import discover_parquet
from kalm.dedup.normalize import join_pair, normalize_array
from kalm.dedup.pipeline import _exact_reps, _load_keys, _local_candidate_pairs
from kalm.dedup.ranks import boundaries, plan_units, sample_ids
from kalm.dedup.shuffle import read_partition

from .fixtures import random_words, rows_table


def _corpus(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    vocab = [f"w{i}" for i in range(300)]
    rows = []
    for i in range(150):
        words = random_words(rng, vocab, 25)
        rows.append({"id": f"a{i % 97:03d}", "query": f"q{i}", "positive": " ".join(words)})  # repeated ids
        if i % 5 == 0:
            rows.append({"id": f"x{i:03d}", "query": f"Q{i}!", "positive": " ".join(words).upper()})
    base = random_words(rng, vocab, 25)
    for k in range(30):  # one bucket family far larger than the window
        rows.append(
            {"id": f"f{k:02d}", "query": "fam", "positive": " ".join([*base[:-2], f"v{k}", f"u{k % 3}"])}
        )
    random.Random(2).shuffle(rows)
    for k in range(3):
        (tmp_path / "in" / f"s{k}").mkdir(parents=True)
        pq.write_table(rows_table(rows[k::3]), tmp_path / "in" / f"s{k}" / "p.parquet", row_group_size=16)
    return tmp_path / "in"


def test_ranks_and_candidate_pairs_equal_the_local_path(tmp_path: Path) -> None:
    files = discover_parquet(_corpus(tmp_path))
    cfg = DedupConfig(bucket_window=2, ray_unit_rows=40, ray_partition_rows=50)
    config, scratch = cfg.model_dump(mode="json"), tmp_path / "scratch"
    units = plan_units(files, cfg.ray_unit_rows)
    n, count = sum(u.rows for u in units), len(units)
    parts = -(-n // cfg.ray_partition_rows)
    starts = np.array([u.g_start for u in units], np.int64)
    bounds = boundaries([sample_ids(u, 8) for u in units], parts)
    ranges = len(bounds) + 1
    assert count > 3 and ranges > 2
    for u in units:
        stages.scan(u, bounds, config, scratch)
    sizes = [stages.rank(r, count, starts, parts, True, scratch) for r in range(ranges)]
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    for e in range(parts):
        stages.exact(e, ranges, offsets, starts, count, scratch)
    for u in units:
        stages.bands(u, ranges, offsets, parts, parts, config, scratch)
    for b in range(parts):
        stages.buckets(b, count, starts, cfg.bucket_window, scratch)
    found = pa.concat_tables(
        read_partition([scratch / "pairs" / f"{b:06d}.arrow"], u) for b in range(parts) for u in range(count)
    )
    cluster = np.unique(np.stack((found["ri"].to_numpy(), found["rj"].to_numpy()), axis=1), axis=0)

    keys = _load_keys(files)  # the local path: positions in (id, file, row) order
    ranks = np.concatenate([np.load(scratch / "state" / f"{u:06d}.npz")["ranks"] for u in range(count)])
    file_start = {}
    for u in units:
        file_start.setdefault(u.path, u.g_start)
    first_g = np.array([file_start[str(f)] for f in files])
    g_of_position = first_g[keys["file_idx"].to_numpy()] + keys["row_idx"].to_numpy()
    assert np.array_equal(ranks[g_of_position], np.arange(n)), "ranks are the local positions"
    query, positive = normalize_array(keys["query"]), normalize_array(keys["positive"])
    with duckdb.connect() as con:
        rep = _exact_reps(con, query, positive)
    survivors = np.flatnonzero(rep == np.arange(n))
    local = _local_candidate_pairs(join_pair(query, positive).take(pa.array(survivors)), cfg)
    local = np.unique(np.sort(survivors[local], axis=1), axis=0)
    assert len(local) > 100
    assert np.array_equal(cluster, local)


def test_components_keep_the_smallest_rank() -> None:
    node, root = components(np.array([[9, 4], [4, 7], [20, 30], [7, 2]]))
    assert dict(zip(node.tolist(), root.tolist(), strict=True)) == {4: 2, 7: 2, 9: 2, 30: 20}
    assert stages.resolve(np.array([1, 9, 30, 31]), node, root).tolist() == [1, 2, 20, 31]
