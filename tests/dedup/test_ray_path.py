"""The Ray Data signature + bucket-shuffle stages give byte-identical dedup output to the single-process path."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from kalm.dedup import DedupConfig, dedup_dataset

from .fixtures import random_words, rows_table


@pytest.mark.slow
def test_ray_path_equals_local_path(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    rng = np.random.default_rng(5)
    vocab = [f"t{i}" for i in range(800)]
    rows = []
    for i in range(240):
        words = random_words(rng, vocab, 30)
        rows.append({"id": f"d{i:04d}", "query": f"title {i}", "positive": " ".join(words)})
        if i % 6 == 0:  # near duplicate (last word changed) and an exact duplicate (case only)
            rows.append({"id": f"n{i:04d}", "query": f"title {i}", "positive": " ".join([*words[:-1], "zz"])})
            rows.append({"id": f"x{i:04d}", "query": f"TITLE {i}!", "positive": " ".join(words).upper()})
    big = random_words(rng, vocab, 30)  # one family of 25 near-dups: buckets larger than bucket_window
    for k in range(25):
        rows.append({"id": f"b{k:02d}", "query": "big", "positive": " ".join([*big[:-1], f"v{k}"])})
    rows.append({"id": "e0", "query": "", "positive": ""})
    random.Random(3).shuffle(rows)
    in_dir = tmp_path / "in"
    for k, chunk in enumerate((rows[:150], rows[150:])):  # two files, several row groups each
        (in_dir / f"s{k}").mkdir(parents=True)
        pq.write_table(rows_table(chunk), in_dir / f"s{k}" / "p.parquet", row_group_size=64)
    outs = {}
    for use_ray in (False, True):
        out = tmp_path / f"out_{use_ray}"
        stats = dedup_dataset(
            in_dir,
            out,
            DedupConfig(use_ray=use_ray, rows_per_part=100, bucket_window=4, ray_bucket_partitions=3),
        )
        outs[use_ray] = ({p.name: p.read_bytes() for p in sorted(out.iterdir())}, stats)
    assert outs[True][0] == outs[False][0]
    stats = outs[True][1]
    assert stats.exact_duplicates == 40 and stats.near_duplicates == 40 + 24
