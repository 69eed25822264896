"""Matryoshka representation learning as a wrapper around any embedding loss.

The model embeds once; for each dimension ``m`` the wrapped loss sees the first ``m`` coordinates of every
embedding, L2-renormalised, and the weighted losses are summed: ``L = Σ_m w_m · loss(q[:, :m], d[:, :m])``.
Extra arguments (e.g. ``labels``) are passed through to the wrapped loss unchanged.

References: Kusupati et al. 2022, "Matryoshka Representation Learning"; KaLM public script
(``--matryoshka_dims 896 512 256 128 64 --matryoshka_weights 1 0.3 0.2 0.1 0.1``); sentence-transformers
``MatryoshkaLoss``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PAPER_DIMS = (896, 512, 256, 128, 64)
PAPER_WEIGHTS = (1.0, 0.3, 0.2, 0.1, 0.1)


class MatryoshkaLoss(nn.Module):
    """Args:
        loss: the wrapped loss; it must offer ``compute_loss_from_embeddings(queries, documents, ...)``.
        dims: embedding sizes to train (each ≤ the model's width), e.g. KaLM's 896/512/256/128/64.
        weights: one weight per dimension (KaLM: 1/0.3/0.2/0.1/0.1); defaults to all ones.

    References:
        Kusupati et al. 2022; Zhao et al. 2025 (KaLM-Embedding-V2 trains with MRL).

    Inputs:
        Whatever the wrapped loss takes: ``queries`` [B, d], ``documents`` [N, d] (full-width embeddings),
        then any further arguments, passed through.
    """

    def __init__(self, loss: nn.Module, dims: Sequence[int], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        weights = [1.0] * len(dims) if weights is None else list(weights)
        if not dims or len(dims) != len(weights):
            raise ValueError(f"need one weight per dimension, got dims={list(dims)} weights={weights}")
        if any(d <= 0 for d in dims):
            raise ValueError(f"dims must be positive, got {list(dims)}")
        self.loss = loss
        self.dims = list(dims)
        self.weights = weights

    def forward(self, queries: torch.Tensor, documents: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.compute_loss_from_embeddings(queries, documents, *args, **kwargs)

    def compute_loss_from_embeddings(
        self, queries: torch.Tensor, documents: torch.Tensor, *args, **kwargs
    ) -> torch.Tensor:
        width = queries.shape[-1]
        if max(self.dims) > width:
            raise ValueError(f"matryoshka dims {self.dims} exceed the embedding width {width}")
        total = queries.new_zeros((), dtype=torch.float32)
        for dim, weight in zip(self.dims, self.weights, strict=True):
            q = F.normalize(queries[..., :dim], dim=-1)
            d = F.normalize(documents[..., :dim], dim=-1)
            total = total + weight * self.loss.compute_loss_from_embeddings(q, d, *args, **kwargs)
        return total

    def extra_repr(self) -> str:
        return f"dims={self.dims}, weights={self.weights}"
