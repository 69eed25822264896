"""Training examples from canonical Parquet, and the choice of each example's hard negatives.

An example is ``(source, query text with its instruction, positive, hard negatives, label)``; ``label`` is set
for classification/clustering rows (exemplar positives) and drives same-label masking in the loss. Batching
lives in :mod:`training.sampler`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds

from data_catalog.schema import row_query


@dataclass(frozen=True)
class Example:
    source: str
    query: str
    positive: str
    negatives: tuple[str, ...]
    label: str | None


def load_examples(data_dir: Path, stage: str, use_instructions: bool = True) -> list[Example]:
    """All rows of ``stage`` in the Parquet files under ``data_dir``, ordered by id.

    ``use_instructions=False`` keeps queries bare (for backbones never trained with instructions).
    """
    files = sorted(str(p) for p in data_dir.rglob("part-*.parquet") if "quarantine" not in p.parts)
    if not files:
        raise FileNotFoundError(f"no part-*.parquet files under {data_dir}")
    table = ds.dataset(files, format="parquet").to_table(filter=ds.field("stage") == stage)
    table = table.sort_by("id")
    return [
        Example(
            row["source"],
            row_query(row, use_instructions),
            row["positive"],
            tuple(row["negatives"]),
            row["label"],
        )
        for row in table.to_pylist()
    ]


def choose_negatives(example: Example, count: int, pool: list[Example], rng: random.Random) -> list[str]:
    """``count`` hard negatives for ``example``.

    The example's own mined negatives come first (sampled with repetition when there are fewer than ``count``,
    as KaLM does). An example without any falls back to the positives of *other* examples in ``pool`` (its
    source), never a text equal to its own positive. When the pool has no such positive either, there is no
    sensible negative to pick, so this raises a ``ValueError`` naming the source (rather than training on a
    duplicate of the positive).
    """
    if count == 0:
        return []
    if example.negatives:
        own = list(example.negatives)
        return rng.sample(own, count) if len(own) >= count else [rng.choice(own) for _ in range(count)]
    others = [e.positive for e in pool if e.positive != example.positive]
    if not others:
        raise ValueError(
            f"source {example.source!r}: an example has no hard negatives and no other distinct positive in "
            f"its source to use as one ({len(pool)} examples in the pool); mine negatives for this source or "
            "train it with hard_negatives: 0"
        )
    return [rng.choice(others) for _ in range(count)]
