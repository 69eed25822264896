"""The build-data flow: sources collect concurrently, a failing source fails the flow naming it, and a
re-run re-collects only that source; the Ray path gives the same shards as the in-process one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from data_catalog.catalog import load_catalog
from data_catalog.collect import CollectError, collect_catalog

pytestmark = pytest.mark.slow


def source(name: str, path: str) -> dict:
    return {
        "name": name,
        "stage": "pretrain",
        "category": name,
        "task_type": "retrieval",
        "languages": ["eng"],
        "loader": {"kind": "jsonl", "path": path},
        "fields": {"query": "q", "positive": "p"},
    }


def write_profile(tmp_path: Path) -> Path:
    rows = [
        {"q": f"question number {i} about topic {i % 7}", "p": f"answer {i} with words {i * 3}"}
        for i in range(60)
    ]
    (tmp_path / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "base_dir": ".",
                "sources": [source("good", "good.jsonl"), source("late", "late.jsonl")],
            }
        )
    )
    tasks = tmp_path / "eval"
    (tasks / "T").mkdir(parents=True)
    (tasks / "T" / "task.json").write_text(
        json.dumps(
            {
                "name": "T",
                "type": "STS",
                "languages": ["eng"],
                "main_score": "cosine_spearman",
                "split": "test",
                "instruction": "x",
                "min_score": 0,
                "max_score": 5,
            }
        )
    )
    (tasks / "T" / "test.jsonl").write_text(
        json.dumps({"sentence1": "a", "sentence2": "b", "score": 1}) + "\n"
    )
    profile = yaml.safe_load(Path("configs/demo.yaml").read_text())
    profile.update(name="t", catalog=str(catalog), demo_data=False)
    profile["evaluate"] = {"tasks_dir": str(tasks)}
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def test_failed_source_fails_the_flow_and_rerun_collects_only_it(prefect_harness, tmp_path):
    from flows.build_data import build_data

    profile = write_profile(tmp_path)
    runs = tmp_path / "runs"
    state = build_data(profile=str(profile), run_id="r", runs_dir=str(runs), return_state=True)
    assert state.is_failed()
    with pytest.raises(CollectError, match=r"1 source\(s\) failed: late: source 'late': input not found"):
        state.result()
    good_shard = runs / "r" / "data" / "collected" / "good" / "part-00000.parquet"
    assert good_shard.exists()
    mtime = good_shard.stat().st_mtime_ns

    (tmp_path / "late.jsonl").write_text(json.dumps({"q": "late question", "p": "late answer"}) + "\n")
    again = build_data(profile=str(profile), run_id="r", runs_dir=str(runs), return_state=True)
    assert again.is_completed(), again.message
    assert good_shard.stat().st_mtime_ns == mtime, "the source that had succeeded was collected again"
    assert (runs / "r" / "data" / "collected" / "late" / "part-00000.parquet").exists()
    assert again.result()["collect"]["rows_by_source"] == {"good": 60, "late": 1}


def test_ray_collection_equals_in_process(demo_raw, tmp_path):
    resolved = load_catalog("data_catalog/demo.yaml", base_dir=demo_raw)
    serial = collect_catalog(resolved, tmp_path / "serial")
    parallel = collect_catalog(resolved, tmp_path / "ray", ray_address="local")
    assert parallel.fingerprint == serial.fingerprint
    assert {n: m.rows_written for n, m in parallel.sources.items()} == {
        n: m.rows_written for n, m in serial.sources.items()
    }
