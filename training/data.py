"""Training examples from canonical Parquet, and same-task batches sharded across ranks.

An example is ``(query text with its instruction, positive, hard negatives)``. Batches are drawn from one
source at a time (KaLM/GritLM task-homogeneous batching), shuffled with a seed, and every rank takes its own
contiguous slice of each global batch, so ranks never see the same example in a step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds

from data_catalog.schema import format_query


@dataclass(frozen=True)
class Example:
    source: str
    query: str
    positive: str
    negatives: tuple[str, ...]
    label: str | None


def load_examples(data_dir: Path, stage: str) -> list[Example]:
    """All rows of ``stage`` in the Parquet files under ``data_dir``, ordered by id."""
    files = sorted(str(p) for p in data_dir.rglob("part-*.parquet") if "quarantine" not in p.parts)
    if not files:
        raise FileNotFoundError(f"no part-*.parquet files under {data_dir}")
    table = ds.dataset(files, format="parquet").to_table(filter=ds.field("stage") == stage)
    table = table.sort_by("id")
    return [
        Example(
            row["source"],
            format_query(row["instruction"], row["query"]),
            row["positive"],
            tuple(row["negatives"]),
            row["label"],
        )
        for row in table.to_pylist()
    ]


def choose_negatives(example: Example, count: int, pool: list[Example], rng: random.Random) -> list[str]:
    """``count`` hard negatives: the example's own (sampled with repetition when short, as KaLM does),
    or positives of other same-source examples when it has none."""
    if count == 0:
        return []
    if example.negatives:
        own = list(example.negatives)
        return rng.sample(own, count) if len(own) >= count else [rng.choice(own) for _ in range(count)]
    others = [e.positive for e in pool if e.positive != example.positive]
    return [rng.choice(others) for _ in range(count)]


def global_batches(examples: list[Example], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Same-source batches of exactly ``batch_size`` indices; leftovers are pooled into mixed batches."""
    rng = random.Random(f"{seed}:{epoch}")
    by_source: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        by_source.setdefault(example.source, []).append(index)
    batches: list[list[int]] = []
    leftovers: list[int] = []
    for source in sorted(by_source):
        indices = by_source[source]
        rng.shuffle(indices)
        full = len(indices) - len(indices) % batch_size
        batches.extend(indices[i : i + batch_size] for i in range(0, full, batch_size))
        leftovers.extend(indices[full:])
    rng.shuffle(leftovers)
    full = len(leftovers) - len(leftovers) % batch_size
    batches.extend(leftovers[i : i + batch_size] for i in range(0, full, batch_size))
    rng.shuffle(batches)
    return batches


def rank_slice(batch: list[int], rank: int, world_size: int) -> list[int]:
    if len(batch) % world_size:
        raise ValueError(f"global batch {len(batch)} is not divisible by {world_size} ranks")
    per_rank = len(batch) // world_size
    return batch[rank * per_rank : (rank + 1) * per_rank]
