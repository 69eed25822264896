"""Streaming mining: one source in memory at a time, and the same bytes as mining the sources one by one."""

from __future__ import annotations

import gc
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import kalm.mining.pipeline as pipeline
from kalm.mining import MiningConfig, mine_dataset
from kalm.mining.io import write_parts
from kalm.mining.merge import PartSink, merge_runs, write_run
from tests.mining.conftest import canonical_rows, write_balanced

CFG = MiningConfig(rank_start=2, rank_end=12, num_negatives=3, filter_topk=None, margin_fraction=None, seed=3)
SOURCES = ("alpha", "beta", "gamma")
ID_PREFIX = "streaming-test-"


def three_source_rows() -> list[dict]:
    """The conftest rows with the retrieval queries spread over three sources (plus exemplars, pretrain)."""
    rows = canonical_rows(n_queries=18, n_docs=54)
    for row in rows:
        if row["task_type"] == "retrieval" and row["stage"] == "finetune" and row["id"] != "alpha-999":
            q = int(row["id"].split("-")[1])
            row["source"] = row["category"] = SOURCES[q % 3]
            row["id"] = f"{row['source']}-{q:03d}"
    for row in rows:  # a prefix no other test uses, so rows left alive by earlier tests are not counted
        row["id"] = ID_PREFIX + row["id"]
    return rows


def write_dataset(root: Path, keep=lambda row: True) -> Path:
    """Written from a helper so the test frame holds no row dicts of its own."""
    return write_balanced(root, [r for r in three_source_rows() if keep(r)])


def live_row_sources() -> set[str]:
    """Sources of every canonical row dict alive in the process (the pipeline's materialised rows)."""
    gc.collect()
    return {
        o["source"]
        for o in gc.get_objects()
        if type(o) is dict
        and "source" in o
        and "positive" in o
        and "instruction" in o
        and str(o.get("id", "")).startswith(ID_PREFIX)
    }


def _mined_rows(out: Path) -> list[dict]:
    return [r for r in pq.read_table(out / "part-00000.parquet").to_pylist() if r["mined"]]


def test_sources_are_read_and_mined_one_at_a_time(tiny_checkpoint, tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "balanced")
    events: list[tuple[str, str]] = []
    read, mine = pipeline.read_source, pipeline.mine_source

    def reading(path):
        assert live_row_sources() == set(), "the previous source's rows must be freed before the next read"
        table = read(path)
        (source,) = set(table["source"].to_pylist())  # one source per read
        events.append(("read", source))
        return table

    def mining(rows, *args):
        sources = {r["source"] for r in rows}
        assert live_row_sources() == sources and len(sources) == 1
        events.append(("mine", sources.pop()))
        return mine(rows, *args)

    monkeypatch.setattr(pipeline, "read_source", reading)
    monkeypatch.setattr(pipeline, "mine_source", mining)
    stats = mine_dataset(data, tmp_path / "mined", tiny_checkpoint, CFG)
    # exemplar-only "cls" is read (its rows pass through) but not mined; each source is read exactly once
    assert events == [
        ("read", "alpha"),
        ("mine", "alpha"),
        ("read", "beta"),
        ("mine", "beta"),
        ("read", "cls"),
        ("read", "gamma"),
        ("mine", "gamma"),
    ]
    assert set(stats.sources) == set(SOURCES) and stats.rows_exemplar == 2 and stats.rows_other_stages == 1
    assert live_row_sources() == set()


def test_streamed_output_equals_mining_each_source_alone(tiny_checkpoint, tmp_path):
    stats = mine_dataset(write_dataset(tmp_path / "all"), tmp_path / "mined", tiny_checkpoint, CFG)
    expected: list[dict] = [r for r in _read_all(tmp_path / "mined") if not r["mined"]]
    for source in SOURCES:
        alone = write_dataset(tmp_path / f"in-{source}", lambda r, s=source: r["source"] == s)
        single = mine_dataset(alone, tmp_path / f"out-{source}", tiny_checkpoint, CFG)
        assert single.sources[source] == stats.sources[source]
        expected += _mined_rows(tmp_path / f"out-{source}")
    assert stats.rows_mined == sum(s.rows_out for s in stats.sources.values()) == len(expected) - 2
    # the merged parts are byte for byte what the in-memory writer makes of the per-source outputs
    write_parts(expected, tmp_path / "reference")
    streamed = (tmp_path / "mined" / "part-00000.parquet").read_bytes()
    assert streamed == (tmp_path / "reference" / "part-00000.parquet").read_bytes()
    assert not list(tmp_path.glob(".*spill*")), "spill files are removed"


def _read_all(out: Path) -> list[dict]:
    return pq.read_table(out / "part-00000.parquet").to_pylist()


def _run_rows(rng: random.Random, n: int, group: int, start: int) -> list[dict]:
    """Output-shaped rows with colliding ids (within and across runs) and distinct input positions."""
    rows = []
    for pos in range(start, start + n):
        mined = group > 0
        rows.append(
            {
                **dict.fromkeys(("source", "category", "stage", "task_type", "language"), "s"),
                "id": f"id-{rng.randrange(40):03d}",
                "instruction": "i",
                "query": f"q{pos}",
                "positive": f"p{pos}",
                "negatives": [f"n{pos}"] * rng.randrange(3),
                "label": None,
                "mined": mined,
                "miner_checkpoint": "m" if mined else None,
                "negative_ranks": [rng.randrange(-1, 9)] if mined else None,
                "negative_scores": [rng.random()] if mined else None,
                "positive_rank": rng.randrange(5) if mined else None,
                "positive_score": rng.random() if mined else None,
                "filled_random": False,
                "_group": group,
                "_pos": pos,
            }
        )
    return rows


@pytest.mark.parametrize(
    ("rows_per_part", "row_group_size", "buffer_rows"), [(20, 6, 3), (7, 50, 1), (1000, 10, 64)]
)
def test_merge_is_byte_identical_to_the_in_memory_writer(
    tmp_path, rows_per_part, row_group_size, buffer_rows
):
    rng = random.Random(rows_per_part)
    runs, every = [], []
    for group, n in enumerate([30, 0, 17, 25]):
        rows = _run_rows(rng, n, group, start=rng.randrange(1000) * 100)
        runs.append(tmp_path / f"run-{group}.parquet")
        write_run(rows, runs[-1])
        every += rows
    entries = merge_runs(
        runs,
        tmp_path / "merged",
        rows_per_part=rows_per_part,
        row_group_size=row_group_size,
        buffer_rows=buffer_rows,
    )
    every.sort(key=lambda r: (r["id"], r["_group"], r["_pos"]))
    assert entries == write_parts(every, tmp_path / "reference", rows_per_part, row_group_size)
    assert sum(e["rows"] for e in entries) == 72 and len(entries) == -(-72 // rows_per_part)


def test_empty_output_is_one_empty_part_like_the_in_memory_writer(tmp_path):
    assert PartSink(tmp_path / "a").close() == write_parts([], tmp_path / "b")
