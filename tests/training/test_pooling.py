"""Pooling against python-loop references: pads ignored, last real token picked, L2-normalised output."""

from __future__ import annotations

import math

import pytest
import torch

from training.pooling import cls_pool, last_token_pool, mean_pool, pool


def _batch(lengths: list[int], width: int, dim: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(len(lengths), width, dim, generator=generator, dtype=torch.float64) * 3
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return hidden, mask


def _ref_mean(hidden, mask):
    rows = []
    for b in range(hidden.shape[0]):
        total = [0.0] * hidden.shape[2]
        count = 0
        for t in range(hidden.shape[1]):
            if mask[b, t]:
                count += 1
                for k in range(hidden.shape[2]):
                    total[k] += float(hidden[b, t, k])
        rows.append([v / count for v in total])
    return torch.tensor(rows, dtype=torch.float64)


def _ref_last(hidden, mask):
    rows = []
    for b in range(hidden.shape[0]):
        last = max(t for t in range(hidden.shape[1]) if mask[b, t])
        rows.append(hidden[b, last].tolist())
    return torch.tensor(rows, dtype=torch.float64)


def _ref_normalize(rows):
    out = []
    for row in rows.tolist():
        norm = math.sqrt(sum(v * v for v in row))
        out.append([v / norm for v in row])
    return torch.tensor(out, dtype=torch.float64)


LENGTHS = [5, 1, 3, 7]


def test_mean_pool_ignores_pads():
    hidden, mask = _batch(LENGTHS, 7)
    torch.testing.assert_close(mean_pool(hidden, mask), _ref_mean(hidden, mask))
    # Garbage in the padded slots changes nothing.
    noisy = hidden.clone()
    noisy[mask == 0] = 1e6
    torch.testing.assert_close(mean_pool(noisy, mask), _ref_mean(hidden, mask))


def test_last_token_pool_picks_last_non_pad():
    hidden, mask = _batch(LENGTHS, 7)
    torch.testing.assert_close(last_token_pool(hidden, mask), _ref_last(hidden, mask))
    assert torch.equal(last_token_pool(hidden, mask)[1], hidden[1, 0])
    assert torch.equal(last_token_pool(hidden, mask)[3], hidden[3, 6])


def test_cls_pool_is_first_token():
    hidden, mask = _batch(LENGTHS, 7)
    assert torch.equal(cls_pool(hidden, mask), hidden[:, 0])


@pytest.mark.parametrize(("method", "reference"), [("mean", _ref_mean), ("last", _ref_last)])
def test_pool_normalises(method, reference):
    hidden, mask = _batch(LENGTHS, 7, seed=1)
    out = pool(hidden, mask, method)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(len(LENGTHS)), rtol=0, atol=1e-6)
    torch.testing.assert_close(out.double(), _ref_normalize(reference(hidden, mask)), rtol=0, atol=1e-6)
    raw = pool(hidden, mask, method, normalize=False)
    torch.testing.assert_close(raw, reference(hidden, mask))


def test_pool_bfloat16_is_normalised_in_float32():
    hidden, mask = _batch(LENGTHS, 7, seed=2)
    out = pool(hidden.bfloat16(), mask, "mean")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(len(LENGTHS)), rtol=0, atol=1e-6)
