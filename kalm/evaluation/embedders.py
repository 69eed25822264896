"""Concrete `TextEmbedder`s.

Only sentence-transformers folders for now: every checkpoint the pipeline saves, and the reference models used
in tests, are in that layout. Loading is pinned to CPU so evaluation never competes with training for a GPU
unless a caller builds its own embedder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kalm.evaluation.protocol import l2_normalise
from kalm.hashing import hash_directory


class SentenceTransformerEmbedder:
    """A `TextEmbedder` over a local sentence-transformers folder.

    The revision is the content hash of the folder (not its path), so a copied or re-downloaded checkpoint keeps
    its identity and a retrained one in the same place gets a new one.
    """

    def __init__(self, path: Path | str, *, name: str | None = None, device: str | None = None) -> None:
        """``device`` None: CUDA when available, else CPU (the same default as mining's encoder)."""
        from sentence_transformers import SentenceTransformer

        self.path = Path(path)
        if not self.path.is_dir():
            raise ValueError(f"SentenceTransformerEmbedder: model folder {self.path} does not exist")
        self.name: str = name or self.path.name
        self.revision: str = hash_directory(self.path)
        from kalm.mining.encode import default_device

        self.model = SentenceTransformer(str(self.path), device=device or default_device())

    @property
    def max_length(self) -> int | None:
        """Truncation length in tokens; part of the corpus cache key and passed to Ray-sharded encoding."""
        value = self.model.max_seq_length
        return int(value) if value else None

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Encode `texts` in the given order; rows are L2-normalised float32."""
        if len(texts) == 0:
            dim = self.model.get_embedding_dimension() or 0
            return np.zeros((0, dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        # normalise again in float32: the model may have emitted another dtype or skipped its Normalize module
        return l2_normalise(vectors)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r}, revision={self.revision[:12]!r})"
