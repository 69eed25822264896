"""Dedup on a Ray cluster with no process holding the corpus (``DedupConfig.use_ray``); output equal to the
single-process path byte for byte.

Why this shape: at 470M rows the key columns alone are hundreds of GB, so the driver only plans units (runs of
row groups), reads small per-task counts, and resolves near-duplicate clusters from the verified edges
(union-find over O(duplicates), not O(rows)). Everything that touches rows runs in Ray tasks that read the
inputs and write a scratch folder on storage every node sees (:mod:`kalm.dedup.shuffle`): global keep ranks
by a sample sort on ``(id, file, row)`` (:mod:`kalm.dedup.ranks`), exact dedup by a hash shuffle of the
normalised pair's 128-bit hash (smallest rank kept), MinHash band keys shuffled by key into buckets, candidate
pairs joined with their two texts by two unit hops and verified by exact Jaccard where the texts are, then
kept rows written as parts and removed rows as ``removed.parquet`` by tasks (:mod:`kalm.dedup.cluster_write`).
The stage bodies are :mod:`kalm.dedup.cluster_stages`.

Ranks equal the single-process positions, every keep rule is "smallest rank", candidate pairs come from the
same function with bucket members in the same order, and the components of the verified-edge graph do not
depend on the order edges are verified in; so kept rows, removed rows, reasons, kept ids and statistics all
match. Exact dedup groups by a 128-bit hash where DuckDB groups by md5: both merge different texts only on a
hash collision.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from kalm.dedup import cluster_stages as stages
from kalm.dedup.cluster_write import clear_parts, part_spans, write_kept_part, write_removed
from kalm.dedup.config import REMOVED_SCHEMA, CategoryDedupStats, DedupConfig, DedupStats
from kalm.dedup.lsh import UnionFind
from kalm.dedup.ranks import Unit, boundaries, lookup, plan_units, read_unit, sample_ids, unit_of
from kalm.dedup.shuffle import StageRunner, ensure_ray, fresh_dir, scratch_dir

SAMPLES_PER_UNIT = 32


def components(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every rank of a verified edge that is not its component's smallest, and that smallest rank."""
    if not len(edges):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    nodes, inverse = np.unique(edges, return_inverse=True)
    uf = UnionFind(len(nodes))
    for a, b in inverse.reshape(-1, 2).tolist():
        uf.union(a, b)
    roots = uf.roots()
    moved = roots != np.arange(len(nodes))
    return nodes[moved], nodes[roots[moved]]


