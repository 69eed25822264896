"""InfoNCE over in-batch and hard negatives, optionally across devices, with focal-style reweighting,
same-label masking and online hard-negative mixing.

Per query ``i`` (KaLM-V2 Eq. 3, τ the temperature, s the dot product of L2-normalised embeddings)::

    p_i = exp(s(q_i, d_i⁺)/τ) / Z_i
    Z_i = Σ_{documents j of the (global) batch, not masked} exp(s(q_i, d_j)/τ) + Σ_k exp(s(q_i, h_{i,k})/τ)
    L   = mean_i  −w_i · log p_i,   w_i = (1 − p_i)^γ  (detached; γ = 0 gives w_i = 1, plain InfoNCE)

The documents are every query's positive **and** hard negatives, gathered from all ranks; ``h_{i,k}`` are the
synthetic negatives a :class:`~training.losses.mixing.HardNegativeMixer` makes from query ``i``'s own hard
negatives (its denominator only). Same-label masking drops from ``Z_i`` the positives of the *other* queries
that share query ``i``'s (non-null) label: for classification/clustering rows the positive is an exemplar of
the query's class, so another same-class query's positive is a false negative. Their hard negatives stay: they
are examples of other classes than that query's, i.e. of other classes than query ``i``'s too. A query's own
positive is never masked.

References: van den Oord et al. 2018 (InfoNCE); Lin et al. 2017 (focal loss); Zhao et al. 2025 (KaLM-V2:
focal reweighting, hard-negative mixing, exemplar labels for classification/clustering).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from training.losses.labels import NO_LABEL
from training.losses.mixing import HardNegativeMixer


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank; gradients flow back to the rank that produced each slice."""
    if not _distributed():
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor), dim=0)


def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (same shape on every rank) from every rank, without autograd (e.g. label ids)."""
    if not _distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def same_label_mask(
    labels: torch.Tensor, all_labels: torch.Tensor, offset: int, group_size: int, num_documents: int
) -> torch.Tensor:
    """[B, num_documents] boolean mask: True where query ``i``'s denominator must drop document ``j``.

    ``labels`` [B] are this rank's query labels, ``all_labels`` [B_global] every rank's (in document order),
    ``offset`` the global index of this rank's first query.
    """
    own = torch.arange(labels.shape[0], device=labels.device) + offset
    same = (labels[:, None] == all_labels[None, :]) & (labels[:, None] != NO_LABEL)
    same[torch.arange(labels.shape[0], device=labels.device), own] = False  # never the own positive
    mask = torch.zeros(labels.shape[0], num_documents, dtype=torch.bool, device=labels.device)
    mask[:, ::group_size] = same
    return mask


class InfoNCELoss(nn.Module):
    """InfoNCE with in-batch + hard negatives (+ cross-device, focal, same-label masking, mixing).

    Args:
        temperature: softmax temperature τ (KaLM public script: 0.01–0.02).
        group_size: documents per query (1 positive + hard negatives; KaLM fine-tuning: 8).
        focal_gamma: γ of the focal weight (1 − p)^γ; 0 disables reweighting (exactly plain InfoNCE).
        cross_device: gather documents (and their gradients) from all ranks as extra negatives.
        mixer: optional :class:`HardNegativeMixer`; its synthetic negatives join each query's denominator.
            Needs ``group_size >= 3`` (at least two hard negatives to mix).

    References:
        van den Oord et al. 2018; Lin et al. 2017; Zhao et al. 2025 (KaLM-Embedding-V2).

    Inputs:
        ``queries`` [B, d] and ``documents`` [B * G, d] laid out in groups of ``G = group_size`` per query
        (the positive first, then its hard negatives), both L2-normalised; optional ``labels`` [B] int64 label
        ids (:func:`training.losses.labels.encode_labels`, ``NO_LABEL`` for unlabeled queries).
    """

    def __init__(
        self,
        temperature: float = 0.02,
        group_size: int = 1,
        focal_gamma: float = 0.0,
        cross_device: bool = True,
        mixer: HardNegativeMixer | None = None,
    ) -> None:
        super().__init__()
        if mixer is not None and group_size < 3:
            raise ValueError(
                f"hard-negative mixing needs group_size >= 3 (2+ hard negatives), got {group_size}"
            )
        self.temperature = temperature
        self.group_size = group_size
        self.focal_gamma = focal_gamma
        self.cross_device = cross_device
        self.mixer = mixer

    def forward(
        self, queries: torch.Tensor, documents: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.compute_loss_from_embeddings(queries, documents, labels)

    def compute_loss_from_embeddings(
        self, queries: torch.Tensor, documents: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        batch = queries.shape[0]
        if documents.shape[0] != batch * self.group_size:
            raise ValueError(f"expected {batch * self.group_size} documents, got {documents.shape[0]}")
        if labels is not None and labels.shape != (batch,):
            raise ValueError(f"expected labels of shape ({batch},), got {tuple(labels.shape)}")
        local_documents = documents
        gathered = self.cross_device and _distributed()
        offset = dist.get_rank() * batch if gathered else 0
        if gathered:
            documents = gather_with_grad(documents)
        scores = queries.float() @ documents.float().T / self.temperature
        if labels is not None:
            all_labels = gather_no_grad(labels) if gathered else labels
            mask = same_label_mask(labels, all_labels, offset, self.group_size, documents.shape[0])
            scores = scores.masked_fill(mask, float("-inf"))
        if self.mixer is not None:
            negatives = local_documents.reshape(batch, self.group_size, -1)[:, 1:]
            synthetic = self.mixer(queries, negatives)
            extra = torch.einsum("bd,bkd->bk", queries.float(), synthetic.float()) / self.temperature
            scores = torch.cat([scores, extra], dim=1)
        targets = (torch.arange(batch, device=queries.device) + offset) * self.group_size
        log_probs = F.log_softmax(scores, dim=-1)
        nll = -log_probs.gather(1, targets[:, None]).squeeze(1)
        if self.focal_gamma == 0:
            return nll.mean()
        weights = (1.0 - torch.exp(-nll.detach())).pow(self.focal_gamma)
        return (weights * nll).mean()

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, group_size={self.group_size}, "
            f"focal_gamma={self.focal_gamma}, cross_device={self.cross_device}"
        )
