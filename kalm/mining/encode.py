"""Encoding texts with a checkpoint for mining: token-budget batches, half precision on GPU, an on-disk cache.

Why not ``EmbeddingModel.encode``: mining encodes whole corpora, so batches are formed by a *token* budget over
length-sorted texts (short texts in big batches, long ones in small batches, little padding), and the model is
loaded only when something actually has to be encoded. Any sentence-transformers folder works (KaLM checkpoints
via ``kalm_model.json``, and reference models such as MiniLM via their ``1_Pooling`` config).

Why the cache key (:meth:`TextEncoder.cache_key`) is what it is: embeddings depend only on the model bytes, the
text bytes, the pooling, the truncation length and the compute dtype, never on mining parameters, so re-mining
with other ranks or filters reads the ``.npy`` back (:mod:`kalm.mining.cache`) instead of re-encoding.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kalm.hashing import hash_directory
from kalm.progress import ProgressLog
from training.st_folder import read_pooling

logger = logging.getLogger(__name__)


class EncodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token_budget: int = Field(16_384, gt=0, description="padded tokens per batch (batch size x longest)")
    max_batch: int = Field(512, gt=0, description="texts per batch at most, whatever their length")
    max_length: int | None = Field(None, gt=0, description="truncation length; None = the checkpoint's")
    device: str | None = Field(None, description="torch device; None = cuda when available, else cpu")
    num_shards: int = Field(1, ge=1, description=">1 encodes over that many Ray tasks")
    cache_max_bytes: int | None = Field(
        None,
        gt=0,
        description="embedding cache size cap: least recently used entries are evicted after a save; "
        "None = unlimited (not part of the output's config hash)",
    )


def texts_hash(texts: Sequence[str]) -> str:
    """Content hash of an ordered list of texts (length-prefixed, so no two lists collide by concatenation)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TextEncoder:
    """Encodes texts with one checkpoint; the model is loaded lazily on the first ``encode`` call."""

    def __init__(
        self, model_path: Path | str, config: EncodeConfig | None = None, fingerprint: str | None = None
    ):
        self.model_path = Path(model_path)
        self.config = config or EncodeConfig()
        self.pooling, native_length = read_pooling(self.model_path)
        self.max_length = self.config.max_length or native_length
        self.device = self.config.device or default_device()
        self.dtype = "float32" if self.device == "cpu" else _half_dtype()
        self._fingerprint = fingerprint
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def fingerprint(self) -> str:
        """Content hash of the checkpoint folder (computed once, or given by the caller)."""
        if self._fingerprint is None:
            self._fingerprint = hash_directory(self.model_path)
        return self._fingerprint

    def cache_key(self, corpus_hash: str) -> dict[str, Any]:
        return {
            "model": self.fingerprint,
            "corpus": corpus_hash,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "dtype": self.dtype,
        }

    def _load(self) -> None:
        import torch
        from transformers import AutoTokenizer

        from training.backbone import load_backbone
        from training.config import ModelConfig

        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        spec = ModelConfig(pooling=self.pooling, max_length=self.max_length, attn_implementation="sdpa")
        model = load_backbone(str(self.model_path), spec)
        self._model = model.to(device=self.device, dtype=getattr(torch, self.dtype)).eval()

    def batches(self, texts: Sequence[str], window: int = 8192) -> list[list[int]]:
        """Index batches: texts sorted by length (longest first), cut so batch x longest <= token budget."""
        order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        out: list[list[int]] = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            ids = self._tokenizer([texts[i] for i in chunk], truncation=True, max_length=self.max_length)
            lengths = [len(x) for x in ids["input_ids"]]
            ranked = sorted(range(len(chunk)), key=lambda j: (-lengths[j], chunk[j]))
            batch: list[int] = []
            longest = 0
            for j in ranked:
                longest_if = max(longest, lengths[j])
                if batch and (
                    longest_if * (len(batch) + 1) > self.config.token_budget
                    or len(batch) >= self.config.max_batch
                ):
                    out.append(batch)
                    batch, longest_if = [], lengths[j]
                batch.append(chunk[j])
                longest = longest_if
            if batch:
                out.append(batch)
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings of ``texts``, in input order."""
        import torch

        from training.pooling import pool

        if self._model is None:
            self._load()
        dim = self._model.config.hidden_size
        out = np.zeros((len(texts), dim), dtype=np.float32)
        progress = ProgressLog(logger, f"encode with {self.model_path.name}", len(texts), "texts")
        done = 0
        with torch.inference_mode():
            for batch in self.batches(texts):
                enc = self._tokenizer(
                    [texts[i] for i in batch],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                    return_token_type_ids=False,
                ).to(self.device)
                hidden = self._model(**enc).last_hidden_state
                out[batch] = pool(hidden, enc["attention_mask"], self.pooling).float().cpu().numpy()
                done += len(batch)
                progress.update(done)
        progress.finish(done)
        return out


def _half_dtype() -> str:
    import torch

    return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"
