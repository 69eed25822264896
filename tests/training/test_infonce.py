"""InfoNCE (+ focal reweighting, + cross-device gather) against a slow per-query reference."""

from __future__ import annotations

import math
import socket

import pytest
import torch
import torch.nn.functional as F

from training.losses import NO_LABEL, InfoNCELoss, encode_labels, label_id


def _embeddings(queries: int, group: int, dim: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(queries, dim, generator=generator), dim=-1)
    d = F.normalize(torch.randn(queries * group, dim, generator=generator), dim=-1)
    # Make positives somewhat aligned so probabilities are neither ~0 nor ~1.
    d = d.clone()
    for i in range(queries):
        d[i * group] = F.normalize(d[i * group] + q[i], dim=-1)
    return q, d


def reference_loss(
    q: torch.Tensor,
    d: torch.Tensor,
    temperature: float,
    group: int,
    gamma: float = 0.0,
    labels: list[str | None] | None = None,
    extra: torch.Tensor | None = None,
):
    """Per-query loop: -log softmax over the batch's documents, the target at i * group.

    ``labels``: query i's denominator skips the positive (slot j * group) of every other query j with the same
    non-null label. ``extra`` [B, K, d]: query i's own extra negatives, appended to its denominator only.
    """
    per_query = []
    for i in range(q.shape[0]):
        scores = []
        for j in range(d.shape[0]):
            owner = j // group
            is_positive = j % group == 0
            if (
                labels is not None
                and is_positive
                and owner != i
                and labels[i] is not None
                and labels[owner] == labels[i]
            ):
                continue
            scores.append((q[i] * d[j]).sum() / temperature)
            if j == i * group:
                target = len(scores) - 1
        if extra is not None:
            scores.extend((q[i] * extra[i, k]).sum() / temperature for k in range(extra.shape[1]))
        scores = torch.stack(scores)
        log_p = scores[target] - torch.logsumexp(scores, dim=0)
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


