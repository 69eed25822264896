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
- Sources are mined one at a time (``kalm.mining.spill`` splits the stage by source, ``kalm.mining.merge``
  merges the per-source outputs), so a stage larger than memory can be mined; since each source is mined
  only against its own pool, the output is the one a whole-stage in-memory run gives, byte for byte.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_catalog.schema import row_query
from kalm.hashing import hash_value
from kalm.mining.cache import EmbeddingCache, encode_cached
from kalm.mining.encode import TextEncoder
from kalm.mining.io import MINED_SCHEMA, load_corpus, write_json
from kalm.mining.merge import GROUP, merge_runs, write_run
from kalm.mining.search import blocked_topk, faiss_topk
from kalm.mining.select import MiningConfig, select_negatives
from kalm.mining.spill import StagePartition, partition_stage, read_source
from kalm.mining.stats import (
    Histogram,
    MiningStats,
    SourceMiningStats,
    edges,
    histogram,
    merge_counts,
    plot_scores,
)
from kalm.progress import ProgressLog

PLOT_FILE = "score_hist.png"
logger = logging.getLogger(__name__)


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
    formatted = [row_query(r, cfg.use_instructions) for r in rows]
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


def output_config(cfg: MiningConfig) -> dict:
    """The configuration recorded in the manifest and hashed: the embedding cache's size cap is left out,
    as it changes what stays on disk between runs, never the output (so changing it does not re-fingerprint).
    """
    return cfg.model_dump(mode="json", exclude={"encode": {"cache_max_bytes"}})


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


@dataclass
class _StreamingMiner:
    """Mines a stage one source at a time, keeping only what the stage-level stats need (no rows).

    Scores are kept as float64 arrays (8 bytes each, a small fraction of a row's text): the stats' means must
    equal the whole-stage ``np.mean`` bit for bit, which a running sum does not guarantee.
    """

    encoder: TextEncoder
    cache: EmbeddingCache | None
    cfg: MiningConfig
    rows_read: int = 0
    rows_exemplar: int = 0
    rows_mined: int = 0
    random_negatives: int = 0
    sources: dict[str, SourceMiningStats] = field(default_factory=dict)
    positive_scores: list[np.ndarray] = field(default_factory=list)
    negative_scores: list[np.ndarray] = field(default_factory=list)

    def run(self, source: str, group: int, spilled: Path, out: Path) -> None:
        """Read one source's rows, mine them, write its sorted output run; nothing of it outlives the call."""
        keep = self.cfg.keep_task_types
        rows = read_source(spilled).to_pylist()
        spilled.unlink()
        self.rows_read += len(rows)
        exemplar = [_passthrough(r) | {GROUP: 0} for r in rows if r["task_type"] in keep]
        to_mine = [r for r in rows if r["task_type"] not in keep]
        del rows
        self.rows_exemplar += len(exemplar)
        mined = self._mine(source, to_mine) if to_mine else []
        del to_mine
        write_run(exemplar + [r | {GROUP: group} for r in mined], out)

    def _mine(self, source: str, rows: list[dict]) -> list[dict]:
        cfg = self.cfg
        corpus = load_corpus(Path(cfg.corpora[source])) if source in cfg.corpora else []
        mined, self.sources[source], pos, neg = mine_source(rows, corpus, self.encoder, self.cache, cfg)
        self.rows_mined += len(mined)
        self.random_negatives += sum(rank < 0 for r in mined for rank in r["negative_ranks"])
        self.positive_scores.append(np.asarray(pos, dtype=np.float64))
        self.negative_scores.append(np.asarray(neg, dtype=np.float64))
        return mined

    def stats(self, stage: StagePartition) -> MiningStats:
        parts = list(self.sources.values())
        pos, neg = _joined(self.positive_scores), _joined(self.negative_scores)
        return MiningStats(
            miner_checkpoint=self.encoder.fingerprint,
            config_hash=hash_value(output_config(self.cfg)),
            rows_in=stage.rows_in,
            rows_out=self.rows_exemplar + self.rows_mined,
            rows_mined=self.rows_mined,
            rows_exemplar=self.rows_exemplar,
            rows_other_stages=stage.rows_other_stages,
            dropped_examples=merge_counts([p.dropped_examples for p in parts]),
            rejected_candidates=merge_counts([p.rejected_candidates for p in parts]),
            rows_filled_random=sum(p.rows_filled_random for p in parts),
            random_negatives=self.random_negatives,
            rows_short=sum(p.rows_short for p in parts),
            positive_score_mean=round(float(np.mean(pos)), 6) if pos.size else None,
            negative_score_mean=round(float(np.mean(neg)), 6) if neg.size else None,
            histogram=Histogram(edges=edges(), positive=histogram(pos), negative=histogram(neg)),
            sources=self.sources,
        )


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
    fingerprint). Streams one source at a time: peak memory is the largest source's rows and pool
    embeddings, plus merge buffers; spill files go to a temporary folder next to ``out_dir`` (about the
    stage's size on disk) and are removed at the end.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    encoder = TextEncoder(model_path, cfg.encode, fingerprint=model_fingerprint)
    cache = EmbeddingCache(cache_dir, max_bytes=cfg.encode.cache_max_bytes) if cache_dir is not None else None
    miner = _StreamingMiner(encoder, cache, cfg)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.spill-", dir=out_dir.parent) as tmp:
        spill = Path(tmp)
        stage = partition_stage(in_dir, cfg.stage, spill / "input")
        runs = []
        progress = ProgressLog(logger, f"mine {cfg.stage}", stage.rows_in, "rows")
        for group, source in enumerate(sorted(stage.sources), start=1):
            runs.append(spill / f"run-{group:05d}.parquet")
            miner.run(source, group, stage.sources[source], runs[-1])
            progress.update(miner.rows_read, source=f"{source} ({group}/{len(stage.sources)})")
        progress.finish(miner.rows_read)
        files = merge_runs(runs, out_dir)
    stats = miner.stats(stage)
    write_json(out_dir / "stats.json", stats.model_dump(mode="json"))
    write_json(
        out_dir / "manifest.json",
        {
            "kind": "mined",
            "stage": cfg.stage,
            "miner_checkpoint": encoder.fingerprint,
            "config": output_config(cfg),
            "config_hash": stats.config_hash,
            "columns": MINED_SCHEMA.names,
            "rows": stats.rows_out,
            "files": files,
        },
    )
    plot_scores(stats.histogram, out_dir / PLOT_FILE, title=f"mined {cfg.stage} rows: {stats.rows_mined}")
    return stats
