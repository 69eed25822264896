"""A local task with an ``mteb_counterpart`` is scored with the counterpart's protocol, and results record it.

The reference is mteb itself: the real task object (``mteb.get_task(name)``) is handed the local rows as its
data (offline, no hub) and run through the same encoder; the local task must score exactly what it scores.
Each shared task with a counterpart is checked on a subsample of its rows; the AmazonCounterfactual case (32
samples per label where the default is 8) and TwentyNewsgroups (mteb's legacy k-means clustering, not the v2
bootstrap a local Clustering task gets by default) also show the default protocol scores differently.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mteb
import pytest
from datasets import Dataset, DatasetDict

from kalm.evaluation import TaskSpecError, evaluate_tasks, load_local_tasks
from kalm.evaluation.local_tasks import task_protocol, task_revision
from kalm.evaluation.protocol import TaskScore
from kalm.evaluation.task_spec import read_jsonl, read_qrels, read_task_spec
from kalm.hashing import hash_directory
from kalm.results import ResultsStore, current_mteb_version
from kalm.results.cached import evaluate_with_store
from tests.evaluation.conftest import _per_label, _read, _write, subsample_task

COUNTERPART_TASKS = (
    "Banking77Classification",
    "TwentyNewsgroupsClustering",
    "SICK-R",
    "STSBenchmark",
    "STSBenchmarkZh",
    "LCQMC",
    "SciFact",
)


def _set_task_json(task_dir: Path, **changes: Any) -> None:
    raw = json.loads((task_dir / "task.json").read_text(encoding="utf-8"))
    (task_dir / "task.json").write_text(json.dumps(raw | changes), encoding="utf-8")


def mteb_rows(task_dir: Path, reference: Any) -> Any:
    """The local rows in the shape the real mteb task holds after its own loading (read independently of
    the readers under test, from the task.json layout in shared/datasets/README.md)."""
    spec = read_task_spec(task_dir)
    split = spec.split
    if spec.type == "STS":
        rows = read_jsonl(spec, f"{split}.jsonl", ("sentence1", "sentence2", "score"))
        data: Any = DatasetDict(
            {split: Dataset.from_dict({k: [r[k] for r in rows] for k in ("sentence1", "sentence2", "score")})}
        )
    elif spec.type == "Classification":
        train, test = (read_jsonl(spec, f, ("text", "label")) for f in ("train.jsonl", f"{split}.jsonl"))
        ids = {label: i for i, label in enumerate(sorted({r["label"] for r in train + test}))}
        data = DatasetDict(
            {
                name: Dataset.from_dict(
                    {"text": [r["text"] for r in rows], "label": [ids[r["label"]] for r in rows]}
                )
                for name, rows in (("train", train), (split, test))
            }
        )
    elif spec.type == "Clustering":  # the legacy layout: one row per cluster set, lists of texts and labels
        rows = read_jsonl(spec, f"{split}.jsonl", ("text", "label"))
        data = DatasetDict(
            {
                split: Dataset.from_dict(
                    {"sentences": [[r["text"] for r in rows]], "labels": [[r["label"] for r in rows]]}
                )
            }
        )
    elif spec.type == "Retrieval":
        corpus = read_jsonl(spec, "corpus.jsonl", ("_id", "text"))
        queries = read_jsonl(spec, "queries.jsonl", ("_id", "text"))
        data = {
            split: {
                "corpus": Dataset.from_dict(
                    {
                        "id": [str(d["_id"]) for d in corpus],
                        "title": [d.get("title") or "" for d in corpus],
                        "text": [d["text"] for d in corpus],
                    }
                ),
                "queries": Dataset.from_dict(
                    {"id": [str(q["_id"]) for q in queries], "text": [q["text"] for q in queries]}
                ),
                "relevant_docs": read_qrels(spec, f"qrels/{split}.tsv"),
                "top_ranked": None,
            }
        }
    else:  # pragma: no cover - the shared tasks with a counterpart are of the types above
        raise AssertionError(spec.type)
    subsets = list(reference.hf_subsets)
    assert len(subsets) == 1, subsets
    return {subsets[0]: data}


def reference_task(task_dir: Path) -> Any:
    """``mteb.get_task(counterpart)``, narrowed to the subset the local task holds, given the local rows."""
    spec = read_task_spec(task_dir)
    subset = spec.raw.get("mteb_subset")
    task = mteb.get_task(
        spec.counterpart,
        eval_splits=[spec.split],
        hf_subsets=[subset] if subset else None,
        languages=None if subset else list(spec.languages),
    )
    task.dataset = mteb_rows(task_dir, task)
    task.data_loaded = True
    return task


def _score(minilm: Any, task: Any, out: Path) -> float:
    (score,) = evaluate_tasks(minilm, [task], out, batch_size=32, use_instructions=False).values()
    return score.main_score


@pytest.fixture(scope="module")
def counterpart_dir(eval_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("counterparts")
    for name in COUNTERPART_TASKS:
        subsample_task(eval_root / name, root / name, n=160)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", COUNTERPART_TASKS)
def test_local_copy_scores_what_the_mteb_task_scores(
    name: str, counterpart_dir: Path, minilm: Any, tmp_path: Path
) -> None:
    (local,) = load_local_tasks(counterpart_dir, [name])
    reference = reference_task(counterpart_dir / name)
    assert isinstance(local, type(reference))  # built on the counterpart's own class
    assert _score(minilm, local, tmp_path / "local") == _score(minilm, reference, tmp_path / "mteb")


@pytest.fixture(scope="module")
def counterfactual_dir(eval_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two Banking77 intents as a binary task whose counterpart is AmazonCounterfactualClassification."""
    src = eval_root / "Banking77Classification"
    dst = tmp_path_factory.mktemp("counterfactual") / "Counterfactual"
    dst.mkdir()
    shutil.copy(src / "task.json", dst / "task.json")
    labels = ["card_arrival", "card_linking"]
    _write(dst / "train.jsonl", _per_label(_read(src / "train.jsonl"), labels, 60))
    _write(dst / "test.jsonl", _per_label(_read(src / "test.jsonl"), labels, 40))
    _set_task_json(
        dst, name="Counterfactual", mteb_counterpart="AmazonCounterfactualClassification", mteb_subset="en"
    )
    return dst


