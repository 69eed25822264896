"""On-disk cache of document (corpus) embeddings for evaluation, so a model's corpora are encoded once.

Why: a retrieval or reranking corpus is by far the largest text list of an evaluation, and it is encoded again
every time the same model is scored on the same task (a forced re-evaluation, a new mteb version, a second
prompt setting that leaves documents bare, a new results store). Queries are short and change with the prompt
setting, so only the document side is cached.

Why per text list: mteb calls the encoder once per corpus chunk (50,000 documents at a time), so the cache is
keyed on exactly the list it is handed, never on mteb internals. The key holds everything the vectors depend
on (model content hash, task name and data revision, the instruction applied, truncation length, the texts
themselves, and the encode path, since Ray workers may run another precision) and nothing else: batch size
and sharding thresholds do not change the vectors. Storage is the mining stage's `EmbeddingCache`
(``<key>.npy`` plus ``<key>.json``, written atomically), under ``<state dir>/embeddings/eval``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kalm.mining.cache import EmbeddingCache
from kalm.mining.encode import texts_hash

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata

    from kalm.evaluation.protocol import TextEmbedder


def default_corpus_cache_dir() -> Path:
    """``<state dir>/embeddings/eval``; the state dir follows ``KALM_STATE_DIR``."""
    from kalm.settings import get_settings

    return get_settings().state_dir / "embeddings" / "eval"


class CorpusEmbeddingCache:
    """Document embeddings by (model, task, revision, instruction, max length, texts, encode path)."""

    def __init__(self, root: Path | str) -> None:
        self.storage = EmbeddingCache(root)
        self.hits = 0
        self.misses = 0

    @property
    def root(self) -> Path:
        return self.storage.root

    def __repr__(self) -> str:
        return f"CorpusEmbeddingCache({str(self.root)!r})"

    @staticmethod
    def key(
        embedder: TextEmbedder,
        task_metadata: TaskMetadata,
        instruction: str,
        texts: Sequence[str],
        encode_path: str,
    ) -> dict[str, Any]:
        return {
            "kind": "eval-documents",
            "model": embedder.revision,
            "task": task_metadata.name,
            "task_revision": str(task_metadata.dataset.get("revision")),
            "instruction": instruction,
            "max_length": getattr(embedder, "max_length", None),
            "texts": texts_hash(texts),
            "n_texts": len(texts),
            "encode": encode_path,
        }

    def load(self, key: dict[str, Any]) -> np.ndarray | None:
        """The cached vectors (an in-memory copy: mteb converts them to writable tensors), or None."""
        hit = self.storage.load(key)
        if hit is None or hit.shape[0] != key["n_texts"]:
            self.misses += 1
            return None
        self.hits += 1
        return np.array(hit, dtype=np.float32)

    def save(self, key: dict[str, Any], vectors: np.ndarray) -> None:
        self.storage.save(key, vectors)


def open_corpus_cache(spec: CorpusEmbeddingCache | Path | str | bool | None) -> CorpusEmbeddingCache | None:
    """`True` the default location, a path that folder, `False`/`None` no cache."""
    if isinstance(spec, CorpusEmbeddingCache):
        return spec
    if spec is True:
        return CorpusEmbeddingCache(default_corpus_cache_dir())
    if spec is False or spec is None:
        return None
    return CorpusEmbeddingCache(spec)