@pytest.mark.parametrize("labelled", [False, True])
@pytest.mark.parametrize("group", [1, 4])
def test_focal_branch_tends_to_plain_infonce_as_gamma_goes_to_zero(group, labelled):
    """The weighted branch (γ > 0 takes it; γ = 0 returns early) at γ = 1e-6: w = (1 − p)^γ ≈ 1 − γ·|log(1 − p)|,
    so its value and gradients must equal plain InfoNCE to ~1e-5, and the gap must shrink with γ."""
    q, d = _embeddings(6, group, seed=2)
    labels = encode_labels(LABELS) if labelled else None

    def run(gamma):
        loss_fn = InfoNCELoss(temperature=0.05, group_size=group, focal_gamma=gamma, cross_device=False)
        return _value_and_grads(lambda a, b: loss_fn(a, b, labels), q, d)

    plain, plain_q, plain_d = run(0.0)
    tiny, tiny_q, tiny_d = run(1e-6)
    torch.testing.assert_close(tiny, plain, rtol=1e-5, atol=0)
    torch.testing.assert_close(tiny_q, plain_q, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(tiny_d, plain_d, rtol=1e-4, atol=1e-5)
    gaps = [float(plain - run(gamma)[0]) for gamma in (0.3, 0.1, 0.01)]
    assert gaps[0] > gaps[1] > gaps[2] > 0  # focal weights < 1, approaching 1 as γ → 0


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


# -------------------------------------------------------------------------------------- same-label mask
LABELS = ["red", None, "blue", "red", "red", "blue"]


def _labelled_value_and_grads(q, d, temperature, group, gamma, labels):
    loss_fn = InfoNCELoss(temperature=temperature, group_size=group, focal_gamma=gamma, cross_device=False)
    return _value_and_grads(lambda a, b: loss_fn(a, b, encode_labels(labels)), q, d)


@pytest.mark.parametrize("gamma", [0.0, 0.5])
@pytest.mark.parametrize("group", [1, 4])
def test_same_label_masking_matches_reference(group, gamma):
    temperature = 0.05
    q, d = _embeddings(6, group, seed=4)
    loss, gq, gd = _labelled_value_and_grads(q, d, temperature, group, gamma, LABELS)
    ref, ref_gq, ref_gd = _value_and_grads(
        lambda a, b: reference_loss(a, b, temperature, group, gamma, labels=LABELS), q.double(), d.double()
    )
    scale = 1.0 / temperature
    _close(loss, ref.float(), scale)
    _close(gq, ref_gq.float(), scale)
    _close(gd, ref_gd.float(), scale)
    plain = InfoNCELoss(temperature=temperature, group_size=group, focal_gamma=gamma, cross_device=False)
    assert float(loss) < float(plain(q, d))  # fewer negatives, lower loss


def test_masked_positives_do_not_reach_a_same_label_query():
    """Query 0 ("red") ignores the positives of queries 3 and 4 (also "red"): moving them leaves its gradient."""
    q, d = _embeddings(6, 1, seed=5)
    moved = d.clone()
    moved[3:5] = F.normalize(torch.randn(2, d.shape[1], generator=torch.Generator().manual_seed(1)), dim=-1)
    loss_fn = InfoNCELoss(temperature=0.05, group_size=1, cross_device=False)

    def query0_grad(docs, labels):
        _, gq, _ = _value_and_grads(lambda a, b: loss_fn(a, b, labels), q, docs)
        return gq[0]

    labels = encode_labels(LABELS)
    torch.testing.assert_close(query0_grad(d, labels), query0_grad(moved, labels), rtol=0, atol=1e-7)
    assert not torch.allclose(query0_grad(d, None), query0_grad(moved, None))  # unmasked: they matter
    moved_blue = d.clone()
    moved_blue[2] = moved[3]
    assert not torch.allclose(query0_grad(d, labels), query0_grad(moved_blue, labels))  # "blue" is a negative


@pytest.mark.parametrize(
    "labels", [[None] * 6, ["a", "b", "c", "d", "e", "f"], ["a", None, "b", None, "c", None]]
)
def test_labels_without_repeats_change_nothing(labels):
    q, d = _embeddings(6, 3, seed=6)
    loss_fn = InfoNCELoss(temperature=0.05, group_size=3, cross_device=False)
    a, ga_q, ga_d = _value_and_grads(loss_fn, q, d)
    b, gb_q, gb_d = _value_and_grads(lambda x, y: loss_fn(x, y, encode_labels(labels)), q, d)
    assert torch.equal(a, b) and torch.equal(ga_q, gb_q) and torch.equal(ga_d, gb_d)


def test_own_positive_is_never_masked():
    """All queries share one label: each still has its own positive (and every hard negative) in Z."""
    q, d = _embeddings(4, 3, seed=7)
    labels = ["same"] * 4
    loss_fn = InfoNCELoss(temperature=0.05, group_size=3, cross_device=False)
    loss = loss_fn(q, d, encode_labels(labels))
    assert math.isfinite(float(loss))
    _close(loss, reference_loss(q.double(), d.double(), 0.05, 3, labels=labels).float(), 20)


def test_encode_labels_is_stable_and_marks_missing():
    ids = encode_labels(["x", None, "x", "y"])
    assert ids.dtype == torch.long
    assert ids.tolist()[1] == NO_LABEL
    assert ids[0] == ids[2] != ids[3] and ids[0] >= 0 and ids[3] >= 0
    assert label_id("x") == label_id("x") == int(ids[0])
    # Pinned: a BLAKE2b digest, so every rank and process agrees (Python's hash() would not).
    assert label_id("banking77\x1fcard_arrival") == 2204007148695368191


def test_wrong_label_shape_raises():
    q, d = _embeddings(3, 1)
    with pytest.raises(ValueError, match="labels"):
        InfoNCELoss(cross_device=False)(q, d, encode_labels(["a", "b"]))


# ----------------------------------------------------------------------------------------- distributed
WORLD, LOCAL_QUERIES, GROUP, DIM, IN_DIM, TAU = 2, 3, 2, 8, 5, 0.05
# Same-label pairs within a rank and across ranks: rank 0 holds a, None, b; rank 1 holds a, b, None.
GLOBAL_LABELS = ["a", None, "b", "a", "b", None]


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

        # (c) same-label masking across ranks: the labels are gathered along with the documents.
        q_labelled = q[qs].clone().requires_grad_(True)
        d_labelled = d[ds].clone().requires_grad_(True)
        labelled = loss_fn(q_labelled, d_labelled, encode_labels(GLOBAL_LABELS[qs]))
        labelled.backward()
        torch.save(
            {
                "loss": loss.detach(),
                "q_grad": q_local.grad,
                "d_grad": d_local.grad,
                "ddp_loss": ddp_loss.detach(),
                "param_grads": {n: p.grad.clone() for n, p in model.module.named_parameters()},
                "labelled": labelled.detach(),
                "labelled_q_grad": q_labelled.grad,
                "labelled_d_grad": d_labelled.grad,
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

    # Same-label masking across ranks equals the single-process labelled loss (value and gradients).
    labelled, lq, ld = _value_and_grads(lambda a, b: single(a, b, encode_labels(GLOBAL_LABELS)), q, d)
    ref = reference_loss(q.double(), d.double(), TAU, GROUP, labels=GLOBAL_LABELS).float()
    _close(labelled, ref, 1 / TAU)
    assert float(labelled) < float(loss)  # something was masked
    torch.testing.assert_close(
        torch.stack([r["labelled"] for r in results]).mean(), labelled, rtol=1e-5, atol=1e-6
    )
    for rank, result in enumerate(results):
        qs = slice(rank * LOCAL_QUERIES, (rank + 1) * LOCAL_QUERIES)
        ds = slice(rank * LOCAL_QUERIES * GROUP, (rank + 1) * LOCAL_QUERIES * GROUP)
        torch.testing.assert_close(result["labelled_q_grad"] / WORLD, lq[qs], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(result["labelled_d_grad"] / WORLD, ld[ds], rtol=1e-4, atol=1e-6)

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
