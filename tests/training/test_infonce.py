"""InfoNCE (+ focal reweighting, + cross-device gather) against a slow per-query reference."""

from __future__ import annotations

import math
import socket

import pytest
import torch
import torch.nn.functional as F

from training.losses import InfoNCELoss


def _embeddings(queries: int, group: int, dim: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(queries, dim, generator=generator), dim=-1)
    d = F.normalize(torch.randn(queries * group, dim, generator=generator), dim=-1)
    # Make positives somewhat aligned so probabilities are neither ~0 nor ~1.
    d = d.clone()
    for i in range(queries):
        d[i * group] = F.normalize(d[i * group] + q[i], dim=-1)
    return q, d


def reference_loss(q: torch.Tensor, d: torch.Tensor, temperature: float, group: int, gamma: float = 0.0):
    """Per-query loop: -log softmax over every document of the batch, the target at i * group."""
    per_query = []
    for i in range(q.shape[0]):
        scores = torch.stack([(q[i] * d[j]).sum() / temperature for j in range(d.shape[0])])
        log_z = torch.logsumexp(scores, dim=0)
        log_p = scores[i * group] - log_z
        weight = (1.0 - log_p.exp()).detach() ** gamma
        per_query.append(-weight * log_p)
    return torch.stack(per_query).mean()


def _value_and_grads(fn, q, d):
    q = q.clone().requires_grad_(True)
    d = d.clone().requires_grad_(True)
    loss = fn(q, d)
    loss.backward()
    return loss.detach(), q.grad, d.grad


def _reference_value_and_grads(q, d, temperature, group, gamma=0.0):
    loss, gq, gd = _value_and_grads(
        lambda a, b: reference_loss(a, b, temperature, group, gamma), q.double(), d.double()
    )
    return loss.float(), gq.float(), gd.float()


def _close(actual, expected, scale: float):
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6 * scale)


@pytest.mark.parametrize("temperature", [0.01, 0.05, 1.0])
@pytest.mark.parametrize("group", [1, 4])
def test_infonce_matches_reference(group, temperature):
    q, d = _embeddings(5, group, seed=group)
    loss_fn = InfoNCELoss(temperature=temperature, group_size=group, cross_device=False)
    loss, gq, gd = _value_and_grads(loss_fn, q, d)
    ref_loss, ref_gq, ref_gd = _reference_value_and_grads(q, d, temperature, group)
    scale = 1.0 / temperature
    _close(loss, ref_loss, scale)
    _close(gq, ref_gq, scale)
    _close(gd, ref_gd, scale)
    assert math.isfinite(float(loss)) and float(loss) > 0


def test_target_is_the_first_document_of_each_group():
    """A query whose positive slot holds the query itself gets a near-zero loss; a shifted layout does not."""
    q, d = _embeddings(4, 3, seed=9)
    aligned = d.clone()
    aligned[0::3] = q
    loss_fn = InfoNCELoss(temperature=0.01, group_size=3, cross_device=False)
    assert float(loss_fn(q, aligned)) < 1e-3
    shifted = d.clone()
    shifted[1::3] = q
    assert float(loss_fn(q, shifted)) > 1.0


@pytest.mark.parametrize("group", [1, 4])
def test_focal_gamma_zero_is_plain_infonce(group):
    q, d = _embeddings(6, group, seed=2)
    plain = InfoNCELoss(temperature=0.05, group_size=group, cross_device=False)
    focal0 = InfoNCELoss(temperature=0.05, group_size=group, focal_gamma=0.0, cross_device=False)
    a, ga_q, ga_d = _value_and_grads(plain, q, d)
    b, gb_q, gb_d = _value_and_grads(focal0, q, d)
    assert torch.equal(a, b) and torch.equal(ga_q, gb_q) and torch.equal(ga_d, gb_d)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("group", [1, 4])
def test_focal_matches_reference(group, gamma):
    temperature = 0.05
    q, d = _embeddings(6, group, seed=3)
    loss_fn = InfoNCELoss(temperature=temperature, group_size=group, focal_gamma=gamma, cross_device=False)
    loss, gq, gd = _value_and_grads(loss_fn, q, d)
    ref_loss, ref_gq, ref_gd = _reference_value_and_grads(q, d, temperature, group, gamma)
    scale = 1.0 / temperature
    _close(loss, ref_loss, scale)
    _close(gq, ref_gq, scale)
    _close(gd, ref_gd, scale)
    # The weights are < 1, so focal loss is strictly below plain InfoNCE.
    plain = InfoNCELoss(temperature=temperature, group_size=group, cross_device=False)(q, d)
    assert float(loss) < float(plain)


