"""Pooling of token states into one L2-normalised vector per sequence."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last non-pad token; works for right padding (the tokenizer here pads on the right)."""
    lengths = mask.sum(dim=1).long() - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), lengths.clamp(min=0)]


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return hidden[:, 0]


POOLERS = {"mean": mean_pool, "last": last_token_pool, "cls": cls_pool}


def pool(hidden: torch.Tensor, mask: torch.Tensor, method: str, normalize: bool = True) -> torch.Tensor:
    pooled = POOLERS[method](hidden, mask)
    return F.normalize(pooled.float(), dim=-1) if normalize else pooled
