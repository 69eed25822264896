"""Dedup on Ray (no process holds the corpus) gives byte-identical output to the single-process path."""

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
            DedupConfig(
                use_ray=use_ray, rows_per_part=100, bucket_window=4, ray_unit_rows=60, ray_partition_rows=90
            ),
        )
        outs[use_ray] = ({p.name: p.read_bytes() for p in sorted(out.iterdir())}, stats)
    assert outs[True][0] == outs[False][0]
    stats = outs[True][1]
    assert stats.exact_duplicates == 40 and stats.near_duplicates == 40 + 24


@pytest.mark.slow
def test_ray_decontamination_equals_local_path(tmp_path: Path) -> None:
    """The evaluation index broadcast to Ray workers, rows matched where they are: the same bytes."""
    pytest.importorskip("ray")
    from kalm.dedup import DecontaminationConfig, decontaminate_dataset

    from .test_decontaminate import _train_rows, write_eval_tasks

    tasks = write_eval_tasks(tmp_path / "eval")
    rng = np.random.default_rng(7)
    vocab = [f"t{i}" for i in range(500)]
    rows = [
        {"id": f"c{i:04d}", "query": f"q {i}", "positive": " ".join(random_words(rng, vocab, 20))}
        for i in range(300)
    ]
    leaks = [{**r, "id": f"{r['id']}-{k}"} for k in range(3) for r in _train_rows()]
    rows += leaks
    random.Random(4).shuffle(rows)
    for k, chunk in enumerate((rows[:200], rows[200:])):
        (tmp_path / "in" / f"s{k}").mkdir(parents=True)
        pq.write_table(rows_table(chunk), tmp_path / "in" / f"s{k}" / "p.parquet", row_group_size=40)
    outs = {}
    for use_ray in (False, True):
        cfg = DecontaminationConfig(
            use_ray=use_ray, rows_per_part=120, batch_size=16, ray_unit_rows=70, ray_partition_rows=100
        )
        out = tmp_path / f"out_{use_ray}"
        stats = decontaminate_dataset(tmp_path / "in", out, tasks, cfg)
        outs[use_ray] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert outs[True] == outs[False]
    assert stats.rows_dropped == 15 and stats.rows_in == 324
