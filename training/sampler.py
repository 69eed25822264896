"""The semi-homogeneous task sampler (KaLM / GritLM ``DistributedInTaskSampler``), stateful and resumable.

One epoch's global batches, for a seed and an epoch number, are built like this (all randomness from
``random.Random(f"{seed}:{epoch}")``, which is the same in every process, whatever ``PYTHONHASHSEED``):

1. Per source (sorted by name): shuffle its indices; optionally (``bucket_batches > 0``) sort each chunk of
   ``bucket_batches × batch_size`` shuffled indices by length, so a batch holds texts of similar length
   (less padding); cut into full batches of ``batch_size``. The remainder (< one batch) is set aside.
2. The remainders of all sources are shuffled together and cut into mixed batches; the last partial one is
   dropped (KaLM: ``dataloader_drop_last``).
3. ``homogeneous_ratio`` r: the trailing ``int(batch_size × (1 − r))`` slots of every batch are pooled,
   shuffled, and dealt back, so a batch keeps ``batch_size − int(batch_size × (1 − r))`` examples of its own
   source at its head. r = 1 keeps every full batch single-source. (With several ranks the swapped slots fall
   in the last ranks' slices; the loss gathers the global batch, so every query still sees the mix.)
4. The batch order is shuffled.

Every rank walks the same global batches and takes its contiguous slice of each (:func:`rank_slice`), so ranks
never overlap and together cover the global batch. The state (epoch, batches consumed) is counted in *global*
batches, so a run can resume mid-epoch — even with another world size — and see exactly the batches an
uninterrupted run would have seen next.

References: Muennighoff et al. 2024 (GritLM) and Hu et al. 2024 (KaLM-Embedding) ``DistributedInTaskSampler``;
sentence-transformers' batch samplers (``set_epoch``).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from typing import Any


def rank_slice(batch: list[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s contiguous share of a global batch (ranks' shares are disjoint and cover it)."""
    if len(batch) % world_size:
        raise ValueError(f"global batch {len(batch)} is not divisible by {world_size} ranks")
    per_rank = len(batch) // world_size
    return batch[rank * per_rank : (rank + 1) * per_rank]


def swap_count(batch_size: int, homogeneous_ratio: float) -> int:
    """``int(batch_size × (1 − r))``, robust to float noise (10 × (1 − 0.9) is 1, not 0)."""
    return int(batch_size * (1.0 - homogeneous_ratio) + 1e-9)


