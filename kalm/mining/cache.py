"""The on-disk embedding cache of mining (and evaluation's corpus cache), and encoding through it.

``encode_cached`` is where an encode call is served from the cache, encoded in-process, or split over Ray
tasks (:mod:`kalm.mining.sharded`), so neither the encoder nor the sharded path needs to know the other.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kalm.hashing import hash_value
from kalm.mining.encode import TextEncoder, texts_hash
from kalm.mining.sharded import encode_sharded


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
        vectors = encode_sharded(texts, encoder.model_path, encoder.config.num_shards, encoder.config)
    else:
        vectors = encoder.encode(texts)
    if cache is not None:
        cache.save(key, vectors)
    return vectors, False
