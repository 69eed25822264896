"""Contrastive losses, sentence-transformers style: each computes from embeddings; wrappers compose."""

from training.losses.infonce import InfoNCELoss, gather_with_grad

__all__ = ["InfoNCELoss", "gather_with_grad"]
