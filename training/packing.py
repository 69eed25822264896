"""Padding-free ("packed") forward pass for contrastive training, and token-budget micro-batching.

A contrastive micro-batch (queries, then their documents) is usually padded to its longest sequence: with
log-uniform lengths (mean ~160, max 512) two thirds of the tensor is padding, and the GPU spends two thirds of
its FLOPs on it. Here every sequence of the micro-batch is concatenated into **one row** (batch size 1):

* ``position_ids`` restart at 0 for every sequence, so each sequence sees exactly the rotary (or absolute)
  positions it would see alone in a padded batch. RoPE scores depend only on position *differences*, but
  restarting also keeps positions below ``max_position_embeddings``, gives bit-for-bit the same cos/sin
  tables as the padded path (the fp32 equivalence test relies on it) and is what absolute-position models
  need.
* attention is bidirectional *within* a sequence and blocked across sequences: a block-diagonal mask built
  from a per-token sequence id (``seq_ids[q] == seq_ids[k]``). With ``flex_attention`` that is a
  ``BlockMask`` from :func:`create_block_mask` with a document-id ``mask_mod``: fully-masked 128×128 tiles
  are skipped, so attention costs Σ len² instead of (Σ len)². For eager/sdpa (e.g. CPU) the same mask is
  materialised densely as ``[1, 1, T, T]``: boolean for sdpa, additive (0 / dtype-min) for eager, which
  *adds* the mask to the scores.
* the mask is handed to a transformers 5.x decoder as a ``{"full_attention": mask}`` dict. A dict
  bypasses the model's own mask construction (``create_causal_mask``), so nothing causal or padding-based
  is layered on top, and the attention integrations take it as-is: sdpa passes it as ``attn_mask`` (and
  drops ``is_causal`` because a mask is present), eager adds it, flex uses a ``BlockMask`` directly.
* pooling is by segment sums: ``index_add_`` of the token states into one row per sequence via the sequence
  id tensor, divided by the lengths, then L2-normalised. Tail padding (added only to round the row up to a
  flex block multiple) is routed into a scratch row that is dropped, so no boolean indexing and no host sync.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

FLEX_BLOCK = 128


@dataclass(frozen=True)
class PackedBatch:
    """One packed row. ``seq_ids[t]`` is the sequence of token ``t``; the tail padding gets id ``num_sequences``
    (its own block: it attends only to itself, never to real tokens, and is dropped by the pooling)."""

    input_ids: torch.Tensor  # [1, T] int64
    position_ids: torch.Tensor  # [1, T] int64, restarting at 0 per sequence
    seq_ids: torch.Tensor  # [T] int64
    lengths: torch.Tensor  # [N] int64 real tokens per sequence
    starts: torch.Tensor  # [N] int64 offset of each sequence in the row

    @property
    def num_sequences(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def num_real_tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def num_slots(self) -> int:
        return int(self.input_ids.shape[1])

    def to(self, device: torch.device | str) -> PackedBatch:
        """Copy to ``device``; to a GPU through pinned memory, so the copy never blocks the host on the GPU."""
        pin = torch.device(device).type == "cuda"
        return PackedBatch(
            *((t.pin_memory() if pin else t).to(device, non_blocking=True) for t in self._fields())
        )

    def _fields(self) -> tuple[torch.Tensor, ...]:
        return (self.input_ids, self.position_ids, self.seq_ids, self.lengths, self.starts)


def pack_sequences(
    sequences: Sequence[Sequence[int] | torch.Tensor], pad_to_multiple: int = 1, pad_token_id: int = 0
) -> PackedBatch:
    """Concatenate token-id sequences into one row; pad the tail up to a multiple of ``pad_to_multiple``
    (use :data:`FLEX_BLOCK` for flex attention, whose block mask works on 128-token tiles)."""
    if not sequences:
        raise ValueError("nothing to pack")
    seqs = [torch.as_tensor(s, dtype=torch.long).reshape(-1) for s in sequences]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    if int(lengths.min()) == 0:
        raise ValueError("cannot pack an empty sequence")
    total = int(lengths.sum())
    pad = (-total) % pad_to_multiple
    n = len(seqs)
    starts = torch.cumsum(lengths, 0) - lengths
    seq_ids = torch.repeat_interleave(torch.arange(n), lengths)
    positions = torch.arange(total) - starts[seq_ids]
    ids = torch.cat([*seqs, torch.full((pad,), pad_token_id, dtype=torch.long)])
    seq_ids = torch.cat([seq_ids, torch.full((pad,), n, dtype=torch.long)])
    positions = torch.cat([positions, torch.arange(pad)])
    return PackedBatch(ids[None], positions[None], seq_ids, lengths, starts)


def unpad(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """The real tokens of each row of a right- or left-padded batch (e.g. :meth:`EmbeddingModel.tokenize`)."""
    keep = attention_mask.bool()
    return [row[m] for row, m in zip(input_ids, keep, strict=True)]


def dense_block_mask(seq_ids: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``[1, 1, T, T]`` block-diagonal mask: boolean (sdpa) or, with ``dtype``, additive 0/min (eager)."""
    same = (seq_ids[:, None] == seq_ids[None, :])[None, None]
    if dtype is None:
        return same
    return torch.zeros(same.shape, dtype=dtype, device=seq_ids.device).masked_fill(
        ~same, torch.finfo(dtype).min
    )


