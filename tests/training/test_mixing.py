"""Online hard-negative mixing: pinned synthetic vectors, determinism, pair choice, detach, and the loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.training.test_infonce import _close, _embeddings, _value_and_grads, reference_loss
from training.losses import HardNegativeMixer, InfoNCELoss, MatryoshkaLoss, encode_labels, hardest_pair_order

SEED = 1234
# Hand-written inputs (no RNG): 2 queries, 4 hard negatives each, width 4.
QUERIES = F.normalize(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]), dim=-1)
NEGATIVES = F.normalize(
    torch.tensor(
        [
            [[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [2.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]],
            [[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]],
        ]
    ),
    dim=-1,
)


def _independent(queries, negatives, k, pair_choice, seed):
    """The documented recipe, written out with plain loops and a fresh generator."""
    generator = torch.Generator().manual_seed(seed)
    batch, m = negatives.shape[:2]
    if pair_choice == "random":
        first = torch.randint(m, (batch, k), generator=generator).tolist()
        second = torch.randint(m - 1, (batch, k), generator=generator).tolist()
        pairs = [
            [(a, b + (b >= a)) for a, b in zip(fr, sr, strict=True)]
            for fr, sr in zip(first, second, strict=True)
        ]
    else:
        pairs = []
        for i in range(batch):
            scores = [float(queries[i] @ negatives[i, j]) for j in range(m)]
            ranked = sorted(range(m), key=lambda j: (-scores[j], j))
            # Hardest first: (1st, 2nd), (1st, 3rd), (2nd, 3rd), (1st, 4th), ... (worse rank, then better).
            order = [(a, b) for b in range(1, m) for a in range(b)]
            pairs.append(
                [(ranked[order[c % len(order)][0]], ranked[order[c % len(order)][1]]) for c in range(k)]
            )
    uniforms = torch.rand(batch, k, 3, generator=generator)
    lambdas = [[sorted(uniforms[i, c].tolist())[1] for c in range(k)] for i in range(batch)]
    vectors = torch.stack(
        [
            torch.stack(
                [
                    F.normalize(
                        lambdas[i][c] * negatives[i, pairs[i][c][0]]
                        + (1 - lambdas[i][c]) * negatives[i, pairs[i][c][1]],
                        dim=0,
                    )
                    for c in range(k)
                ]
            )
            for i in range(batch)
        ]
    )
    return pairs, lambdas, vectors


def test_random_pairs_pinned_for_a_seed():
    mixer = HardNegativeMixer(k=3, pair_choice="random", seed=SEED)
    synthetic = mixer(QUERIES, NEGATIVES)
    pairs, lambdas, expected = _independent(QUERIES, NEGATIVES, 3, "random", SEED)
    # Pinned draws: these change only if the documented draw order (or torch's CPU generator) changes.
    assert pairs == [[(3, 0), (3, 0), (2, 1)], [(1, 0), (0, 1), (0, 2)]]
    torch.testing.assert_close(
        torch.tensor(lambdas),
        torch.tensor([[0.7748505, 0.6567304, 0.6012226], [0.3043284, 0.7399492, 0.4757308]]),
        rtol=0,
        atol=1e-6,
    )
    torch.testing.assert_close(synthetic, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        synthetic[0, 0], F.normalize(0.7748505 * NEGATIVES[0, 3] + 0.2251495 * NEGATIVES[0, 0], dim=0)
    )
    torch.testing.assert_close(synthetic.norm(dim=-1), torch.ones(2, 3))


def test_hardest_pairs_pinned_for_a_seed():
    """Query 0's negatives by similarity: n0 (.71), n2 (.89) ... ranked n2, n0, n1/n3 (tie: lower index)."""
    k = 7  # more than the 6 pairs of 4 negatives: the order repeats
    mixer = HardNegativeMixer(k=k, pair_choice="hardest", seed=SEED)
    first, second = mixer.pairs(QUERIES, NEGATIVES)
    assert list(zip(first[0].tolist(), second[0].tolist(), strict=True)) == [
        (2, 0), (2, 1), (0, 1), (2, 3), (0, 3), (1, 3), (2, 0),
    ]  # fmt: skip
    pairs, _, expected = _independent(QUERIES, NEGATIVES, k, "hardest", SEED)
    assert [
        list(zip(f.tolist(), s.tolist(), strict=True)) for f, s in zip(first, second, strict=True)
    ] == pairs
    torch.testing.assert_close(mixer(QUERIES, NEGATIVES), expected, rtol=0, atol=1e-6)


