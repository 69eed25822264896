"""Same-source global batches, rank slices and hard-negative choice."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from training.data import Example, choose_negatives, global_batches, rank_slice

SIZES = {"alpha": 10, "beta": 7, "gamma": 5, "delta": 1}
BATCH = 4


def _examples(sizes: dict[str, int] = SIZES) -> list[Example]:
    examples = []
    for source, count in sizes.items():
        for i in range(count):
            examples.append(Example(source, f"{source} q{i}", f"{source} p{i}", (f"{source} n{i}",), None))
    random.Random(0).shuffle(examples)  # sources interleaved in the input order
    return examples


def test_global_batches_deterministic_per_seed_and_epoch():
    examples = _examples()
    first = global_batches(examples, BATCH, seed=3, epoch=0)
    assert first == global_batches(examples, BATCH, seed=3, epoch=0)
    assert first != global_batches(examples, BATCH, seed=4, epoch=0)
    assert first != global_batches(examples, BATCH, seed=3, epoch=1)


def test_global_batches_same_in_another_interpreter():
    """Ranks are separate processes (own hash seeds): they must all compute the same global batches."""
    code = (
        "from tests.training.test_data import _examples, BATCH;"
        "from training.data import global_batches;"
        "print(global_batches(_examples(), BATCH, seed=3, epoch=2))"
    )
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
    assert outputs == {str(global_batches(_examples(), BATCH, seed=3, epoch=2)) + "\n"}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_global_batches_shape_and_homogeneity(seed):
    examples = _examples()
    batches = global_batches(examples, BATCH, seed=seed, epoch=0)
    assert all(len(batch) == BATCH for batch in batches)

    flat = [i for batch in batches for i in batch]
    assert len(flat) == len(set(flat)), "an index repeats within the epoch"
    assert all(0 <= i < len(examples) for i in flat)

    full = {source: n // BATCH for source, n in SIZES.items()}
    leftovers = sum(n % BATCH for n in SIZES.values())
    assert len(batches) == sum(full.values()) + leftovers // BATCH
    assert len(flat) == len(examples) - leftovers % BATCH  # only the last partial leftover batch is dropped

    # Every source's full batches are single-source; only the pooled leftovers may mix sources.
    pure = Counter()
    mixed = 0
    for batch in batches:
        sources = {examples[i].source for i in batch}
        if len(sources) == 1:
            pure[sources.pop()] += 1
        else:
            mixed += 1
    assert mixed <= leftovers // BATCH
    for source, count in full.items():
        assert pure[source] >= count, (source, pure)
    # Indices of each source that are not in its full batches number exactly size % BATCH.
    for source, n in SIZES.items():
        in_mixed = sum(
            1
            for batch in batches
            for i in batch
            if len({examples[j].source for j in batch}) > 1 and examples[i].source == source
        )
        assert in_mixed <= n % BATCH


def test_global_batches_mix_leftovers_when_needed():
    # 3 + 3 + 2 leftovers with batch 4: two pooled batches must mix sources.
    examples = _examples({"a": 3, "b": 3, "c": 2})
    batches = global_batches(examples, BATCH, seed=0, epoch=0)
    assert len(batches) == 2
    assert sorted(i for batch in batches for i in batch) == list(range(8))


def test_global_batches_too_few_examples():
    assert global_batches(_examples({"a": 3}), BATCH, seed=0, epoch=0) == []


def test_global_batches_does_not_depend_on_input_list_identity():
    examples = _examples()
    copy = list(examples)
    assert global_batches(examples, BATCH, 5, 0) == global_batches(copy, BATCH, 5, 0)
    assert examples == copy


@pytest.mark.parametrize("world", [1, 2, 4, 8])
def test_rank_slice_disjoint_and_covering(world):
    batch = [17, 3, 9, 0, 44, 12, 5, 31]
    slices = [rank_slice(batch, rank, world) for rank in range(world)]
    assert all(len(s) == len(batch) // world for s in slices)
    flat = [i for s in slices for i in s]
    assert flat == batch  # contiguous, in order: disjoint and covering
    assert len(set(flat)) == len(batch)


def test_rank_slice_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="divisible"):
        rank_slice([1, 2, 3], 0, 2)


def _pool() -> list[Example]:
    return [Example("s", f"q{i}", f"p{i}", (), None) for i in range(5)]


def test_choose_negatives_samples_own_without_repetition_when_enough():
    example = Example("s", "q", "p", ("n1", "n2", "n3", "n4"), None)
    for seed in range(20):
        chosen = choose_negatives(example, 3, [example], random.Random(seed))
        assert len(chosen) == 3 and len(set(chosen)) == 3
        assert set(chosen) <= set(example.negatives)


def test_choose_negatives_repeats_own_when_short():
    example = Example("s", "q", "p", ("n1", "n2"), None)
    seen = set()
    for seed in range(10):
        chosen = choose_negatives(example, 5, _pool(), random.Random(seed))
        assert len(chosen) == 5
        assert set(chosen) <= {"n1", "n2"}  # never falls back to other positives while it has its own
        seen |= set(chosen)
    assert seen == {"n1", "n2"}


def test_choose_negatives_falls_back_to_other_positives():
    pool = _pool()
    example = pool[2]
    seen = set()
    for seed in range(30):
        chosen = choose_negatives(example, 4, pool, random.Random(seed))
        assert len(chosen) == 4
        assert example.positive not in chosen
        assert set(chosen) <= {e.positive for e in pool} - {example.positive}
        seen |= set(chosen)
    assert seen == {"p0", "p1", "p3", "p4"}


def test_choose_negatives_fallback_skips_duplicates_of_own_positive():
    pool = [*_pool(), Example("s", "another query", "p2", (), None)]
    for seed in range(30):
        assert "p2" not in choose_negatives(pool[2], 3, pool, random.Random(seed))


def test_choose_negatives_zero_and_determinism():
    example = Example("s", "q", "p", ("n1", "n2", "n3"), None)
    assert choose_negatives(example, 0, _pool(), random.Random(0)) == []
    assert choose_negatives(example, 2, _pool(), random.Random(7)) == choose_negatives(
        example, 2, _pool(), random.Random(7)
    )
