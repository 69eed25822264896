"""Encoding texts with a checkpoint for mining: token-budget batches, half precision on GPU, an on-disk cache.

Why not ``EmbeddingModel.encode``: mining encodes whole corpora, so batches are formed by a *token* budget over
length-sorted texts (short texts in big batches, long ones in small batches, little padding), and the model is
loaded only when something actually has to be encoded. Any sentence-transformers folder works (KaLM checkpoints
via ``kalm_model.json``, and reference models such as MiniLM via their ``1_Pooling`` config).

Why the cache key is what it is: embeddings depend only on the model bytes, the text bytes, the pooling, the
truncation length and the compute dtype, never on mining parameters, so re-mining with other ranks or filters
reads the ``.npy`` back instead of re-encoding.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kalm.hashing import hash_directory, hash_value

_ST_MODES = {"lasttoken": "last", "mean": "mean", "cls": "cls"}


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


def read_pooling(model_path: Path) -> tuple[str, int]:
    """(pooling, max_length) of a checkpoint folder, from its own config files (no model load)."""
    model_path = Path(model_path)
    kalm = model_path / "kalm_model.json"
    if kalm.exists():
        spec = json.loads(kalm.read_text())
        return spec.get("pooling", "mean"), int(spec.get("max_length", 512))
    pooling, max_length = "mean", 512
    pool_cfg = model_path / "1_Pooling" / "config.json"
    if pool_cfg.exists():
        spec = json.loads(pool_cfg.read_text())
        if "pooling_mode" in spec:
            pooling = _ST_MODES.get(spec["pooling_mode"], spec["pooling_mode"])
        elif spec.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif spec.get("pooling_mode_lasttoken"):
            pooling = "last"
    st_cfg = model_path / "sentence_bert_config.json"
    if st_cfg.exists():
        max_length = int(json.loads(st_cfg.read_text()).get("max_seq_length") or max_length)
    if pooling not in _ST_MODES.values():
        raise ValueError(f"{model_path}: unsupported pooling {pooling!r} for mining")
    return pooling, max_length


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
        return out


def _half_dtype() -> str:
    import torch

    return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"


class EmbeddingCache:
    """``<root>/<key>.npy`` plus ``<key>.json`` (the key's parts), written atomically, optionally size-capped.

    Why LRU by mtime: a hit touches the entry's ``.npy`` (``os.utime``), so the file times say when each
    entry was last written or read without an index file that concurrent runs would have to lock; ``atime``
    is not used as filesystems often do not keep it (``noatime``/``relatime``). Eviction runs after a save
    and never removes the entry just written, even if it alone is over ``max_bytes``: the caller is about to
    use it, and a cache that cannot hold one corpus should still serve that run.
    """

    def __init__(self, root: Path | str, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    @staticmethod
    def name(key: dict[str, Any]) -> str:
        return hash_value(key)[:40]

    def load(self, key: dict[str, Any]) -> np.ndarray | None:
        path = self.root / f"{self.name(key)}.npy"
        if not path.exists():
            return None
        array = np.load(path, mmap_mode="r")
        _touch(path)
        return array

    def save(self, key: dict[str, Any], array: np.ndarray) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        stem = self.name(key)
        tmp = self.root / f".{stem}.{os.getpid()}.tmp.npy"
        np.save(tmp, np.ascontiguousarray(array, dtype=np.float32))
        tmp.replace(self.root / f"{stem}.npy")
        meta = key | {"rows": int(array.shape[0]), "dim": int(array.shape[1]) if array.ndim == 2 else 0}
        (self.root / f"{stem}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if self.max_bytes is not None:
            self.evict(self.max_bytes, keep=stem)

    def entries(self) -> list[tuple[float, str, int]]:
        """(last use, stem, bytes of ``.npy`` + ``.json``) of every complete entry, least recent first."""
        found = []
        for npy in self.root.glob("*.npy"):
            if npy.name.startswith("."):  # another process's write in flight
                continue
            try:
                stat = npy.stat()
            except FileNotFoundError:  # evicted by a concurrent run
                continue
            found.append((stat.st_mtime, npy.stem, stat.st_size + _size(npy.with_suffix(".json"))))
        return sorted(found)

    def evict(self, max_bytes: int, keep: str | None = None) -> list[str]:
        """Remove least recently used entries (never ``keep``) until the cache holds <= ``max_bytes``."""
        entries = self.entries()
        total = sum(size for _, _, size in entries)
        evicted = []
        for _, stem, size in entries:
            if total <= max_bytes:
                break
            if stem == keep:
                continue
            for suffix in (".npy", ".json"):
                (self.root / f"{stem}{suffix}").unlink(missing_ok=True)
            total -= size
            evicted.append(stem)
        return evicted


def _touch(path: Path) -> None:
    """Mark a cache entry as just used; a concurrent eviction may have removed it, which is harmless."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)


def _size(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError):
        return path.stat().st_size
    return 0


def encode_cached(
    texts: Sequence[str], encoder: TextEncoder, cache: EmbeddingCache | None = None
) -> tuple[np.ndarray, bool]:
    """Embeddings of ``texts`` and whether they came from the cache (then nothing is loaded or encoded)."""
    key = encoder.cache_key(texts_hash(texts))
    if cache is not None:
        hit = cache.load(key)
        if hit is not None:
            return hit, True
    if encoder.config.num_shards > 1 and len(texts) > 1:
        from kalm.mining.sharded import encode_sharded

        vectors = encode_sharded(texts, encoder.model_path, encoder.config.num_shards, encoder.config)
    else:
        vectors = encoder.encode(texts)
    if cache is not None:
        cache.save(key, vectors)
    return vectors, False
