"""``dedup_dataset``: exact then MinHash-LSH near dedup of canonical Parquet, deterministic to the byte.

Why this shape: only the key columns (id, source, category, query, positive) are loaded for the decision;
full rows are streamed from the source files by DuckDB only for the keepers, sorted by id. Rows are put in
keep-priority order ``(id, file, row)`` first, so every "keep the smallest" rule is "keep the smallest
position", and shuffled inputs give identical outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_catalog.schema import CANONICAL_SCHEMA
from kalm.dedup.cluster import cluster_dedup
from kalm.dedup.config import REMOVED_SCHEMA, CategoryDedupStats, DedupConfig, DedupStats
from kalm.dedup.io import PartWriter, discover_parquet, write_single
from kalm.dedup.lsh import candidate_pairs, text_band_keys, verified_components
from kalm.dedup.minhash import shingle_hashes
from kalm.dedup.normalize import join_pair, normalize_array

_KEY_COLUMNS = ["id", "source", "category", "query", "positive"]


def _load_keys(files: list[Path]) -> pa.Table:
    """Key columns of every file plus (file_idx, row_idx), sorted into keep-priority order."""
    parts = []
    for i, path in enumerate(files):
        t = pq.ParquetFile(path).read(columns=_KEY_COLUMNS)
        t = t.append_column("file_idx", pa.array(np.full(t.num_rows, i, np.int32)))
        parts.append(t.append_column("row_idx", pa.array(np.arange(t.num_rows, dtype=np.int64))))
    if not parts:
        fields = [CANONICAL_SCHEMA.field(c) for c in _KEY_COLUMNS]
        return pa.schema(
            [*fields, pa.field("file_idx", pa.int32()), pa.field("row_idx", pa.int64())]
        ).empty_table()
    keys = pa.concat_tables(parts).cast(parts[0].schema)
    return keys.sort_by([("id", "ascending"), ("file_idx", "ascending"), ("row_idx", "ascending")])


def _exact_reps(
    con: duckdb.DuckDBPyConnection, query: pa.ChunkedArray, positive: pa.ChunkedArray
) -> np.ndarray:
    """Per position, the smallest position with the same md5 of the normalised (query, positive) pair."""
    con.register("pairs", pa.table({"pos": np.arange(len(query), dtype=np.int64), "q": query, "p": positive}))
    sql = "SELECT min(pos) OVER (PARTITION BY md5_number(q || chr(31) || p)) AS rep FROM pairs ORDER BY pos"
    rep = con.sql(sql).fetchnumpy()["rep"]
    con.unregister("pairs")
    return np.asarray(rep, dtype=np.int64)


def _local_candidate_pairs(texts: pa.ChunkedArray, cfg: DedupConfig) -> np.ndarray:
    """Candidate pairs of normalised texts from their LSH buckets, all in this process."""
    keys, has = text_band_keys(texts, cfg)
    docs = np.flatnonzero(has)
    return candidate_pairs(keys[docs], docs, cfg.bucket_window)


def _near_reps(texts: pa.ChunkedArray, pairs: np.ndarray, cfg: DedupConfig) -> np.ndarray:
    """Per text, the smallest index of its verified near-duplicate component, from candidate ``pairs``."""

    def shingle_sets(idx: np.ndarray) -> list[np.ndarray]:
        flat, off = shingle_hashes(texts.take(pa.array(idx)), **cfg.shingling())
        return [np.unique(flat[off[k] : off[k + 1]]) for k in range(len(idx))]

    return verified_components(len(texts), pairs, shingle_sets, cfg.threshold)


def _write_kept(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    keys: pa.Table,
    keep: np.ndarray,
    out_dir: Path,
    cfg: DedupConfig,
) -> None:
    """Stream the kept full rows from the source files, in position (= id) order, into parts."""
    writer = PartWriter(out_dir, cfg.rows_per_part, cfg.row_group_size)
    if not files:
        writer.close()
        return
    pos = np.flatnonzero(keep)
    kept = pa.table(
        {
            "pos": pa.array(pos),
            "file_idx": keys.column("file_idx").take(pa.array(pos)),
            "row_idx": keys.column("row_idx").take(pa.array(pos)),
        }
    )
    con.register("kept", kept)
    con.register(
        "file_map",
        pa.table({"file_idx": pa.array(range(len(files)), pa.int32()), "path": [str(f) for f in files]}),
    )
    sql = """
        SELECT r.* FROM read_parquet($files, filename = true, file_row_number = true) r
        JOIN file_map f ON r.filename = f.path
        JOIN kept k ON k.file_idx = f.file_idx AND k.row_idx = r.file_row_number
        ORDER BY k.pos
    """
    reader = con.sql(sql, params={"files": [str(f) for f in files]}).to_arrow_reader(cfg.row_group_size)
    writer.write_all(reader)


def _stats(
    keys: pa.Table, final: np.ndarray, exact_removed: np.ndarray, near_removed: np.ndarray, cfg: DedupConfig
) -> DedupStats:
    n = len(final)
    enc = keys.column("category").combine_chunks().dictionary_encode() if n else None
    per_category: dict[str, CategoryDedupStats] = {}
    if enc is not None:
        codes = enc.indices.to_numpy(zero_copy_only=False)
        size = len(enc.dictionary)
        rows_in = np.bincount(codes, minlength=size)
        exact = np.bincount(codes[exact_removed], minlength=size)
        near = np.bincount(codes[near_removed], minlength=size)
        for c, name in sorted(enumerate(enc.dictionary.to_pylist()), key=lambda x: x[1]):
            per_category[name] = CategoryDedupStats(
                rows_in=int(rows_in[c]),
                exact=int(exact[c]),
                near=int(near[c]),
                out=int(rows_in[c] - exact[c] - near[c]),
            )
    sizes = np.bincount(final, minlength=n)
    keepers = np.flatnonzero(sizes)
    hist_sizes, hist_counts = np.unique(sizes[keepers], return_counts=True)
    big = keepers[sizes[keepers] >= 2]
    examples = []
    for k in big[np.lexsort((big, -sizes[big]))][: cfg.max_examples]:
        members = np.flatnonzero(final == k)[:5]
        q = keys.column("query").take(pa.array(members)).to_pylist()
        p = keys.column("positive").take(pa.array(members)).to_pylist()
        examples.append([f"{a} {b}"[:300] for a, b in zip(q, p, strict=True)])
    removed = int(exact_removed.sum() + near_removed.sum())
    return DedupStats(
        rows_in=n,
        exact_duplicates=int(exact_removed.sum()),
        near_duplicates=int(near_removed.sum()),
        rows_out=n - removed,
        per_category=per_category,
        cluster_size_histogram={int(s): int(c) for s, c in zip(hist_sizes, hist_counts, strict=True)},
        example_clusters=examples,
    )


def dedup_dataset(in_dir: Path, out_dir: Path, cfg: DedupConfig, execution: dict | None = None) -> DedupStats:
    """Exact + near dedup of every ``*.parquet`` under ``in_dir`` (quarantine excluded) into ``out_dir``.

    With ``cfg.use_ray`` it runs on a Ray cluster (:mod:`kalm.dedup.cluster`, no process holds the corpus)
    and fills ``execution`` with its report (tasks per node, retried tasks); the output is byte-identical to
    the single-process path. Writes ``part-*.parquet`` (kept rows, sorted by id), ``removed.parquet`` (every
    removed row with its reason and the id of the row kept in its place) and ``stats.json``.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = discover_parquet(in_dir, "*.parquet", exclude=out_dir)
    if cfg.use_ray:
        done = cluster_dedup(files, out_dir, cfg)
        if done is not None:
            if execution is not None:
                execution.update(done[1])
            return done[0]
    keys = _load_keys(files)
    n = keys.num_rows
    positions = np.arange(n, dtype=np.int64)
    query, positive = normalize_array(keys.column("query")), normalize_array(keys.column("positive"))
    con = duckdb.connect()
    try:
        rep = _exact_reps(con, query, positive) if cfg.exact and n else positions
        final = rep.copy()
        if cfg.near and n:
            survivors = np.flatnonzero(rep == positions)
            texts = join_pair(query, positive).take(pa.array(survivors))
            pairs = _local_candidate_pairs(texts, cfg)
            near_root = survivors[_near_reps(texts, pairs, cfg)]
            resolved = positions.copy()
            resolved[survivors] = near_root
            final = resolved[rep]  # exact duplicates point at their group's final keeper
        removed = final != positions
        exact_removed = removed & (rep != positions)
        near_removed = removed & (rep == positions)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_kept(con, files, keys, ~removed, out_dir, cfg)
    finally:
        con.close()
    gone = pa.array(np.flatnonzero(removed))
    removed_tbl = pa.table(
        {
            "id": keys.column("id").take(gone),
            "source": keys.column("source").take(gone),
            "category": keys.column("category").take(gone),
            "reason": pc.if_else(pa.array(exact_removed[removed]), "exact", "near"),
            "kept_id": keys.column("id").take(pa.array(final[removed])),
        }
    ).cast(REMOVED_SCHEMA)
    write_single(out_dir / "removed.parquet", removed_tbl, REMOVED_SCHEMA)
    stats = _stats(keys, final, exact_removed, near_removed, cfg)
    (out_dir / "stats.json").write_text(json.dumps(stats.model_dump(mode="json"), indent=2) + "\n")
    return stats
