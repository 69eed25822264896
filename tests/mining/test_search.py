"""Blocked exact search equals the naive full-matrix ``topk`` for every block shape."""

from __future__ import annotations

import numpy as np
import pytest

from kalm.mining.search import blocked_topk, full_topk


def _unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("query_block", "candidate_block"), [(1, 7), (5, 64), (64, 1000), (3, 13)])
def test_blocked_equals_full(query_block, candidate_block):
    rng = np.random.default_rng(0)
    queries, cands = _unit(rng, 23), _unit(rng, 517)
    expected_s, expected_i = full_topk(queries, cands, 40)
    s, i = blocked_topk(queries, cands, 40, query_block=query_block, candidate_block=candidate_block)
    np.testing.assert_array_equal(i, expected_i)
    np.testing.assert_allclose(s, expected_s, rtol=0, atol=1e-6)
    assert np.all(np.diff(s, axis=1) <= 0)  # best first


def test_k_larger_than_pool_and_empty_inputs():
    rng = np.random.default_rng(1)
    queries, cands = _unit(rng, 4), _unit(rng, 6)
    s, i = blocked_topk(queries, cands, 50, candidate_block=4)
    assert s.shape == i.shape == (4, 6)
    assert sorted(i[0].tolist()) == list(range(6))
    assert blocked_topk(queries[:0], cands, 5)[1].shape == (0, 5)
    assert blocked_topk(queries, cands[:0], 5)[1].shape == (4, 0)


def test_ties_go_to_the_lower_index_whatever_the_blocks():
    # small integers: every dot product is exact in float32, so copies tie exactly in any block layout
    rng = np.random.default_rng(2)
    base = rng.integers(-3, 4, (10, 8)).astype(np.float32)
    cands = np.concatenate([base, base, base])  # every vector three times
    queries = rng.integers(-3, 4, (5, 8)).astype(np.float32)
    results = [blocked_topk(queries, cands, 8, candidate_block=b)[1] for b in (3, 7, 11, 30)]
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    scores = queries @ cands.T
    for q, row in enumerate(results[0]):  # sorted by (score desc, index asc)
        keys = [(-scores[q, c], c) for c in row]
        assert keys == sorted(keys)


def test_memmap_candidates(tmp_path):
    rng = np.random.default_rng(3)
    cands = _unit(rng, 300)
    np.save(tmp_path / "c.npy", cands)
    mapped = np.load(tmp_path / "c.npy", mmap_mode="r")
    queries = _unit(rng, 9)
    np.testing.assert_array_equal(
        blocked_topk(queries, mapped, 12, candidate_block=50)[1], full_topk(queries, cands, 12)[1]
    )


def test_faiss_backend_equals_blocked_search():
    pytest.importorskip("faiss")
    from kalm.mining.search import faiss_topk

    rng = np.random.default_rng(4)
    queries, cands = _unit(rng, 31, 32), _unit(rng, 2_000, 32)
    expected_s, expected_i = blocked_topk(queries, cands, 60, query_block=8, candidate_block=256)
    s, i = faiss_topk(queries, cands, 60)
    np.testing.assert_array_equal(i, expected_i)
    np.testing.assert_allclose(s, expected_s, rtol=0, atol=1e-5)
    _, i_small = faiss_topk(queries, cands[:10], 60)  # k above the pool: the whole pool, ranked
    assert i_small.shape == (31, 10) and set(i_small[0]) == set(range(10))
