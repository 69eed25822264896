"""Negative selection on a hand-built ranking: the window, the exclusions, each filter, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from kalm.mining.select import RANDOM_RANK, MiningConfig, select_negatives

N = 30  # pool size; candidate c has score 1 - c/100 for the query, so rank == candidate index
SCORES = 1.0 - np.arange(N) / 100.0
RANKED = np.arange(N)


def _select(cfg: MiningConfig, positive: int = 1, excluded=None, row_id: str = "r1", ranked=RANKED):
    excluded = {positive: "positive"} if excluded is None else excluded
    return select_negatives(
        row_id,
        ranked,
        SCORES[ranked],
        positive,
        float(SCORES[positive]),
        excluded,
        N,
        lambda c: float(SCORES[c]),
        cfg,
    )


def _cfg(**overrides) -> MiningConfig:
    base = {"rank_start": 5, "rank_end": 12, "num_negatives": 3, "filter_topk": 10, "margin_fraction": None}
    return MiningConfig(**(base | overrides))


def test_samples_only_from_the_rank_window():
    sel = _select(_cfg())
    assert sel.dropped is None and sel.positive_rank == 1
    assert len(sel.negatives) == 3 and all(5 <= r < 12 for r in sel.ranks)
    assert sel.ranks == sorted(sel.ranks) and sel.negatives == sel.ranks  # rank == index here
    np.testing.assert_allclose(sel.scores, SCORES[sel.ranks])
    assert sel.filled == 0 and not sel.rejected


def test_excludes_every_positive_and_the_query_text():
    excluded = {1: "positive", 6: "positive", 7: "query"}
    sel = _select(_cfg(num_negatives=7, fill_random=False), excluded=excluded)
    assert sel.negatives == [5, 8, 9, 10, 11]
    assert sel.rejected == {"positive": 1, "query": 1}


def test_ranking_consistency_drops_the_example():
    assert _select(_cfg(filter_topk=10), positive=9).dropped is None
    sel = _select(_cfg(filter_topk=10), positive=10)
    assert sel.dropped == "positive_not_in_topk" and sel.positive_rank == 10 and not sel.negatives
    # a positive outside the searched list altogether has no rank
    missing = _select(_cfg(filter_topk=10), positive=29, ranked=RANKED[:20])
    assert missing.dropped == "positive_not_in_topk" and missing.positive_rank is None
    assert _select(_cfg(filter_topk=None), positive=25).dropped is None


def test_positive_aware_margin():
    # positive at rank 0 scores 1.0: with 0.93 only candidates scoring <= 0.93 (rank >= 7) survive
    sel = _select(_cfg(margin_fraction=0.93, num_negatives=7, fill_random=False), positive=0)
    assert sel.negatives == [7, 8, 9, 10, 11]
    assert sel.rejected == {"margin": 2}


def test_absolute_max_score():
    sel = _select(_cfg(max_score=0.905, num_negatives=7, fill_random=False))
    assert sel.negatives == [10, 11] and sel.rejected == {"max_score": 5}


def test_random_fill_is_flagged_and_filtered():
    cfg = _cfg(num_negatives=10, margin_fraction=0.99, filter_topk=None)
    sel = _select(cfg, positive=0)
    window = [r for r in sel.ranks if r != RANDOM_RANK]
    assert window == [5, 6, 7, 8, 9, 10, 11]
    assert sel.filled == 3 and sel.ranks.count(RANDOM_RANK) == 3
    fills = sel.negatives[7:]
    assert all(c >= 12 for c in fills) and len(set(fills)) == 3  # outside the window, distinct
    assert not _select(cfg.model_copy(update={"fill_random": False}), positive=0).filled


def test_fill_never_picks_a_filtered_candidate():
    cfg = _cfg(num_negatives=5, rank_start=2, rank_end=4, max_score=0.75, filter_topk=None)
    sel = _select(cfg, positive=0)
    assert all(SCORES[c] <= 0.75 for c in sel.negatives)
    assert len(sel.negatives) == 5 and sel.rejected == {"max_score": 2}


def test_deterministic_per_row_and_seed():
    cfg = _cfg(rank_start=2, rank_end=30, num_negatives=5, filter_topk=None)
    first = _select(cfg, row_id="abc").negatives
    assert _select(cfg, row_id="abc").negatives == first
    others = {tuple(_select(cfg.model_copy(update={"seed": s}), row_id="abc").negatives) for s in range(1, 6)}
    others |= {tuple(_select(cfg, row_id=f"row{i}").negatives) for i in range(5)}
    assert len(others - {tuple(first)}) >= 5  # the seed and the row id both change the sample


def test_config_validation():
    with pytest.raises(ValueError, match="rank_end"):
        MiningConfig(rank_start=10, rank_end=10)
    assert MiningConfig().search_depth == 100
    assert MiningConfig(filter_topk=200).search_depth == 200
