"""Ray-sharded encoding returns what single-process encoding returns, in input order."""

from __future__ import annotations

import numpy as np
import pytest

from kalm.mining.encode import EncodeConfig, TextEncoder
from kalm.mining.sharded import shard_bounds
from tests.mining.conftest import doc


def test_shard_bounds_cover_in_order():
    assert shard_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert shard_bounds(2, 5) == [(0, 1), (1, 2)]
    assert shard_bounds(0, 3) == [(0, 0)]


@pytest.mark.slow
def test_ray_sharded_encode_equals_single_process(tiny_checkpoint):
    from kalm.mining.sharded import encode_sharded

    texts = [doc(i) * (1 + i % 3) for i in range(37)]
    config = EncodeConfig(token_budget=128)
    expected = TextEncoder(tiny_checkpoint, config).encode(texts)
    actual = encode_sharded(texts, tiny_checkpoint, num_shards=3, config=config)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
