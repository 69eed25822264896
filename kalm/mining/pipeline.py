"""``mine_dataset``: canonical Parquet in, the same rows with mined hard negatives (and provenance) out.

Design decisions:
- Each source is mined against its *own* pool (its rows' positives and negatives, deduplicated, plus an optional
  configured corpus): negatives from another source or language would be trivially easy.
- A row's catalog negatives are replaced; they stay in the pool, so they are chosen again when they rank in
  the window. All positives of the same (instruction, query) are excluded, as is the query text itself.
- Classification/clustering rows (``keep_task_types``) keep their exemplar negatives (other classes'
  examples): similarity mining would pick same-topic texts of other labels and, worse, same-label texts that
  are positives by definition. They pass through with ``mined = false``.
- Only rows of ``cfg.stage`` are written: the folder is the fine-tune stage's training data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_catalog.schema import format_query
from kalm.hashing import hash_value
from kalm.mining.encode import EmbeddingCache, TextEncoder, encode_cached
from kalm.mining.io import MINED_SCHEMA, load_corpus, read_rows, split_stage, write_json, write_parts
from kalm.mining.search import blocked_topk, faiss_topk
from kalm.mining.select import MiningConfig, select_negatives
from kalm.mining.stats import (
    Histogram,
    MiningStats,
    SourceMiningStats,
    edges,
    histogram,
    merge_counts,
    plot_scores,
)

PLOT_FILE = "score_hist.png"


def _pool(rows: list[dict], corpus: list[str]) -> tuple[list[str], dict[str, int]]:
    index: dict[str, int] = {}
    for text in corpus + [t for r in rows for t in (r["positive"], *r["negatives"])]:
        index.setdefault(text, len(index))
    return list(index), index


def _search(
    queries: np.ndarray, pool: np.ndarray, cfg: MiningConfig, device: str
) -> tuple[np.ndarray, np.ndarray]:
    if cfg.search.backend == "faiss":
        return faiss_topk(queries, np.asarray(pool), cfg.search_depth)
    s = cfg.search
    return blocked_topk(
        queries,
        pool,
        cfg.search_depth,
        query_block=s.query_block,
        candidate_block=s.candidate_block,
        device=device,
    )


def mine_source(
    rows: list[dict],
    corpus: list[str],
    encoder: TextEncoder,
    cache: EmbeddingCache | None,
    cfg: MiningConfig,
) -> tuple[list[dict], SourceMiningStats, list[float], list[float]]:
    """Mine one source's rows; returns (output rows, stats, positive scores, negative scores)."""
    stats = SourceMiningStats(rows_in=len(rows))
    pool, pool_index = _pool(rows, corpus)
    formatted = [format_query(r["instruction"], r["query"]) for r in rows]
    queries = list(dict.fromkeys(formatted))
    query_index = {q: i for i, q in enumerate(queries)}
    positives: dict[int, set[int]] = {}
    for row, text in zip(rows, formatted, strict=True):
        positives.setdefault(query_index[text], set()).add(pool_index[row["positive"]])
    stats.pool_size, stats.unique_queries = len(pool), len(queries)

    pool_vecs, _ = encode_cached(pool, encoder, cache)
    query_vecs, _ = encode_cached(queries, encoder, cache)
    top_scores, top_index = _search(query_vecs, pool_vecs, cfg, encoder.device)

    out, pos_scores, neg_scores = [], [], []
    dropped: dict[str, int] = {}
    rejected: dict[str, int] = {}
    for row, text in zip(rows, formatted, strict=True):
        q = query_index[text]
        qvec = np.asarray(query_vecs[q], dtype=np.float32)
        excluded = dict.fromkeys(positives[q], "positive")
        for own in (row["query"], text):
            if own in pool_index:
                excluded.setdefault(pool_index[own], "query")
        pos = pool_index[row["positive"]]
        sel = select_negatives(
            row["id"],
            top_index[q],
            top_scores[q],
            pos,
            float(qvec @ pool_vecs[pos]),
            excluded,
            len(pool),
            lambda c, qvec=qvec: float(qvec @ pool_vecs[c]),
            cfg,
        )
        for reason, count in sel.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + count
        if sel.dropped:
            dropped[sel.dropped] = dropped.get(sel.dropped, 0) + 1
            continue
        stats.rows_filled_random += sel.filled > 0
        stats.rows_short += len(sel.negatives) < cfg.num_negatives
        pos_scores.append(sel.positive_score)
        neg_scores.extend(sel.scores)
        out.append(
            row
            | {
                "negatives": [pool[c] for c in sel.negatives],
                "mined": True,
                "miner_checkpoint": encoder.fingerprint,
                "negative_ranks": sel.ranks,
                "negative_scores": sel.scores,
                "positive_rank": sel.positive_rank,
                "positive_score": sel.positive_score,
                "filled_random": sel.filled > 0,
            }
        )
    stats.rows_out, stats.dropped_examples, stats.rejected_candidates = len(out), dropped, rejected
    return out, stats, pos_scores, neg_scores


