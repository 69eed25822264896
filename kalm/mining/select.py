"""Choosing each query's hard negatives from its ranked candidates, with the known false-negative filters.

The KaLM recipe samples M=7 negatives from ranks [50, 100) of the previous stage's model (skipping the top
ranks, where unlabelled true positives concentrate) and drops an example whose positive the model does not
place in its top 50 (ranking consistency: such labels are likely noisy). NV-Retriever's positive-aware filter
additionally rejects any candidate scoring above ``margin_fraction`` x the positive's score, and ``max_score``
is an absolute ceiling. Ranks are 0-based positions in the full ranked list, positives included (as in KaLM's
``hn_mine.py``). Every rejection is counted by reason so a run's report shows what each filter did.

Sampling is seeded per query from ``(row id, seed)``, so a row's negatives do not depend on which other rows
are mined with it, nor on their order.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kalm.mining.encode import EncodeConfig

RANDOM_RANK = -1  # rank recorded for a negative drawn at random to fill a short window


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field("torch", pattern="^(torch|faiss)$")
    query_block: int = Field(1024, gt=0)
    candidate_block: int = Field(16_384, gt=0)


class MiningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="mine fine-tuning negatives with the pre-trained model")
    rank_start: int = Field(50, ge=0, description="first rank sampled from (0-based, positives included)")
    rank_end: int = Field(100, gt=0, description="rank window end (exclusive)")
    num_negatives: int = Field(7, ge=0, description="negatives sampled per example (M)")
    seed: int = 0
    filter_topk: int | None = Field(50, gt=0, description="drop the example if its positive ranks >= K")
    margin_fraction: float | None = Field(
        0.95, gt=0, description="drop candidates scoring above this x the positive's score (NV-Retriever)"
    )
    max_score: float | None = Field(None, description="drop candidates scoring above this absolute value")
    fill_random: bool = Field(True, description="top up a short window with random pool candidates")
    use_instructions: bool = Field(
        True,
        description="encode queries with their KaLM instruction (False for models never trained with one)",
    )
    stage: str = Field("finetune", description="rows of this data stage are mined; others are not written")
    keep_task_types: tuple[str, ...] = Field(
        ("classification", "clustering"), description="rows keep their exemplar negatives, unmined"
    )
    corpora: dict[str, str] = Field(
        default_factory=dict, description="source -> JSONL/Parquet corpus added to that source's pool"
    )
    encode: EncodeConfig = EncodeConfig()
    search: SearchConfig = SearchConfig()

    @model_validator(mode="after")
    def _check(self) -> MiningConfig:
        if self.rank_end <= self.rank_start:
            raise ValueError(f"rank_end ({self.rank_end}) must exceed rank_start ({self.rank_start})")
        return self

    @property
    def search_depth(self) -> int:
        """How many ranks to retrieve per query: the window and the consistency filter both need theirs."""
        return max(self.rank_end, self.filter_topk or 0)


@dataclass
class Selection:
    negatives: list[int] = field(default_factory=list)  # candidate indices
    ranks: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    positive_rank: int | None = None
    positive_score: float = 0.0
    dropped: str | None = None  # reason the whole example is dropped
    filled: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def query_rng(row_id: str, seed: int) -> random.Random:
    digest = hashlib.sha256(f"{row_id}\x1f{seed}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _reject_reason(
    cand: int, score: float, positive_score: float, excluded: dict[int, str], cfg: MiningConfig
) -> str | None:
    if cand in excluded:
        return excluded[cand]
    if cfg.max_score is not None and score > cfg.max_score:
        return "max_score"
    if cfg.margin_fraction is not None and score > cfg.margin_fraction * positive_score:
        return "margin"
    return None


def select_negatives(
    row_id: str,
    ranked_index: np.ndarray,
    ranked_scores: np.ndarray,
    positive: int,
    positive_score: float,
    excluded: dict[int, str],
    n_candidates: int,
    score_of: Callable[[int], float],
    cfg: MiningConfig,
) -> Selection:
    """Negatives for one example.

    ``ranked_index``/``ranked_scores``: the query's ranked candidates (best first); ``positive``: the pool index
    of this row's positive; ``excluded``: pool index -> reason for texts that may never be negatives (all
    positives of the query: ``positive``; the query text itself: ``query``); ``score_of``: the query's score
    for any pool index (used for random fills, which pass the same score filters).
    """
    sel = Selection(positive_score=float(positive_score))
    hits = np.flatnonzero(ranked_index == positive)
    sel.positive_rank = int(hits[0]) if len(hits) else None
    if cfg.filter_topk is not None and (sel.positive_rank is None or sel.positive_rank >= cfg.filter_topk):
        sel.dropped = "positive_not_in_topk"
        return sel
    eligible: list[int] = []
    for rank in range(cfg.rank_start, min(cfg.rank_end, len(ranked_index))):
        cand, score = int(ranked_index[rank]), float(ranked_scores[rank])
        reason = _reject_reason(cand, score, positive_score, excluded, cfg)
        if reason is None:
            eligible.append(rank)
        else:
            sel.rejected[reason] += 1
    rng = query_rng(row_id, cfg.seed)
    chosen = sorted(rng.sample(eligible, min(cfg.num_negatives, len(eligible))))
    for rank in chosen:
        sel.negatives.append(int(ranked_index[rank]))
        sel.ranks.append(rank)
        sel.scores.append(float(ranked_scores[rank]))
    if cfg.fill_random and len(chosen) < cfg.num_negatives:
        _fill(sel, rng, ranked_index, excluded, n_candidates, score_of, cfg)
    return sel


def _fill(
    sel: Selection,
    rng: random.Random,
    ranked_index: np.ndarray,
    excluded: dict[int, str],
    n_candidates: int,
    score_of: Callable[[int], float],
    cfg: MiningConfig,
) -> None:
    """Random pool candidates outside the searched window (its rejects stay rejected) that pass the filters."""
    seen = set(ranked_index[: cfg.rank_end].tolist()) | set(sel.negatives)
    for _ in range(20 * cfg.num_negatives):
        if len(sel.negatives) >= cfg.num_negatives or len(seen) >= n_candidates:
            break
        cand = rng.randrange(n_candidates)
        if cand in seen:
            continue
        seen.add(cand)
        score = score_of(cand)
        if _reject_reason(cand, score, sel.positive_score, excluded, cfg) is not None:
            continue
        sel.negatives.append(cand)
        sel.ranks.append(RANDOM_RANK)
        sel.scores.append(score)
        sel.filled += 1