class SemiHomogeneousSampler:
    """Batches of example indices, one source per batch (up to ``homogeneous_ratio``), sharded across ranks.

    Args:
        sources: the source/task name of every example (index ``i`` is example ``i``).
        batch_size: the *global* batch size (all ranks together); must be divisible by ``world_size``.
        homogeneous_ratio: r in [0, 1]; the share of each batch kept from one source (1 = fully homogeneous).
        seed: the shuffling seed (combined with the epoch number).
        rank, world_size: which slice of every global batch this sampler yields.
        lengths: optional length of every example (e.g. characters of query + positive) for bucketing.
        bucket_batches: with ``lengths``, sort by length within chunks of this many batches; 0 turns it off.

    Iteration yields this rank's index lists from the current position to the end of the current epoch, then
    the next ``iter`` starts the next epoch. :meth:`state_dict` / :meth:`load_state_dict` save and restore the
    position; :meth:`set_epoch` jumps to the start of an epoch.
    """

    def __init__(
        self,
        sources: Sequence[str],
        batch_size: int,
        *,
        homogeneous_ratio: float = 1.0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        lengths: Sequence[int] | None = None,
        bucket_batches: int = 0,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0.0 <= homogeneous_ratio <= 1.0:
            raise ValueError(f"homogeneous_ratio must be in [0, 1], got {homogeneous_ratio}")
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} is not divisible by {world_size} ranks")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        if lengths is not None and len(lengths) != len(sources):
            raise ValueError(f"{len(lengths)} lengths for {len(sources)} examples")
        if bucket_batches < 0:
            raise ValueError(f"bucket_batches must be >= 0, got {bucket_batches}")
        self.sources = list(sources)
        self.batch_size = batch_size
        self.homogeneous_ratio = homogeneous_ratio
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.lengths = None if lengths is None else list(lengths)
        self.bucket_batches = bucket_batches if lengths is not None else 0
        self._by_source: dict[str, list[int]] = {}
        for index, source in enumerate(self.sources):
            self._by_source.setdefault(source, []).append(index)
        leftovers = sum(len(ix) % batch_size for ix in self._by_source.values())
        self._num_batches = (
            sum(len(ix) // batch_size for ix in self._by_source.values()) + leftovers // batch_size
        )
        self._epoch = 0
        self._position = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    # ------------------------------------------------------------------------------------------- plan
    def __len__(self) -> int:
        """Global batches per epoch (the same for every epoch)."""
        return self._num_batches

    def global_batches(self, epoch: int) -> list[list[int]]:
        """Every global batch of ``epoch``, in order (identical on every rank)."""
        return [list(batch) for batch in self._plan(epoch)]

    def _plan(self, epoch: int) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = random.Random(f"{self.seed}:{epoch}")
        size = self.batch_size
        batches: list[list[int]] = []
        leftovers: list[int] = []
        for source in sorted(self._by_source):
            indices = list(self._by_source[source])
            rng.shuffle(indices)
            if self.bucket_batches and self.lengths is not None:
                chunk = self.bucket_batches * size
                lengths = self.lengths
                indices = [
                    i
                    for start in range(0, len(indices), chunk)
                    for i in sorted(indices[start : start + chunk], key=lambda j: lengths[j])
                ]
            full = len(indices) - len(indices) % size
            batches.extend(indices[i : i + size] for i in range(0, full, size))
            leftovers.extend(indices[full:])
        rng.shuffle(leftovers)
        full = len(leftovers) - len(leftovers) % size
        batches.extend(leftovers[i : i + size] for i in range(0, full, size))
        swap = swap_count(size, self.homogeneous_ratio)
        if swap and len(batches) > 1:
            tails = [i for batch in batches for i in batch[size - swap :]]
            rng.shuffle(tails)
            for k, batch in enumerate(batches):
                batch[size - swap :] = tails[k * swap : (k + 1) * swap]
        rng.shuffle(batches)
        self._cache = (epoch, batches)
        return batches

    # -------------------------------------------------------------------------------------- iteration
    @property
    def epoch(self) -> int:
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch."""
        self._epoch, self._position = epoch, 0

    def __iter__(self) -> Iterator[list[int]]:
        if self._position >= len(self):
            self._epoch, self._position = self._epoch + 1, 0
        batches = self._plan(self._epoch)
        while self._position < len(batches):
            batch = batches[self._position]
            self._position += 1  # counted when handed out: a state saved after using it resumes after it
            yield rank_slice(batch, self.rank, self.world_size)

    # ------------------------------------------------------------------------------------------ state
    def _fingerprint(self) -> str:
        plan = [
            self.sources,
            self.batch_size,
            self.homogeneous_ratio,
            self.seed,
            self.lengths,
            self.bucket_batches,
        ]
        return hashlib.blake2b(json.dumps(plan).encode(), digest_size=16).hexdigest()

    def state_dict(self) -> dict[str, Any]:
        """Where the sampler is, in global batches (so valid for any rank / world size of the same plan)."""
        return {"epoch": self._epoch, "position": self._position, "fingerprint": self._fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["fingerprint"] != self._fingerprint():
            raise ValueError("sampler state was saved for other data, batch size, ratio, seed or bucketing")
        if not 0 <= state["position"] <= len(self):
            raise ValueError(f"position {state['position']} outside an epoch of {len(self)} batches")
        self._epoch, self._position = int(state["epoch"]), int(state["position"])
