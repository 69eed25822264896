"""InfoNCE over in-batch and hard negatives, optionally across devices, with focal-style reweighting.

Inputs: ``queries`` [B, d] and ``documents`` [B * G, d] laid out in groups of ``G = 1 + hard_negatives``
per query (the positive first). Every query is scored against every document of the (global) batch, so its
denominator holds its own hard negatives, the other queries' positives and their hard negatives.

Focal reweighting (KaLM-V2): with p_i the softmax probability of the positive, the per-query loss
``-log p_i`` is weighted by ``(1 - p_i) ** gamma`` (weight detached), so easy pairs contribute less;
``gamma = 0`` is plain InfoNCE.

References: van den Oord et al. 2018 (InfoNCE); Lin et al. 2017 (focal loss); Zhao et al. 2025 (KaLM-V2).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank; gradients flow back to the rank that produced each slice."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor), dim=0)


class InfoNCELoss(nn.Module):
    """Args:
    temperature: softmax temperature τ (KaLM public script: 0.01–0.02).
    group_size: documents per query (1 positive + hard negatives).
    focal_gamma: γ of the focal weight (1 - p)^γ; 0 disables reweighting.
    cross_device: gather documents (and their gradients) from all ranks as extra negatives.
    """

    def __init__(
        self,
        temperature: float = 0.02,
        group_size: int = 1,
        focal_gamma: float = 0.0,
        cross_device: bool = True,
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.group_size = group_size
        self.focal_gamma = focal_gamma
        self.cross_device = cross_device

    def forward(self, queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
        return self.compute_loss_from_embeddings(queries, documents)

    def compute_loss_from_embeddings(self, queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
        if documents.shape[0] != queries.shape[0] * self.group_size:
            raise ValueError(
                f"expected {queries.shape[0] * self.group_size} documents, got {documents.shape[0]}"
            )
        offset = 0
        if self.cross_device and dist.is_available() and dist.is_initialized():
            offset = dist.get_rank() * queries.shape[0]
            documents = gather_with_grad(documents)
        scores = queries.float() @ documents.float().T / self.temperature
        targets = (torch.arange(queries.shape[0], device=queries.device) + offset) * self.group_size
        log_probs = F.log_softmax(scores, dim=-1)
        nll = -log_probs.gather(1, targets[:, None]).squeeze(1)
        if self.focal_gamma == 0:
            return nll.mean()
        weights = (1.0 - torch.exp(-nll.detach())).pow(self.focal_gamma)
        return (weights * nll).mean()
