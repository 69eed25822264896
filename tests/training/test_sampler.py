"""The semi-homogeneous sampler: determinism, homogeneity, swaps, resume mid-epoch, rank sharding, bucketing."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest

from training.sampler import SemiHomogeneousSampler, rank_slice, swap_count

SIZES = {"alpha": 10, "beta": 7, "gamma": 5, "delta": 1}
BATCH = 4


def _sources(sizes: dict[str, int] = SIZES) -> list[str]:
    sources = [source for source, count in sizes.items() for _ in range(count)]
    random.Random(0).shuffle(sources)  # sources interleaved in the input order
    return sources


def _sampler(sources=None, batch=BATCH, **kwargs) -> SemiHomogeneousSampler:
    return SemiHomogeneousSampler(_sources() if sources is None else sources, batch, **kwargs)


def _plan(seed: int = 3, epoch: int = 2) -> list[list[int]]:
    return _sampler(seed=seed).global_batches(epoch)


# ------------------------------------------------------------------------------------------ determinism
def test_deterministic_per_seed_and_epoch():
    first = _sampler(seed=3).global_batches(0)
    assert first == _sampler(seed=3).global_batches(0)
    assert first != _sampler(seed=4).global_batches(0)
    assert first != _sampler(seed=3).global_batches(1)


def test_same_in_another_interpreter():
    """Ranks are separate processes (own hash seeds): they must all compute the same global batches."""
    code = "from tests.training.test_sampler import _plan; print(_plan())"
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env={"PYTHONHASHSEED": str(hash_seed), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in (1, 2)
    }
    assert outputs == {str(_plan()) + "\n"}


# ------------------------------------------------------------------------------------------ homogeneity
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_shape_and_homogeneity_at_ratio_one(seed):
    sources = _sources()
    sampler = _sampler(sources, seed=seed)
    batches = sampler.global_batches(0)
    assert all(len(batch) == BATCH for batch in batches)
    assert len(batches) == len(sampler)

    flat = [i for batch in batches for i in batch]
    assert len(flat) == len(set(flat)), "an index repeats within the epoch"
    assert all(0 <= i < len(sources) for i in flat)

    full = {source: n // BATCH for source, n in SIZES.items()}
    leftovers = sum(n % BATCH for n in SIZES.values())
    assert len(batches) == sum(full.values()) + leftovers // BATCH
    assert len(flat) == len(sources) - leftovers % BATCH  # only the last partial leftover batch is dropped

    # Every source's full batches are single-source; only the pooled leftovers may mix sources.
    pure = Counter()
    mixed = 0
    for batch in batches:
        kinds = {sources[i] for i in batch}
        if len(kinds) == 1:
            pure[kinds.pop()] += 1
        else:
            mixed += 1
    assert mixed <= leftovers // BATCH
    for source, count in full.items():
        assert pure[source] >= count, (source, pure)


def test_ratio_one_without_leftovers_gives_single_source_batches():
    sources = _sources({"a": 12, "b": 8, "c": 16})
    for seed in range(5):
        for batch in _sampler(sources, seed=seed, homogeneous_ratio=1.0).global_batches(0):
            assert len({sources[i] for i in batch}) == 1


def test_mix_leftovers_when_needed():
    # 3 + 3 + 2 leftovers with batch 4: two pooled batches must mix sources.
    batches = _sampler(_sources({"a": 3, "b": 3, "c": 2}), seed=0).global_batches(0)
    assert len(batches) == 2
    assert sorted(i for batch in batches for i in batch) == list(range(8))


def test_too_few_examples():
    sampler = _sampler(_sources({"a": 3}))
    assert sampler.global_batches(0) == [] and len(sampler) == 0
    assert list(sampler) == []


@pytest.mark.parametrize(
    ("batch", "ratio", "expected"), [(16, 1.0, 0), (16, 0.75, 4), (10, 0.9, 1), (8, 0.0, 8)]
)
def test_swap_count(batch, ratio, expected):
    assert swap_count(batch, ratio) == expected


@pytest.mark.parametrize("ratio", [0.75, 0.5])
def test_ratio_swaps_only_the_trailing_slots(ratio):
    sizes = {"a": 16, "b": 16, "c": 24}  # no leftovers: every batch starts single-source
    sources = _sources(sizes)
    batch_size = 8
    keep = batch_size - swap_count(batch_size, ratio)
    homogeneous = _sampler(sources, batch_size, seed=1).global_batches(0)
    batches = _sampler(sources, batch_size, seed=1, homogeneous_ratio=ratio).global_batches(0)
    assert sorted(i for b in batches for i in b) == sorted(i for b in homogeneous for i in b)
    for batch in batches:
        assert len({sources[i] for i in batch[:keep]}) == 1  # the head stays from one source
    # Some batch really mixes sources (the swapped tails are shuffled across 7 batches).
    assert any(len({sources[i] for i in batch}) > 1 for batch in batches)


def test_ratio_zero_still_covers_each_example_once():
    sources = _sources({"a": 16, "b": 16})
    batches = _sampler(sources, 8, seed=2, homogeneous_ratio=0.0).global_batches(0)
    assert sorted(i for b in batches for i in b) == list(range(32))


# ---------------------------------------------------------------------------------------------- resume
def _take(sampler: SemiHomogeneousSampler, count: int) -> list[list[int]]:
    """``count`` batches across epoch boundaries, the way the training loop consumes them."""
    out: list[list[int]] = []
    while len(out) < count:
        out.extend(islice(iter(sampler), count - len(out)))
    return out


@pytest.mark.parametrize("stop_after", [0, 1, 3, 5, 6, 7, 9])
@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_resume_mid_epoch_equals_uninterrupted(stop_after, ratio):
    kwargs = {"seed": 7, "homogeneous_ratio": ratio}
    uninterrupted = _take(_sampler(**kwargs), 15)  # 5 batches per epoch: 3 epochs
    assert len(_sampler(**kwargs)) == 5

    first = _sampler(**kwargs)
    consumed = _take(first, stop_after)
    state = first.state_dict()
    resumed = _sampler(**kwargs)
    resumed.load_state_dict(state)
    assert consumed + _take(resumed, 15 - stop_after) == uninterrupted


def test_state_counts_handed_out_batches_and_epochs():
    sampler = _sampler()
    iterator = iter(sampler)
    next(iterator)
    next(iterator)
    assert sampler.state_dict()["epoch"] == 0 and sampler.state_dict()["position"] == 2
    list(iterator)
    list(sampler)  # the next pass is the next epoch
    assert sampler.epoch == 1 and sampler.state_dict()["position"] == len(sampler)
    sampler.set_epoch(4)
    assert next(iter(sampler)) == sampler.global_batches(4)[0]


def test_resume_with_another_world_size_continues_the_same_global_batches():
    sampler = _sampler(seed=5)
    _take(sampler, 2)
    state = sampler.state_dict()
    expected = sampler.global_batches(0)[2]
    parts = []
    for rank in range(2):
        resumed = _sampler(seed=5, rank=rank, world_size=2)
        resumed.load_state_dict(state)
        parts.extend(next(iter(resumed)))
    assert parts == expected


def test_state_from_another_plan_is_rejected():
    state = _sampler(seed=1).state_dict()
    with pytest.raises(ValueError, match="sampler state"):
        _sampler(seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="sampler state"):
        _sampler(seed=1, homogeneous_ratio=0.5).load_state_dict(state)


# -------------------------------------------------------------------------------------------- sharding
@pytest.mark.parametrize("world", [1, 2, 4])
@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_rank_shards_are_disjoint_and_cover_each_global_batch(world, ratio):
    sources = _sources({"a": 16, "b": 9, "c": 11})
    plan = _sampler(sources, 8, seed=3, homogeneous_ratio=ratio).global_batches(0)
    shards = [
        list(_sampler(sources, 8, seed=3, homogeneous_ratio=ratio, rank=r, world_size=world))
        for r in range(world)
    ]
    assert all(len(shard) == len(plan) for shard in shards)
    for step, batch in enumerate(plan):
        parts = [shard[step] for shard in shards]
        assert all(len(part) == 8 // world for part in parts)
        assert [i for part in parts for i in part] == batch  # disjoint, covering, in order
    everything = [i for shard in shards for part in shard for i in part]
    assert len(everything) == len(set(everything))


def test_indivisible_global_batch_is_rejected():
    with pytest.raises(ValueError, match="divisible"):
        _sampler(batch=6, world_size=4)
    with pytest.raises(ValueError, match="divisible"):
        rank_slice([1, 2, 3], 0, 2)


@pytest.mark.parametrize("world", [1, 2, 4, 8])
def test_rank_slice_disjoint_and_covering(world):
    batch = [17, 3, 9, 0, 44, 12, 5, 31]
    slices = [rank_slice(batch, rank, world) for rank in range(world)]
    assert all(len(s) == len(batch) // world for s in slices)
    assert [i for s in slices for i in s] == batch


# ------------------------------------------------------------------------------------------- bucketing
def _padding(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_length_bucketing_cuts_padding_and_keeps_the_same_examples():
    sources = _sources({"a": 64, "b": 48})
    lengths = [random.Random(i).randint(5, 500) for i in range(len(sources))]
    plain = _sampler(sources, 8, seed=0).global_batches(0)
    bucketed = SemiHomogeneousSampler(sources, 8, seed=0, lengths=lengths, bucket_batches=4).global_batches(0)
    assert sorted(i for b in bucketed for i in b) == sorted(i for b in plain for i in b)
    assert all(len({sources[i] for i in b}) == 1 for b in bucketed)  # still one source per batch
    assert _padding(bucketed, lengths) < 0.5 * _padding(plain, lengths)
    again = SemiHomogeneousSampler(sources, 8, seed=0, lengths=lengths, bucket_batches=4).global_batches(0)
    assert bucketed == again


def test_bucketing_needs_matching_lengths():
    with pytest.raises(ValueError, match="lengths"):
        SemiHomogeneousSampler(["a", "b"], 2, lengths=[1], bucket_batches=1)
