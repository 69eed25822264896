"""Contrastive losses, sentence-transformers style: each computes from embeddings; wrappers compose.

``MatryoshkaLoss(InfoNCELoss(..., mixer=HardNegativeMixer(...)), dims, weights)`` is the KaLM-V2 fine-tuning
loss: focal-reweighted InfoNCE with mixed hard negatives and same-label masking, at every MRL dimension.
"""

from training.losses.infonce import InfoNCELoss, gather_no_grad, gather_with_grad, same_label_mask
from training.losses.labels import NO_LABEL, encode_labels, label_id
from training.losses.matryoshka import PAPER_DIMS, PAPER_WEIGHTS, MatryoshkaLoss
from training.losses.mixing import HardNegativeMixer, hardest_pair_order

__all__ = [
    "NO_LABEL",
    "PAPER_DIMS",
    "PAPER_WEIGHTS",
    "HardNegativeMixer",
    "InfoNCELoss",
    "MatryoshkaLoss",
    "encode_labels",
    "gather_no_grad",
    "gather_with_grad",
    "hardest_pair_order",
    "label_id",
    "same_label_mask",
]
