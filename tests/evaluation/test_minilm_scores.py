"""End-to-end: the real all-MiniLM-L6-v2 on subsampled real tasks of all six types, scored by real mteb.

Thresholds sit well below what this model reaches on these subsets (measured: STS-B 0.86, SciFact ~0.8,
Banking77 0.97, 20NG 0.43, MSRP 0.83, TrecQA 0.57) but far above what shuffled embeddings or a broken
order restoration would give, so they catch wiring bugs without being flaky.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mteb.results import TaskResult

from kalm.evaluation import TaskScore, evaluate_embedder, load_local_tasks


@pytest.fixture(scope="module")
def run(minilm: Any, small_tasks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("minilm_out")
    scores = evaluate_embedder(minilm, small_tasks_dir, out, batch_size=32)
    return {"scores": scores, "out": out}


@pytest.mark.parametrize(
    ("task", "metric", "low", "high"),
    [
        ("STSBenchmark", "cosine_spearman", 0.6, 1.0),
        ("SciFact", "ndcg_at_10", 0.4, 1.0),
        ("Banking77Classification", "accuracy", 0.6, 1.0),
        ("TwentyNewsgroupsClustering", "v_measure", 0.2, 1.0),
        ("MSRP", "max_ap", 0.7, 1.0),
        ("TrecQA", "map_at_1000", 0.4, 1.0),
        # an English-only model on Chinese: only check the task runs and yields a valid correlation
        ("STSBenchmarkZh", "cosine_spearman", -1.0, 1.0),
    ],
)
def test_main_scores_in_expected_range(
    run: dict[str, Any], task: str, metric: str, low: float, high: float
) -> None:
    score: TaskScore = run["scores"][task]
    assert score.main_score_name == metric
    assert score.split == "test"
    assert low < score.main_score <= high, f"{task} {metric}={score.main_score:.4f}"


def test_every_type_evaluated_with_metadata(run: dict[str, Any]) -> None:
    scores: dict[str, TaskScore] = run["scores"]
    assert {s.task_type for s in scores.values()} == {
        "STS",
        "Retrieval",
        "Classification",
        "Clustering",
        "PairClassification",
        "Reranking",
    }
    assert scores["STSBenchmarkZh"].languages == ["cmn"]
    assert scores["STSBenchmark"].languages == ["eng"]


def test_result_files_are_mteb_format(run: dict[str, Any], minilm: Any) -> None:
    out: Path = run["out"]
    for name, score in run["scores"].items():
        result = TaskResult.from_disk(out / "results" / f"{name}.json")
        assert result.task_name == name
        entry = result.scores["test"][0]
        assert entry["main_score"] == pytest.approx(score.main_score, abs=1e-6)
        assert entry[score.main_score_name] == pytest.approx(score.main_score, abs=1e-6)
    meta = json.loads((out / "results" / "model_meta.json").read_text())
    assert meta["revision"] == minilm.revision
    assert meta["name"] == "local/all-MiniLM-L6-v2"


def test_scores_json_summary(run: dict[str, Any], minilm: Any) -> None:
    data = json.loads((run["out"] / "scores.json").read_text())
    assert data["model"] == {"name": minilm.name, "revision": minilm.revision}
    assert set(data["tasks"]) == set(run["scores"])
    values = [s.main_score for s in run["scores"].values()]
    assert data["summary"]["mean_over_tasks"] == pytest.approx(sum(values) / len(values))
    sts = [s.main_score for s in run["scores"].values() if s.task_type == "STS"]
    assert data["summary"]["per_type"]["STS"] == pytest.approx(sum(sts) / len(sts))
    assert data["summary"]["mean_over_task_types"] == pytest.approx(
        sum(data["summary"]["per_type"].values()) / 6
    )


def test_tasks_reloadable_after_run(run: dict[str, Any], small_tasks_dir: Path) -> None:
    # mteb unloads task data after a run; a fresh load must still find metadata and data
    (task,) = load_local_tasks(small_tasks_dir, ["MSRP"])
    task.load_data()
    assert task.data_loaded
    assert len(task.dataset["default"]["test"]) == 200
