"""Exact maximum-inner-product top-k by blocked matrix products, with a bounded memory footprint.

Why blocked: the full query x candidate score matrix of a mining run (10^5 queries x 10^6 candidates) does not
fit in memory, and an approximate index would change which negatives sit at ranks 50-100. Queries are taken
``query_block`` at a time; for each block the candidates stream through in ``candidate_block`` slices and only
a running top-k per query is kept, so peak memory is ``query_block x (k + candidate_block)`` scores plus one
slice of candidates. Candidates may be a NumPy memmap (the embedding cache), read one slice at a time.

Ties are broken towards the lower candidate index, so the result is the same for any block sizes.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_tensor(array: np.ndarray | torch.Tensor, device: str) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.to(device=device, dtype=torch.float32)
    block = np.ascontiguousarray(array, dtype=np.float32)
    if not block.flags.writeable:  # a memmap slice: copy this block only
        block = block.copy()
    return torch.from_numpy(block).to(device=device)


def _order(scores: torch.Tensor, index: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` of each row by (score desc, index asc): a stable sort on index, then on score."""
    by_index = torch.argsort(index, dim=1, stable=True)
    scores, index = scores.gather(1, by_index), index.gather(1, by_index)
    by_score = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
    return scores.gather(1, by_score), index.gather(1, by_score)


def _top(scores: torch.Tensor, index: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` per row by (score desc, index asc).

    A plain ``topk`` of ``k + 1`` decides every row whose top values are all distinct (the k-th then also
    beats the rest strictly); only rows with an exact tie among them, rare with float scores, pay for the
    stable two-key sort of the whole row.
    """
    m = min(k + 1, scores.shape[1])
    values, pick = scores.topk(m, dim=1)
    kept = index.gather(1, pick)
    tied = (values[:, 1:] == values[:, :-1]).any(1).nonzero().squeeze(1)
    if len(tied):
        values[tied], kept[tied] = _order(scores[tied], index[tied], m)
    return values[:, :k], kept[:, :k]


def blocked_topk(
    queries: np.ndarray | torch.Tensor,
    candidates: np.ndarray | torch.Tensor,
    k: int,
    *,
    query_block: int = 1024,
    candidate_block: int = 16_384,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, indices) of the ``k`` best candidates per query, best first; shapes ``(n_queries, k')``
    with ``k' = min(k, n_candidates)``."""
    n_queries, n_cands = len(queries), len(candidates)
    k = min(k, n_cands)
    out_scores = np.zeros((n_queries, k), dtype=np.float32)
    out_index = np.zeros((n_queries, k), dtype=np.int64)
    if k == 0 or n_queries == 0:
        return out_scores, out_index
    for q0 in range(0, n_queries, query_block):
        q = _as_tensor(queries[q0 : q0 + query_block], device)
        best_s = torch.empty((len(q), 0), device=device)
        best_i = torch.empty((len(q), 0), dtype=torch.long, device=device)
        for c0 in range(0, n_cands, candidate_block):
            c = _as_tensor(candidates[c0 : c0 + candidate_block], device)
            scores = q @ c.T
            index = torch.arange(c0, c0 + len(c), device=device).expand(len(q), -1)
            scores, index = _top(scores, index, k)  # index stays an un-materialised view until here
            best_s, best_i = _top(torch.cat([best_s, scores], 1), torch.cat([best_i, index], 1), k)
        out_scores[q0 : q0 + len(q)] = best_s.cpu().numpy()
        out_index[q0 : q0 + len(q)] = best_i.cpu().numpy()
    return out_scores, out_index


def full_topk(
    queries: np.ndarray | torch.Tensor, candidates: np.ndarray | torch.Tensor, k: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """The naive baseline: materialise every score, then ``topk`` (what blocked search must equal)."""
    scores = _as_tensor(queries, device) @ _as_tensor(candidates, device).T
    values, index = scores.topk(min(k, scores.shape[1]), dim=1)
    return values.cpu().numpy(), index.cpu().numpy()


def faiss_topk(queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product search with FAISS (``IndexFlatIP``) when it is installed; optional backend."""
    try:
        import faiss
    except ImportError as missing:
        raise RuntimeError("search backend 'faiss' needs the faiss-cpu or faiss-gpu package") from missing
    index = faiss.IndexFlatIP(candidates.shape[1])
    index.add(np.ascontiguousarray(candidates, dtype=np.float32))
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(candidates)))
    return scores, ids.astype(np.int64)
