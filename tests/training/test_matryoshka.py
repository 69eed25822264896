"""The Matryoshka wrapper against computing each truncated, renormalised loss by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.training.test_infonce import _close, _embeddings, _value_and_grads, reference_loss
from training.losses import PAPER_DIMS, PAPER_WEIGHTS, InfoNCELoss, MatryoshkaLoss, encode_labels

DIMS, WEIGHTS = [16, 8, 4], [1.0, 0.3, 0.2]
LABELS = ["a", None, "a", "b", None]


@pytest.mark.parametrize("gamma", [0.0, 0.5])
@pytest.mark.parametrize("group", [1, 3])
def test_matches_weighted_sum_of_truncated_losses(group, gamma):
    temperature = 0.05
    q, d = _embeddings(5, group, dim=16, seed=21)
    inner = InfoNCELoss(temperature=temperature, group_size=group, focal_gamma=gamma, cross_device=False)
    wrapped = MatryoshkaLoss(inner, DIMS, WEIGHTS)
    loss, gq, gd = _value_and_grads(lambda a, b: wrapped(a, b, encode_labels(LABELS)), q, d)

    def by_hand(a, b):
        total = 0.0
        for dim, weight in zip(DIMS, WEIGHTS, strict=True):
            qa = a[:, :dim] / a[:, :dim].norm(dim=-1, keepdim=True)
            db = b[:, :dim] / b[:, :dim].norm(dim=-1, keepdim=True)
            total = total + weight * reference_loss(qa, db, temperature, group, gamma, labels=LABELS)
        return total

    ref, ref_gq, ref_gd = _value_and_grads(by_hand, q.double(), d.double())
    scale = 1.0 / temperature
    _close(loss, ref.float(), scale)
    _close(gq, ref_gq.float(), scale)
    _close(gd, ref_gd.float(), scale)


def test_single_full_dim_is_the_inner_loss():
    q, d = _embeddings(4, 2, dim=8, seed=3)
    inner = InfoNCELoss(temperature=0.05, group_size=2, cross_device=False)
    torch.testing.assert_close(MatryoshkaLoss(inner, [8], [1.0])(q, d), inner(q, d), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(MatryoshkaLoss(inner, [8, 8 // 2])(q, d), inner(q, d) + inner(*_cut(q, d, 4)))


def _cut(q, d, dim):
    return F.normalize(q[:, :dim], dim=-1), F.normalize(d[:, :dim], dim=-1)


def test_embeds_once_and_every_dim_trains_the_encoder():
    """The encoder runs once; the gradient is the weighted sum of the per-dim gradients."""
    torch.manual_seed(0)
    encoder = torch.nn.Linear(6, 16)
    calls = []
    encoder.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(4 + 4 * 2, 6)
    inner = InfoNCELoss(temperature=0.05, group_size=2, cross_device=False)
    emb = F.normalize(encoder(x), dim=-1)
    MatryoshkaLoss(inner, DIMS, WEIGHTS)(emb[:4], emb[4:]).backward()
    assert len(calls) == 1
    total = encoder.weight.grad.clone()
    expected = torch.zeros_like(total)
    for dim, weight in zip(DIMS, WEIGHTS, strict=True):
        encoder.zero_grad()
        emb = F.normalize(encoder(x), dim=-1)
        (weight * inner(*_cut(emb[:4], emb[4:], dim))).backward()
        expected += encoder.weight.grad
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-7)


def test_paper_defaults():
    assert PAPER_DIMS == (896, 512, 256, 128, 64)
    assert PAPER_WEIGHTS == (1.0, 0.3, 0.2, 0.1, 0.1)


def test_invalid_dims():
    inner = InfoNCELoss(cross_device=False)
    q, d = _embeddings(2, 1, dim=8)
    with pytest.raises(ValueError, match="exceed the embedding width"):
        MatryoshkaLoss(inner, [16, 8])(q, d)
    with pytest.raises(ValueError, match="one weight per dimension"):
        MatryoshkaLoss(inner, [8, 4], [1.0])
    with pytest.raises(ValueError, match="positive"):
        MatryoshkaLoss(inner, [8, 0])