def flex_block_mask(seq_ids: torch.Tensor):  # -> BlockMask (import is lazy: flex is optional)
    """Flex-attention ``BlockMask`` allowing ``q`` to see ``k`` iff both belong to the same sequence."""
    from torch.nn.attention.flex_attention import create_block_mask

    def same_sequence(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return seq_ids[q] == seq_ids[k]

    length = seq_ids.shape[0]
    # On GPU the mask is built by a compiled kernel: the uncompiled path materialises a dense T x T boolean
    # (2.4 GB at 49k tokens) before reducing it to 128x128 tiles.
    return create_block_mask(
        same_sequence, None, None, length, length, device=seq_ids.device, _compile=seq_ids.is_cuda
    )


def packed_attention_mask(
    packed: PackedBatch, attn_implementation: str, dtype: torch.dtype = torch.float32
) -> dict[str, object]:
    """The mask dict a transformers 5.x decoder takes in place of a 2D padding mask (see module doc)."""
    if attn_implementation == "flex_attention":
        mask: object = flex_block_mask(packed.seq_ids)
    elif attn_implementation == "sdpa":
        mask = dense_block_mask(packed.seq_ids)
    elif attn_implementation == "eager":
        mask = dense_block_mask(packed.seq_ids, dtype)
    else:
        raise ValueError(
            f"packed attention supports eager, sdpa and flex_attention, not {attn_implementation!r}"
        )
    return {"full_attention": mask}


def segment_pool(
    hidden: torch.Tensor, packed: PackedBatch, method: str = "mean", normalize: bool = True
) -> torch.Tensor:
    """``[N, d]`` sequence embeddings from packed token states ``[T, d]`` (or ``[1, T, d]``), in fp32."""
    hidden = hidden.reshape(-1, hidden.shape[-1])
    n = packed.lengths.shape[0]
    if method == "mean":
        sums = torch.zeros(n + 1, hidden.shape[-1], dtype=torch.float32, device=hidden.device)
        sums = sums.index_add(0, packed.seq_ids, hidden.float())[:n]
        pooled = sums / packed.lengths.to(sums.dtype)[:, None]
    elif method == "cls":
        pooled = hidden[packed.starts].float()
    elif method == "last":
        pooled = hidden[packed.starts + packed.lengths - 1].float()
    else:
        raise ValueError(f"unknown pooling {method!r}")
    return F.normalize(pooled, dim=-1) if normalize else pooled


def packed_hidden_states(
    backbone: PreTrainedModel, packed: PackedBatch, attention_mask: dict[str, object] | None = None
) -> torch.Tensor:
    """Token states ``[T, d]`` of a packed row; builds the mask for the backbone's attention unless given
    (pass one to reuse a ``BlockMask`` or to build it outside a compiled region)."""
    if attention_mask is None:
        impl = backbone.config._attn_implementation
        attention_mask = packed_attention_mask(packed, impl, backbone.dtype)
    out = backbone(
        input_ids=packed.input_ids, position_ids=packed.position_ids, attention_mask=attention_mask
    )
    return out.last_hidden_state[0]


def packed_embed(
    backbone: PreTrainedModel,
    packed: PackedBatch,
    pooling: str = "mean",
    attention_mask: dict[str, object] | None = None,
) -> torch.Tensor:
    """L2-normalised embeddings ``[N, d]`` of the packed sequences, in packing order."""
    return segment_pool(packed_hidden_states(backbone, packed, attention_mask), packed, pooling)


def embed_in_rows(
    backbone: PreTrainedModel,
    sequences: Sequence[torch.Tensor],
    row_tokens: int,
    pooling: str = "mean",
    pad_to_multiple: int = 1,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, int]:
    """Embed any number of sequences in packed rows of at most ``row_tokens`` tokens (first-fit decreasing),
    one forward per row, keeping every row's graph so a single loss over all embeddings backpropagates
    through all of them. Returns the embeddings ``[N, d]`` in input order and the token slots used (real +
    tail padding, for the padding fraction). ``backbone`` may be a compiled module; pass
    ``pad_to_multiple=row_tokens`` to give it one static shape."""
    device = device if device is not None else backbone.device
    impl = backbone.config._attn_implementation
    rows = pack_by_token_budget([len(s) for s in sequences], row_tokens)
    embs, order, slots = [], [], 0
    for row in rows:
        packed = pack_sequences([sequences[i] for i in row], pad_to_multiple).to(device)
        mask = packed_attention_mask(packed, impl, backbone.dtype)
        embs.append(segment_pool(packed_hidden_states(backbone, packed, mask), packed, pooling))
        order.extend(row)
        slots += packed.num_slots
    emb = torch.cat(embs)
    if len(rows) > 1:  # one row is already in input order: bins list their indices ascending
        inverse = torch.tensor(order).argsort()
        pin = torch.device(device).type == "cuda"
        emb = emb[(inverse.pin_memory() if pin else inverse).to(device, non_blocking=True)]
    return emb, slots


def pack_by_token_budget(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Split items (sequences, or whole query+documents groups) into micro-batches of at most ``budget``
    tokens each, first-fit decreasing: few, well-filled micro-batches instead of a fixed batch size.

    Deterministic (ties broken by index); every index appears exactly once; indices inside a micro-batch are
    in ascending order, and micro-batches are ordered by their first index. Raises if an item alone exceeds
    the budget (truncate upstream rather than silently dropping it).
    """
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    too_long = [i for i, n in enumerate(lengths) if n > budget]
    if too_long:
        raise ValueError(f"items {too_long[:5]} are longer than the token budget {budget}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[int] = []
    for i in order:
        for b, room in enumerate(free):
            if lengths[i] <= room:
                bins[b].append(i)
                free[b] -= lengths[i]
                break
        else:
            bins.append([i])
            free.append(budget - lengths[i])
    return sorted((sorted(b) for b in bins), key=lambda b: b[0])