def cluster_dedup(files: list[Path], out_dir: Path, cfg: DedupConfig) -> tuple[DedupStats, dict] | None:
    """Dedup ``files`` into ``out_dir`` on the Ray cluster of ``cfg.ray_address``; the statistics and an
    execution report (tasks per node, retried tasks). None when the inputs hold no rows."""
    units = plan_units(files, cfg.ray_unit_rows)
    if not sum(u.rows for u in units):
        return None
    ray = ensure_ray(cfg.ray_address)
    scratch = fresh_dir(scratch_dir(out_dir, cfg.scratch_dir))
    try:
        runner = StageRunner(scratch, cfg.ray_num_cpus, cfg.ray_max_retries)
        stats = _run(ray, runner, units, out_dir, cfg, scratch)
        return stats, runner.report()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(
    ray, runner: StageRunner, units: list[Unit], out_dir: Path, cfg: DedupConfig, scratch: Path
) -> DedupStats:
    n = sum(u.rows for u in units)
    count = len(units)
    parts = max(1, math.ceil(n / cfg.ray_partition_rows))
    starts = ray.put(np.array([u.g_start for u in units], np.int64))
    config = cfg.model_dump(mode="json")
    samples = runner.run("sample", sample_ids, [(u, SAMPLES_PER_UNIT) for u in units])
    bounds = boundaries(samples, parts)
    ranges = len(bounds) + 1
    scanned = runner.run("scan", stages.scan, [(u, bounds, config, scratch) for u in units])
    rows_in = sum(scanned, Counter())
    sizes = runner.run(
        "rank", stages.rank, [(r, count, starts, parts, cfg.exact, scratch) for r in range(ranges)]
    )
    offsets_np = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    offsets = ray.put(offsets_np)
    if cfg.exact:
        runner.run(
            "exact", stages.exact, [(e, ranges, offsets, starts, count, scratch) for e in range(parts)]
        )
    exact_parts = parts if cfg.exact else 0
    runner.run(
        "bands", stages.bands, [(u, ranges, offsets, exact_parts, parts, config, scratch) for u in units]
    )
    edges = np.empty((0, 2), np.int64)
    if cfg.near:
        window = cfg.bucket_window
        runner.run("buckets", stages.buckets, [(b, count, starts, window, scratch) for b in range(parts)])
        runner.run("attach", stages.attach, [(u, parts, starts, count, scratch) for u in units])
        shingling = cfg.shingling()
        found = runner.run(
            "verify", stages.verify, [(u, count, cfg.threshold, shingling, scratch) for u in units]
        )
        edges = np.concatenate(found)
    mapping = ray.put(components(edges))
    assembled = runner.run(
        "assemble", stages.assemble, [(u, mapping, ranges, offsets, scratch) for u in units]
    )
    kept = sum(a["kept"] for a in assembled)
    found = runner.run(
        "keepers",
        stages.keepers,
        [(r, count, ranges, offsets, cfg.max_examples, scratch) for r in range(ranges)],
    )
    clear_parts(out_dir)
    kept_files = [scratch / "kept" / f"{u:06d}.arrow" for u in range(count)]
    row_group = min(cfg.row_group_size, cfg.rows_per_part)
    spans = part_spans(kept, cfg.rows_per_part)
    runner.run(
        "parts", write_kept_part, [(k, s, kept_files, row_group, str(out_dir)) for k, s in enumerate(spans)]
    )
    removed_files = [scratch / "removed_mid" / f"{r:06d}.arrow" for r in range(ranges)]
    target = str(out_dir / "removed.parquet")
    runner.run("removed", write_removed, [(target, ranges, removed_files, REMOVED_SCHEMA, ["rank"])])
    exact = sum((a["exact"] for a in assembled), Counter())
    near = sum((a["near"] for a in assembled), Counter())
    stats = _stats(units, scratch, offsets_np, rows_in, exact, near, found, cfg)
    (out_dir / "stats.json").write_text(json.dumps(stats.model_dump(mode="json"), indent=2) + "\n")
    return stats


def _stats(
    units: list[Unit],
    scratch: Path,
    offsets: np.ndarray,
    rows_in: Counter,
    exact: Counter,
    near: Counter,
    keepers: list[dict],
    cfg: DedupConfig,
) -> DedupStats:
    n = sum(rows_in.values())
    per_category = {
        c: CategoryDedupStats(
            rows_in=rows_in[c], exact=exact[c], near=near[c], out=rows_in[c] - exact[c] - near[c]
        )
        for c in sorted(rows_in)
    }
    removed = sum(exact.values()) + sum(near.values())
    histogram: Counter = sum((k["histogram"] for k in keepers), Counter())
    singles = (n - removed) - sum(histogram.values())
    if singles:
        histogram[1] = singles
    clusters = sorted((e for k in keepers for e in k["examples"]), key=lambda e: (-e[0], e[1]))
    examples = [
        _texts(units, scratch, offsets, members[:5]) for _, _, members in clusters[: cfg.max_examples]
    ]
    return DedupStats(
        rows_in=n,
        exact_duplicates=sum(exact.values()),
        near_duplicates=sum(near.values()),
        rows_out=n - removed,
        per_category=per_category,
        cluster_size_histogram=dict(sorted(histogram.items())),
        example_clusters=examples,
    )


def _texts(units: list[Unit], scratch: Path, offsets: np.ndarray, ranks: list[int]) -> list[str]:
    """``query positive`` (first 300 characters) of a few rows, found by rank."""
    starts = np.array([u.g_start for u in units], np.int64)
    texts = []
    for g in lookup(scratch, offsets, np.array(ranks), "g"):
        unit = units[int(unit_of(np.array([g]), starts)[0])]
        row = read_unit(unit, ["query", "positive"]).take(pa.array([g - unit.g_start])).to_pylist()[0]
        texts.append(f"{row['query']} {row['positive']}"[:300])
    return texts