@pytest.mark.slow
def test_counterfactual_gets_32_samples_per_label_and_scores_as_mteb(
    counterfactual_dir: Path, minilm: Any, tmp_path: Path
) -> None:
    (local,) = load_local_tasks(counterfactual_dir.parent)
    assert local.samples_per_label == 32 and local.kalm_protocol["settings"]["samples_per_label"] == 32
    reference = reference_task(counterfactual_dir)
    assert reference.samples_per_label == 32
    score = _score(minilm, local, tmp_path / "local")
    assert score == _score(minilm, reference, tmp_path / "mteb")

    # the same rows under the type's defaults (8 samples per label) score differently: the protocol matters
    default_dir = tmp_path / "default" / "Counterfactual"
    shutil.copytree(counterfactual_dir, default_dir)
    _set_task_json(default_dir, mteb_counterpart=None)
    (default,) = load_local_tasks(default_dir.parent)
    assert default.samples_per_label == 8
    assert _score(minilm, default, tmp_path / "default-out") != score


@pytest.mark.slow
def test_newsgroups_is_the_legacy_clustering_not_the_bootstrap(
    counterpart_dir: Path, minilm: Any, tmp_path: Path
) -> None:
    (legacy,) = load_local_tasks(counterpart_dir, ["TwentyNewsgroupsClustering"])
    assert legacy.kalm_protocol["abstask"] == "AbsTaskClusteringLegacy"
    plain = tmp_path / "plain" / "TwentyNewsgroupsClustering"
    shutil.copytree(counterpart_dir / "TwentyNewsgroupsClustering", plain)
    _set_task_json(plain, mteb_counterpart=None)
    (default,) = load_local_tasks(plain.parent)
    assert default.kalm_protocol["abstask"] == "AbsTaskClustering"
    assert _score(minilm, legacy, tmp_path / "a") != _score(minilm, default, tmp_path / "b")


def test_protocol_is_recorded_and_part_of_the_revision(eval_root: Path) -> None:
    spec = read_task_spec(eval_root / "TwentyNewsgroupsClustering")
    protocol = task_protocol(spec)
    assert protocol["counterpart"] == "TwentyNewsgroupsClustering"
    assert protocol["task_class"].endswith("twenty_newsgroups_clustering.TwentyNewsgroupsClustering")
    revision = task_revision(spec)
    assert revision.startswith(hash_directory(spec.task_dir) + "+")
    msrp = task_protocol(read_task_spec(eval_root / "MSRP"))
    assert msrp["counterpart"] is None and msrp["abstask"] == "AbsTaskPairClassification"
    # the protocol (not only the directory) keys the stored score: same rows, another protocol, another key
    assert revision.split("+")[1] != task_revision(read_task_spec(eval_root / "STSBenchmark")).split("+")[1]


@pytest.mark.parametrize(
    ("counterpart", "message"),
    [("NoSuchMtebTask", "mteb has no task named"), ("SciFact", "is a Retrieval task scored by ndcg_at_10")],
)
def test_bad_counterpart_names_the_task_and_field(
    counterpart_dir: Path, tmp_path: Path, counterpart: str, message: str
) -> None:
    task_dir = tmp_path / "STSBenchmark"
    shutil.copytree(counterpart_dir / "STSBenchmark", task_dir)
    _set_task_json(task_dir, mteb_counterpart=counterpart)
    with pytest.raises(TaskSpecError, match=rf"'STSBenchmark'.*'mteb_counterpart'.*{message}"):
        load_local_tasks(tmp_path)


@pytest.mark.slow
def test_store_records_the_protocol_and_reads_it_back(
    counterpart_dir: Path, minilm: Any, tmp_path: Path
) -> None:
    store = ResultsStore(tmp_path / "results.duckdb")
    # a score stored before protocols were part of the revision (keyed on the directory hash alone) was made
    # under the defaults of its type: it must not be read back as the counterpart protocol's score
    old = TaskScore(
        task="SICK-R",
        task_type="STS",
        languages=["eng"],
        main_score_name="cosine_spearman",
        main_score=0.01,
        split="test",
    )
    model_hash = hash_directory(minilm.path)
    store.register_model(model_hash, minilm.path)
    store.record_scores(
        model_hash,
        [old],
        task_revisions={"SICK-R": hash_directory(counterpart_dir / "SICK-R")},
        mteb_version=current_mteb_version(),
        use_instructions=False,
    )
    args = (minilm.path, counterpart_dir, tmp_path / "out")
    kwargs = {"store": store, "task_names": ["SICK-R"], "use_instructions": False, "embedding_cache": False}
    first = evaluate_with_store(*args, **kwargs)
    again = evaluate_with_store(*args, **kwargs)
    assert first.evaluated == ["SICK-R"] and again.cached == ["SICK-R"]
    assert first.scores["SICK-R"].main_score != old.main_score
    expected = task_protocol(read_task_spec(counterpart_dir / "SICK-R"))
    assert first.scores["SICK-R"].protocol == again.scores["SICK-R"].protocol == expected
    stored = json.loads((tmp_path / "out" / "results" / "SICK-R.json").read_text())
    assert stored["kalm_protocol"] == expected
    summary = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert summary["tasks"]["SICK-R"]["protocol"]["settings"]["max_score"] == 5