@pytest.mark.parametrize(("queries", "documents", "group"), [(4, 7, 2), (4, 4, 2), (3, 4, 1)])
def test_wrong_document_count_raises(queries, documents, group):
    q, _ = _embeddings(queries, 1)
    d = F.normalize(torch.randn(documents, q.shape[1]), dim=-1)
    with pytest.raises(ValueError, match="documents"):
        InfoNCELoss(group_size=group)(q, d)


# ----------------------------------------------------------------------------------------- distributed
WORLD, LOCAL_QUERIES, GROUP, DIM, IN_DIM, TAU = 2, 3, 2, 8, 5, 0.05


def _global_inputs():
    q, d = _embeddings(WORLD * LOCAL_QUERIES, GROUP, dim=DIM, seed=11)
    generator = torch.Generator().manual_seed(12)
    xq = torch.randn(WORLD * LOCAL_QUERIES, IN_DIM, generator=generator)
    xd = torch.randn(WORLD * LOCAL_QUERIES * GROUP, IN_DIM, generator=generator)
    return q, d, xq, xd


def _linear():
    torch.manual_seed(5)
    return torch.nn.Linear(IN_DIM, DIM)


def _encode(model, xq, xd):
    emb = F.normalize(model(torch.cat([xq, xd])), dim=-1)
    return emb[: xq.shape[0]], emb[xq.shape[0] :]


def _worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        q, d, xq, xd = _global_inputs()
        qs = slice(rank * LOCAL_QUERIES, (rank + 1) * LOCAL_QUERIES)
        ds = slice(rank * LOCAL_QUERIES * GROUP, (rank + 1) * LOCAL_QUERIES * GROUP)
        loss_fn = InfoNCELoss(temperature=TAU, group_size=GROUP)

        # (a) embeddings as leaves: the gradient each rank receives for its own embeddings.
        q_local = q[qs].clone().requires_grad_(True)
        d_local = d[ds].clone().requires_grad_(True)
        loss = loss_fn(q_local, d_local)
        loss.backward()

        # (b) a DDP-wrapped encoder: the averaged parameter gradients.
        model = DistributedDataParallel(_linear())
        eq, ed = _encode(model, xq[qs], xd[ds])
        ddp_loss = loss_fn(eq, ed)
        ddp_loss.backward()
        torch.save(
            {
                "loss": loss.detach(),
                "q_grad": q_local.grad,
                "d_grad": d_local.grad,
                "ddp_loss": ddp_loss.detach(),
                "param_grads": {n: p.grad.clone() for n, p in model.module.named_parameters()},
            },
            f"{out_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cross_device_loss_matches_single_process_global_batch(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    q, d, xq, xd = _global_inputs()
    single = InfoNCELoss(temperature=TAU, group_size=GROUP)
    loss, gq, gd = _value_and_grads(single, q, d)
    # Sanity: the single-process loss is the slow reference over the concatenated batch.
    _close(loss, reference_loss(q.double(), d.double(), TAU, GROUP).float(), 1 / TAU)

    # Each rank's loss is the mean over its queries, so the mean over ranks is the global loss.
    torch.testing.assert_close(torch.stack([r["loss"] for r in results]).mean(), loss, rtol=1e-5, atol=1e-6)
    for rank, result in enumerate(results):
        qs = slice(rank * LOCAL_QUERIES, (rank + 1) * LOCAL_QUERIES)
        ds = slice(rank * LOCAL_QUERIES * GROUP, (rank + 1) * LOCAL_QUERIES * GROUP)
        # Local loss = mean over B local queries; global loss = mean over WORLD * B queries, and the
        # all_gather backward sums every rank's contribution into the producer's documents. So the local
        # gradient is WORLD x the global one, and DDP's division by WORLD restores the single-process value.
        torch.testing.assert_close(result["q_grad"], WORLD * gq[qs], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(result["d_grad"], WORLD * gd[ds], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(result["q_grad"] / WORLD, gq[qs], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(result["d_grad"] / WORLD, gd[ds], rtol=1e-4, atol=1e-6)
        # Documents of this rank also get gradient from the *other* rank's queries (gather with grad).
        other = InfoNCELoss(temperature=TAU, group_size=GROUP, cross_device=False)
        _, _, local_only = _value_and_grads(other, q[qs], d[ds])
        assert (result["d_grad"] - local_only).abs().max() > 1e-4

    # DDP end to end: averaged parameter gradients equal the single-process gradients on the global batch.
    model = _linear()
    eq, ed = _encode(model, xq, xd)
    ddp_reference = single(eq, ed)
    ddp_reference.backward()
    torch.testing.assert_close(
        torch.stack([r["ddp_loss"] for r in results]).mean(), ddp_reference.detach(), rtol=1e-5, atol=1e-6
    )
    for result in results:
        for name, parameter in model.named_parameters():
            torch.testing.assert_close(result["param_grads"][name], parameter.grad, rtol=1e-4, atol=1e-6)