def test_hardest_pair_order():
    assert hardest_pair_order(2) == [(0, 1)]
    assert hardest_pair_order(4) == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


@pytest.mark.parametrize("pair_choice", ["hardest", "random"])
def test_same_seed_same_vectors_other_seed_other_vectors(pair_choice):
    q, d = _embeddings(5, 5, seed=1)
    negatives = d.view(5, 5, -1)[:, 1:]
    a = HardNegativeMixer(k=4, pair_choice=pair_choice, seed=3)
    b = HardNegativeMixer(k=4, pair_choice=pair_choice, seed=3)
    first = a(q, negatives)
    assert torch.equal(first, b(q, negatives))
    assert not torch.equal(first, a(q, negatives))  # the generator moved on
    a.manual_seed(3)
    assert torch.equal(first, a(q, negatives))  # re-seeding replays
    assert not torch.equal(first, HardNegativeMixer(k=4, pair_choice=pair_choice, seed=4)(q, negatives))


def test_random_pairs_are_distinct_and_cover_all():
    q, d = _embeddings(64, 4, seed=2)
    first, second = HardNegativeMixer(k=8, pair_choice="random", seed=0).pairs(q, d.view(64, 4, -1)[:, 1:])
    assert bool((first != second).all())
    assert {(a, b) for a, b in zip(first.flatten().tolist(), second.flatten().tolist(), strict=True)} == {
        (a, b) for a in range(3) for b in range(3) if a != b
    }


def _mixer_lambdas(mixer: HardNegativeMixer, batch: int) -> torch.Tensor:
    """λ of every synthetic negative the mixer makes, read back from its output: each query's two hard
    negatives are the orthonormal e0 (the harder, so first in its only pair) and e1, so a synthetic negative
    is normalize(λ·e0 + (1 − λ)·e1) and λ = h0 / (h0 + h1)."""
    queries = F.normalize(torch.tensor([[1.0, 0.5, 0.0]]), dim=-1).expand(batch, 3)
    negatives = torch.eye(3)[:2].expand(batch, 2, 3)
    synthetic = mixer(queries, negatives)
    assert torch.equal(synthetic[..., 2], torch.zeros(batch, mixer.k))
    return (synthetic[..., 0] / (synthetic[..., 0] + synthetic[..., 1])).flatten()


def test_lambda_is_beta_2_2():
    """The mixer's λ is Beta(2, 2): mean 1/2, variance 1/20, and its CDF 3x² − 2x³ (Kolmogorov-Smirnov)."""
    lambdas = _mixer_lambdas(HardNegativeMixer(k=100, pair_choice="hardest", seed=0), 2000).double()
    assert lambdas.numel() == 200_000 and bool(((lambdas > 0) & (lambdas < 1)).all())
    assert abs(float(lambdas.mean()) - 0.5) < 0.005
    assert abs(float(lambdas.var()) - 0.05) < 0.002
    x = lambdas.sort().values
    n = x.numel()
    cdf = 3 * x**2 - 2 * x**3
    ks = max(
        float((torch.arange(1, n + 1, dtype=torch.float64) / n - cdf).max()),
        float((cdf - torch.arange(n, dtype=torch.float64) / n).max()),
    )
    assert ks < 1.63 / n**0.5  # the 1 % critical value: Beta(2, 2) is not rejected
    assert not torch.equal(lambdas[:100], _mixer_lambdas(HardNegativeMixer(k=100, seed=1), 1))  # a fresh draw