def _passthrough(row: dict) -> dict:
    unset = dict.fromkeys(
        ("miner_checkpoint", "negative_ranks", "negative_scores", "positive_rank", "positive_score")
    )
    return row | unset | {"mined": False, "filled_random": False}


def mine_dataset(
    in_dir: Path,
    out_dir: Path,
    model_path: Path,
    cfg: MiningConfig,
    *,
    cache_dir: Path | None = None,
    model_fingerprint: str | None = None,
) -> MiningStats:
    """Mine ``cfg.stage`` rows of ``in_dir`` with the checkpoint at ``model_path`` into ``out_dir``.

    Writes ``part-*.parquet``, ``manifest.json``, ``stats.json`` and ``score_hist.png``; deterministic for a
    seed. ``cache_dir`` holds embeddings across runs (keep it outside ``out_dir``, whose hash is the step's
    fingerprint).
    """
    out_dir = Path(out_dir)
    table, other_stages = split_stage(read_rows(in_dir), cfg.stage)
    encoder = TextEncoder(model_path, cfg.encode, fingerprint=model_fingerprint)
    cache = EmbeddingCache(cache_dir) if cache_dir is not None else None
    by_source: dict[str, list[dict]] = {}
    exemplar: list[dict] = []
    for row in table.to_pylist():
        (
            exemplar if row["task_type"] in cfg.keep_task_types else by_source.setdefault(row["source"], [])
        ).append(row)

    out_rows = [_passthrough(r) for r in exemplar]
    sources: dict[str, SourceMiningStats] = {}
    pos_scores: list[float] = []
    neg_scores: list[float] = []
    for source in sorted(by_source):
        corpus = load_corpus(Path(cfg.corpora[source])) if source in cfg.corpora else []
        rows, sources[source], pos, neg = mine_source(by_source[source], corpus, encoder, cache, cfg)
        out_rows += rows
        pos_scores += pos
        neg_scores += neg

    files = write_parts(out_rows, out_dir)
    parts = list(sources.values())
    hist = Histogram(edges=edges(), positive=histogram(pos_scores), negative=histogram(neg_scores))
    config_json = cfg.model_dump(mode="json")
    stats = MiningStats(
        miner_checkpoint=encoder.fingerprint,
        config_hash=hash_value(config_json),
        rows_in=table.num_rows,
        rows_out=len(out_rows),
        rows_mined=len(out_rows) - len(exemplar),
        rows_exemplar=len(exemplar),
        rows_other_stages=other_stages,
        dropped_examples=merge_counts([p.dropped_examples for p in parts]),
        rejected_candidates=merge_counts([p.rejected_candidates for p in parts]),
        rows_filled_random=sum(p.rows_filled_random for p in parts),
        random_negatives=sum(1 for r in out_rows if r["mined"] for rank in r["negative_ranks"] if rank < 0),
        rows_short=sum(p.rows_short for p in parts),
        positive_score_mean=round(float(np.mean(pos_scores)), 6) if pos_scores else None,
        negative_score_mean=round(float(np.mean(neg_scores)), 6) if neg_scores else None,
        histogram=hist,
        sources=sources,
    )
    write_json(out_dir / "stats.json", stats.model_dump(mode="json"))
    write_json(
        out_dir / "manifest.json",
        {
            "kind": "mined",
            "stage": cfg.stage,
            "miner_checkpoint": encoder.fingerprint,
            "config": config_json,
            "config_hash": stats.config_hash,
            "columns": MINED_SCHEMA.names,
            "rows": len(out_rows),
            "files": files,
        },
    )
    plot_scores(hist, out_dir / PLOT_FILE, title=f"mined {cfg.stage} rows: {stats.rows_mined}")
    return stats
