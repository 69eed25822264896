"""Hard-negative choice (batching is tested in test_sampler.py)."""

from __future__ import annotations

import random

import pytest

from training.data import Example, choose_negatives


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


@pytest.mark.parametrize("pool_positives", [["p"], ["p", "p"]])
def test_choose_negatives_without_any_candidate_names_the_source(pool_positives):
    """No own negatives and no other distinct positive in the source: a clear error, not an IndexError."""
    pool = [Example("lonely-source", f"q{i}", p, (), None) for i, p in enumerate(pool_positives)]
    with pytest.raises(ValueError, match="lonely-source"):
        choose_negatives(pool[0], 2, pool, random.Random(0))
    assert choose_negatives(pool[0], 0, pool, random.Random(0)) == []  # nothing asked, nothing raised


@pytest.mark.parametrize("use_instructions", [True, False])
def test_load_examples_matches_a_row_wise_read(demo_data_dir, use_instructions):
    """Column-wise loading (less memory per worker) gives the examples a row-by-row read of every column gives."""
    import pyarrow.dataset as ds

    from data_catalog.schema import row_query
    from training.data import load_examples

    files = sorted(str(p) for p in demo_data_dir.rglob("part-*.parquet") if "quarantine" not in p.parts)
    rows = ds.dataset(files).to_table(filter=ds.field("stage") == "finetune").sort_by("id").to_pylist()
    expected = [
        Example(r["source"], row_query(r, use_instructions), r["positive"], tuple(r["negatives"]), r["label"])
        for r in rows
    ]
    examples = load_examples(demo_data_dir, "finetune", use_instructions)
    assert examples == expected
    assert any(e.label is not None for e in examples) and any(e.negatives for e in examples)
