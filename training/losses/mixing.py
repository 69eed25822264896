"""Online hard-negative mixing (KaLM-V2): extra synthetic negatives interpolated from a query's own hard negatives.

For query ``i`` with mined hard negatives ``n_1..n_M`` (already L2-normalised embeddings), ``K`` synthetic
negatives are made in embedding space as ``h = normalize(λ · n_j + (1 − λ) · n_k)`` with ``λ ~ Beta(2, 2)``
and ``j ≠ k``. They are appended to query ``i``'s denominator only (see :class:`~training.losses.InfoNCELoss`,
argument ``mixer``); other queries never see them.

Random draws, in this exact order, from the mixer's own CPU ``torch.Generator`` (so a seed fixes every vector,
whatever the device):

1. ``pair_choice="random"`` only: ``first = randint(M, (B, K))``, then ``second = randint(M - 1, (B, K))``,
   and ``second += second >= first`` (so ``second ≠ first``, uniform over the others).
2. ``u = rand(B, K, 3)`` and ``λ = median(u, dim=-1)``: the middle of three uniforms is exactly Beta(2, 2)
   (the 2nd order statistic of 3 uniforms is Beta(2, 3 + 1 − 2)).

``pair_choice="hardest"`` draws no pairs: the query's negatives are ranked by similarity to the query
(highest first, detached, ties by position) and the pairs are taken hardest-first, ordered by the worse rank
and then the better one: (1,2), (1,3), (2,3), (1,4), (2,4), (3,4), … ; when ``K`` exceeds the ``M(M−1)/2``
pairs the list repeats (with new ``λ``).

References: Zhao et al. 2025, KaLM-Embedding-V2 (online hard-negative mixing, Beta(2, 2));
Kalantidis et al. 2020, "Hard Negative Mixing for Contrastive Learning" (MoCHi: detached synthetic negatives).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

PairChoice = Literal["hardest", "random"]


def hardest_pair_order(m: int) -> list[tuple[int, int]]:
    """All ``(better, worse)`` rank pairs of ``m`` negatives, hardest first: sorted by worse rank, then better."""
    return [(a, b) for b in range(1, m) for a in range(b)]


class HardNegativeMixer(nn.Module):
    """Synthesise ``k`` extra negatives per query from that query's own hard negatives.

    Args:
        k: synthetic negatives per query (KaLM-V2 does not publish it; the 12B sibling mixes 2).
        pair_choice: ``"hardest"`` (pairs of the highest-scoring negatives first) or ``"random"`` pairs.
        detach: build them from detached negatives (MoCHi-style, default): no gradient flows back into the
            mined negatives through the synthetic ones; the query still gets gradient from ``q · h``.
        seed: seed of the mixer's generator; call :meth:`manual_seed` to re-seed (e.g. per step, which makes a
            resumed run draw the same vectors as an uninterrupted one).

    Inputs:
        ``queries`` [B, d] and ``negatives`` [B, M, d] (each query's own hard negatives, M ≥ 2, L2-normalised).
        Returns [B, k, d] L2-normalised synthetic negatives.
    """

    def __init__(self, k: int = 2, pair_choice: PairChoice = "hardest", detach: bool = True, seed: int = 0):
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if pair_choice not in ("hardest", "random"):
            raise ValueError(f"pair_choice must be 'hardest' or 'random', got {pair_choice!r}")
        self.k = k
        self.pair_choice = pair_choice
        self.detach = detach
        self.generator = torch.Generator().manual_seed(seed)

    def manual_seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def pairs(self, queries: torch.Tensor, negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices ``(first, second)`` [B, k] into each query's negatives (draws from the generator if random)."""
        batch, m = negatives.shape[:2]
        if m < 2:
            raise ValueError(f"hard-negative mixing needs at least 2 hard negatives per query, got {m}")
        if self.pair_choice == "random":
            first = torch.randint(m, (batch, self.k), generator=self.generator)
            second = torch.randint(m - 1, (batch, self.k), generator=self.generator)
            second = second + (second >= first).long()
            return first.to(negatives.device), second.to(negatives.device)
        order = hardest_pair_order(m)
        chosen = torch.tensor([order[i % len(order)] for i in range(self.k)], device=negatives.device)
        scores = torch.einsum("bd,bmd->bm", queries.detach().float(), negatives.detach().float())
        ranked = torch.sort(scores, dim=1, descending=True, stable=True).indices  # [B, M] hardest first
        return ranked[:, chosen[:, 0]], ranked[:, chosen[:, 1]]

    def forward(self, queries: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        first, second = self.pairs(queries, negatives)
        lam = torch.rand(first.shape[0], self.k, 3, generator=self.generator).median(dim=-1).values
        lam = lam.to(device=negatives.device, dtype=negatives.dtype).unsqueeze(-1)
        source = negatives.detach() if self.detach else negatives
        rows = torch.arange(source.shape[0], device=source.device)[:, None]
        mixed = lam * source[rows, first] + (1.0 - lam) * source[rows, second]
        return F.normalize(mixed, dim=-1)

    def extra_repr(self) -> str:
        return f"k={self.k}, pair_choice={self.pair_choice!r}, detach={self.detach}"
