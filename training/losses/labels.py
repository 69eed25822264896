"""Label ids for same-label masking: one stable int64 per label string, identical on every rank and process.

Python's ``hash`` is salted per process (``PYTHONHASHSEED``), so ranks would disagree; a BLAKE2b digest is not.
Ids are non-negative; :data:`NO_LABEL` (−1) marks an unlabeled query (retrieval, STS, … rows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

NO_LABEL = -1


def label_id(label: str) -> int:
    """A non-negative 63-bit id of ``label`` (a collision between two labels has odds of about 2^-63)."""
    digest = hashlib.blake2b(label.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def encode_labels(labels: Sequence[str | None], device: torch.device | str | None = None) -> torch.Tensor:
    """A [B] int64 tensor of label ids, ``NO_LABEL`` where the label is None."""
    ids = [NO_LABEL if label is None else label_id(label) for label in labels]
    return torch.tensor(ids, dtype=torch.long, device=device)
