"""End-to-end: the real all-MiniLM-L6-v2 on subsampled real tasks of all six types, scored by real mteb.

Each score is checked against chance measured in the same test: the same tasks scored with MiniLM's own
vectors handed to the wrong texts (a fixed permutation within every encode call). That control keeps the
vectors' distribution (MiniLM's cosines are all positive, MSRP is 67 % positive pairs, a TrecQA query has
several relevant answers among few candidates), so it shows what a model that ignores its input scores here,
e.g. MSRP max_ap ≈ 0.67 and TrecQA map ≈ 0.4 (measured: real STS-B 0.86, SciFact ~0.8, Banking77 0.97,
20NG 0.43, MSRP 0.83, TrecQA 0.57). A broken text-to-vector link (order restoration, prompts, batching) falls
to the control's level and fails the margin.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mteb.results import TaskResult

from kalm.evaluation import TaskScore, evaluate_embedder, load_local_tasks


class MemoEmbedder:
    """The real embedder, remembering the vector of every text it encoded."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.revision = inner, inner.name, inner.revision
        self.vectors: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        vectors = np.asarray(self.inner.encode(texts, batch_size=batch_size))
        self.vectors.update(zip(texts, vectors, strict=True))
        return vectors


class ShuffledEmbedder:
    """MiniLM's vectors for the texts of each call, returned in a fixed random permutation (the control).

    Vectors come from the real run's memo (encoding again would double the test's time); a text the real run
    never encoded is encoded now.
    """

    def __init__(self, memo: MemoEmbedder, seed: int = 0) -> None:
        self.memo, self.name, self.revision = memo, f"{memo.name}-shuffled", memo.revision
        self.rng = np.random.default_rng(seed)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.memo.vectors]
        if missing:
            self.memo.encode(missing, batch_size=batch_size)
        vectors = np.stack([self.memo.vectors[t] for t in texts])
        return vectors[self.rng.permutation(len(texts))]


@pytest.fixture(scope="module")
def run(minilm: Any, small_tasks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("minilm_out")
    memo = MemoEmbedder(minilm)
    scores = evaluate_embedder(memo, small_tasks_dir, out, batch_size=32)
    control = evaluate_embedder(
        ShuffledEmbedder(memo), small_tasks_dir, tmp_path_factory.mktemp("shuffled_out"), batch_size=32
    )
    for name in sorted(scores):
        print(f"{name:28s} real {scores[name].main_score:.4f}  shuffled {control[name].main_score:.4f}")
    return {"scores": scores, "control": control, "out": out}


# Margin over the shuffled control, per task: a few standard deviations of a chance score on these subsets.
@pytest.mark.parametrize(
    ("task", "metric", "margin"),
    [
        ("STSBenchmark", "cosine_spearman", 0.5),  # chance ≈ 0 ± 0.07 (200 pairs)
        ("SciFact", "ndcg_at_10", 0.4),
        ("Banking77Classification", "accuracy", 0.5),  # 10 labels: chance ≈ 0.1
        ("TwentyNewsgroupsClustering", "v_measure", 0.2),
        ("MSRP", "max_ap", 0.08),  # chance = the positive rate, ≈ 0.67 ± 0.03
        ("TrecQA", "map_at_1000", 0.1),
        ("STSBenchmarkZh", "cosine_spearman", 0.1),  # English model on Chinese: shared characters only
    ],
)
def test_main_scores_beat_the_shuffled_control(
    run: dict[str, Any], task: str, metric: str, margin: float
) -> None:
    score: TaskScore = run["scores"][task]
    control: TaskScore = run["control"][task]
    assert score.main_score_name == control.main_score_name == metric
    assert score.split == "test"
    assert score.main_score <= 1.0
    assert score.main_score > control.main_score + margin, (
        f"{task} {metric}={score.main_score:.4f}, shuffled control {control.main_score:.4f}"
    )


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
