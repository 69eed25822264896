"""A contrastive step whose activation memory is bounded by a token budget, not by the batch (GradCache).

In-batch negatives need every embedding of the step before the loss exists, so the plain step keeps the
autograd graph of the whole per-rank batch alive until ``backward``: on CPU that graph *is* the worker's
memory (all-MiniLM-L6-v2, 16 queries × 4 texts × 128 tokens: 2.8 GB of saved activations, three quarters of
the worker's peak). Gradient caching (Gao et al. 2021, sentence-transformers' ``CachedMultipleNegatives…``)
splits the step in three:

1. embed the texts chunk by chunk **without** a graph, keeping each chunk's RNG state;
2. compute the loss on those embeddings (a leaf tensor) and back-propagate to the embeddings only;
3. re-embed each chunk **with** a graph (same RNG state, so the same dropout masks) and back-propagate the
   cached embedding gradients into the parameters, one chunk at a time.

The parameter gradient is the plain step's (the chain rule, summed over chunks), so the loss, the gradient
and the weights match the plain step up to float rounding; only one chunk's graph is ever alive. The price is
one extra forward pass; it is won back because each chunk holds texts of similar length (the step's texts
sorted by token count) and is padded only to its own longest text, where the plain step pads every query to
the longest document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist


def plan_chunks(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices of ``lengths``, longest first, cut into chunks whose padded size (count × longest) ≤ ``budget``.

    A text longer than the budget gets a chunk of its own. Ties keep index order, so the plan (and with it the
    float rounding of a step) is a pure function of the lengths.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    chunks: list[list[int]] = []
    for index in order:
        if chunks and (len(chunks[-1]) + 1) * lengths[chunks[-1][0]] <= budget:
            chunks[-1].append(index)
        else:
            chunks.append([index])
    return chunks


def saved_bytes_per_token(model: torch.nn.Module, max_length: int, pad_token_id: int = 0) -> float:
    """Bytes of activations autograd keeps per token of a max-length batch (parameters excluded).

    Measured on a forward of two max-length texts rather than estimated from the shape: it depends on the
    attention kernel (BERT's attention dropout forces the math kernel, which keeps every attention matrix:
    about half of all-MiniLM-L6-v2's 0.27 MB per token) and on gradient checkpointing. The RNG is forked, so the
    measurement changes no later dropout mask.
    """
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    device = next(model.parameters()).device
    input_ids = torch.full((2, max_length), pad_token_id, dtype=torch.long, device=device)
    attention_mask = torch.ones_like(input_ids)
    with torch.random.fork_rng(devices=[]), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids, attention_mask)
    return sum(saved.values()) / input_ids.numel()


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def cached_backward(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    budget: int,
) -> torch.Tensor:
    """Accumulate into the parameters' ``.grad`` the gradient of ``loss_of(forward(input_ids, attention_mask))``,
    holding the graph of at most ``budget`` padded tokens at a time; return the (detached) loss.

    ``input_ids``/``attention_mask`` are the step's right-padded texts (on ``forward``'s device); ``loss_of``
    maps their embeddings, in that order, to the loss. ``forward`` must not synchronise gradients across
    ranks (the caller averages them once, after the last chunk), and the loss may gather across ranks.
    """
    device = input_ids.device
    lengths = attention_mask.sum(dim=1).tolist()
    chunks = plan_chunks(lengths, budget)

    def embed(chunk: list[int]) -> torch.Tensor:
        index = torch.tensor(chunk, device=device)
        width = max(1, int(lengths[chunk[0]]))  # right padding: the chunk's longest text comes first
        return forward(input_ids[index, :width], attention_mask[index, :width])

    states, parts = [], []
    with torch.no_grad():
        for chunk in chunks:
            states.append(_rng_state(device))
            parts.append(embed(chunk))
    after = _rng_state(device)
    embeddings = torch.empty((len(lengths), parts[0].shape[1]), dtype=parts[0].dtype, device=device)
    for chunk, part in zip(chunks, parts, strict=True):
        embeddings[torch.tensor(chunk, device=device)] = part
    del parts
    embeddings.requires_grad_(True)
    loss = loss_of(embeddings)
    loss.backward()
    cached = embeddings.grad
    assert cached is not None
    for chunk, state in zip(chunks, states, strict=True):
        _set_rng_state(state, device)
        embed(chunk).backward(cached[torch.tensor(chunk, device=device)])
    _set_rng_state(after, device)
    return loss.detach()


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (what DDP's constructor does)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor, src=0)


def average_gradients(params: list[torch.nn.Parameter], bucket_bytes: int = 32 * 2**20) -> None:
    """Average ``.grad`` across ranks as DDP does (each rank's gradient / world size, summed), in flat buckets
    of about ``bucket_bytes``: few collectives, and one bucket of extra memory rather than a gradient copy.

    A parameter without a gradient counts as zero, so every rank issues the same collectives.
    """
    world = dist.get_world_size()
    grads = []
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        grads.append(param.grad)
    bucket: list[torch.Tensor] = []
    for i, grad in enumerate(grads):
        bucket.append(grad)
        last = i + 1 == len(grads)
        if (
            last
            or sum(g.numel() * g.element_size() for g in bucket) >= bucket_bytes
            or (grads[i + 1].dtype != grad.dtype)
        ):
            _all_reduce_mean(bucket, world)
            bucket = []


def _all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    if len(tensors) == 1:
        tensors[0].div_(world)
        dist.all_reduce(tensors[0])
        return
    flat = torch.cat([t.reshape(-1) for t in tensors]).div_(world)
    dist.all_reduce(flat)
    offset = 0
    for tensor in tensors:
        tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()