@pytest.mark.parametrize(("detach", "flows"), [(True, False), (False, True)])
def test_detach_stops_gradient_into_the_mixed_negatives(detach, flows):
    q, d = _embeddings(3, 4, seed=8)
    negatives = d.view(3, 4, -1)[:, 1:].clone().requires_grad_(True)
    queries = q.clone().requires_grad_(True)
    synthetic = HardNegativeMixer(k=2, detach=detach, seed=0)(queries, negatives)
    (queries[:, None, :] * synthetic).sum().backward()
    assert queries.grad is not None and queries.grad.abs().sum() > 0  # the query always learns from them
    assert (negatives.grad is not None and negatives.grad.abs().sum() > 0) == flows


def test_needs_two_hard_negatives():
    q, d = _embeddings(2, 2)
    with pytest.raises(ValueError, match="at least 2"):
        HardNegativeMixer(k=1)(q, d.view(2, 2, -1)[:, 1:])
    with pytest.raises(ValueError, match="group_size >= 3"):
        InfoNCELoss(group_size=2, mixer=HardNegativeMixer())
    with pytest.raises(ValueError, match="pair_choice"):
        HardNegativeMixer(pair_choice="easiest")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- in the loss, vs the reference
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("pair_choice", ["hardest", "random"])
@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_infonce_with_mixing_matches_reference(pair_choice, detach, gamma):
    """Each query's synthetic negatives join its own denominator only (value and gradients)."""
    temperature, group, k = 0.05, 4, 3
    q, d = _embeddings(5, group, seed=10)
    labels = ["x", None, "x", "y", None]
    mixer = HardNegativeMixer(k=k, pair_choice=pair_choice, detach=detach, seed=SEED)
    loss_fn = InfoNCELoss(
        temperature=temperature, group_size=group, focal_gamma=gamma, cross_device=False, mixer=mixer
    )
    loss, gq, gd = _value_and_grads(lambda a, b: loss_fn(a, b, encode_labels(labels)), q, d)

    def reference(a, b):
        negatives = b.view(5, group, -1)[:, 1:]
        negatives = negatives.detach() if detach else negatives
        pairs, lambdas, _ = _independent(a.detach().float(), negatives.detach().float(), k, pair_choice, SEED)
        extra = torch.stack(
            [
                torch.stack(
                    [
                        F.normalize(
                            lambdas[i][c] * negatives[i, pairs[i][c][0]]
                            + (1 - lambdas[i][c]) * negatives[i, pairs[i][c][1]],
                            dim=0,
                        )
                        for c in range(k)
                    ]
                )
                for i in range(5)
            ]
        )
        return reference_loss(a, b, temperature, group, gamma, labels=labels, extra=extra)

    ref, ref_gq, ref_gd = _value_and_grads(reference, q.double(), d.double())
    scale = 1.0 / temperature
    _close(loss, ref.float(), scale)
    _close(gq, ref_gq.float(), scale)
    _close(gd, ref_gd.float(), scale)
    plain = InfoNCELoss(temperature=temperature, group_size=group, focal_gamma=gamma, cross_device=False)
    assert float(loss) > float(plain(q, d, encode_labels(labels)))  # extra negatives only add to Z


def test_mixing_inside_matryoshka_is_deterministic_per_seed():
    q, d = _embeddings(4, 4, dim=8, seed=12)

    def run(seed):
        loss_fn = MatryoshkaLoss(
            InfoNCELoss(
                group_size=4,
                cross_device=False,
                mixer=HardNegativeMixer(k=2, pair_choice="random", seed=seed),
            ),
            dims=[8, 4],
            weights=[1.0, 0.5],
        )
        return loss_fn(q, d)

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))
