"""Evaluation through the store with the real MiniLM: recorded once, then a cache hit that encodes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kalm.hashing import hash_directory
from kalm.results import ResultsStore, build_leaderboard, current_mteb_version, local_task_refs
from tests.results.conftest import TINY_TASKS, CountingEmbedder, linked_copy


@pytest.fixture
def counted_model(
    monkeypatch: pytest.MonkeyPatch, counting: type[CountingEmbedder]
) -> type[CountingEmbedder]:
    import kalm.evaluation

    monkeypatch.setattr(kalm.evaluation, "SentenceTransformerEmbedder", counting)
    return counting


def test_second_evaluation_is_a_cache_hit(
    counted_model: type[CountingEmbedder], minilm_path: Path, tiny_tasks_dir: Path, tmp_path: Path
) -> None:
    from kalm.results import evaluate_model

    store = ResultsStore(tmp_path / "results.duckdb")
    first = evaluate_model(minilm_path, tiny_tasks_dir, tmp_path / "out1", store=store, stage="reference")
    assert first["evaluated"] == sorted(TINY_TASKS) and first["cached"] == []
    assert counted_model.constructed == 1 and counted_model.encoded > 0
    assert first["model_hash"] == hash_directory(minilm_path)
    assert first["scores"]["STSBenchmark"]["main_score"] > 0.5  # a real model on real pairs

    counted_model.reset()
    second = evaluate_model(minilm_path, tiny_tasks_dir, tmp_path / "out2", store=store)
    assert counted_model.constructed == 0 and counted_model.encoded == 0  # not even loaded
    assert second["cached"] == sorted(TINY_TASKS) and second["evaluated"] == []
    assert second["scores"] == first["scores"]
    # the caller gets the same files as after a real run
    for task in TINY_TASKS:
        fresh = json.loads((tmp_path / "out1" / "results" / f"{task}.json").read_text())
        cached = json.loads((tmp_path / "out2" / "results" / f"{task}.json").read_text())
        assert cached == fresh
    assert json.loads((tmp_path / "out2" / "scores.json").read_text())["cached"] == sorted(TINY_TASKS)

    (model,) = store.models()
    assert (model.model_hash, model.path, model.stage) == (first["model_hash"], str(minilm_path), "reference")
    metrics = {m for (m,) in store.query("SELECT DISTINCT metric FROM scores WHERE task = 'MSRP'")}
    assert {
        "max_ap",
        "main_score",
        "cosine_accuracy",
    } <= metrics  # the full mteb result, not only the main score
    assert build_leaderboard(store).entries.iloc[0]["n_tasks"] == 2


def test_revised_task_or_other_prompt_setting_reruns_only_what_changed(
    counted_model: type[CountingEmbedder], minilm_path: Path, tiny_tasks_dir: Path, tmp_path: Path
) -> None:
    from kalm.results import evaluate_model

    tasks_dir = tmp_path / "tasks"
    shutil.copytree(tiny_tasks_dir, tasks_dir)
    store = ResultsStore(tmp_path / "results.duckdb")
    evaluate_model(minilm_path, tasks_dir, tmp_path / "out", store=store)

    rows = (tasks_dir / "MSRP" / "test.jsonl").read_text().splitlines()
    (tasks_dir / "MSRP" / "test.jsonl").write_text("\n".join(rows[:-2]) + "\n")  # a new revision of MSRP
    again = evaluate_model(minilm_path, tasks_dir, tmp_path / "out", store=store)
    assert again["evaluated"] == ["MSRP"] and again["cached"] == ["STSBenchmark"]
    refs = {r.name: r.revision for r in local_task_refs(tasks_dir)}
    stored = dict(
        store.query("SELECT task, task_revision FROM evaluations WHERE task = 'MSRP' ORDER BY evaluated_at")
    )
    assert stored["MSRP"] == refs["MSRP"]

    plain = evaluate_model(
        minilm_path, tasks_dir, tmp_path / "plain", ["STSBenchmark"], use_instructions=False, store=store
    )
    assert plain["evaluated"] == ["STSBenchmark"]
    assert (
        store.missing_pairs(
            [again["model_hash"]], local_task_refs(tasks_dir), mteb_version=current_mteb_version()
        )
        == []
    )


@pytest.mark.usefixtures("prefect_harness")  # the command runs a flow
def test_cli_evaluate_records_into_the_default_store(
    minilm_path: Path, tiny_tasks_dir: Path, tmp_path: Path, private_state_dir: Path
) -> None:
    from kalm.cli import app

    args = [
        "evaluate",
        "--model",
        str(minilm_path),
        "--tasks-dir",
        str(tiny_tasks_dir),
        "--task",
        "STSBenchmark",
    ]
    args += ["--output", str(tmp_path / "out"), "--no-instructions", "--runs-dir", str(tmp_path / "runs")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "1 task(s) evaluated, 0 read from the results store" in first.output
    second = CliRunner().invoke(app, args)
    assert "0 task(s) evaluated, 1 read from the results store" in second.output
    store = ResultsStore(private_state_dir / "results.duckdb")
    assert store.query("SELECT task, use_instructions FROM evaluations") == [("STSBenchmark", False)]


def test_pipeline_step_registers_stage_run_and_soup_lineage(
    minilm_path: Path, tiny_tasks_dir: Path, tmp_path: Path, private_state_dir: Path
) -> None:
    from kalm.run.paths import RunPaths
    from kalm.run.profile import load_profile
    from tasks.evaluate import evaluate_step

    a = linked_copy(minilm_path, tmp_path / "ckpt" / "finetune-seed0", marker="a")
    b = linked_copy(minilm_path, tmp_path / "ckpt" / "finetune-seed1", marker="b")
    soup = linked_copy(minilm_path, tmp_path / "ckpt" / "soup")
    (soup / "soup.json").write_text(json.dumps({"ingredients": [{"path": str(a)}, {"path": str(b)}]}))
    base = load_profile("demo")
    evaluation = base.evaluate.model_copy(
        update={"tasks_dir": str(tiny_tasks_dir), "tasks": ["STSBenchmark"]}
    )
    profile = base.model_copy(update={"evaluate": evaluation})
    run = RunPaths(tmp_path / "runs" / "r1")
    summary = evaluate_step(profile, run, {"soup": str(soup)})
    assert summary["soup"]["evaluated"] == ["STSBenchmark"]
    (record,) = ResultsStore(private_state_dir / "results.duckdb").models()
    assert (record.stage, record.run_id) == ("soup", "r1")
    assert record.parents == (hash_directory(a), hash_directory(b))
