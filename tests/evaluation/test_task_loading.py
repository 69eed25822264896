"""Loading local task directories: structure per type, name filtering and clear errors on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kalm.evaluation import TaskScore, load_local_tasks, summarize_scores
from kalm.evaluation.task_spec import TaskSpecError
from kalm.hashing import hash_directory


def _copy(small_tasks_dir: Path, name: str, tmp_path: Path) -> Path:
    dst = tmp_path / "tasks" / name
    shutil.copytree(small_tasks_dir / name, dst)
    return dst


def _edit_task_json(task_dir: Path, **changes: object) -> None:
    path = task_dir / "task.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def test_loads_every_type_with_metadata(small_tasks_dir: Path) -> None:
    tasks = {t.metadata.name: t for t in load_local_tasks(small_tasks_dir)}
    assert {t.metadata.type for t in tasks.values()} == {
        "STS",
        "Retrieval",
        "Classification",
        "Clustering",
        "PairClassification",
        "Reranking",
    }
    sts = tasks["STSBenchmark"]
    assert sts.metadata.eval_splits == ["test"]
    assert sts.metadata.eval_langs == ["eng-Latn"]
    assert sts.metadata.main_score == "cosine_spearman"
    assert sts.metadata.prompt == "Retrieve semantically similar text"
    assert (sts.min_score, sts.max_score) == (0, 5)
    assert tasks["STSBenchmarkZh"].metadata.eval_langs == ["cmn-Hans"]
    assert tasks["TrecQA"].metadata.main_score == "map_at_1000"


def test_loaded_data_structures(small_tasks_dir: Path) -> None:
    tasks = {t.metadata.name: t for t in load_local_tasks(small_tasks_dir)}
    for task in tasks.values():
        task.load_data()
    retrieval = tasks["SciFact"].dataset["default"]["test"]
    assert len(retrieval["queries"]) == 20
    assert set(retrieval["relevant_docs"]) == set(retrieval["queries"]["id"])
    corpus_ids = set(retrieval["corpus"]["id"])
    assert all(d in corpus_ids for docs in retrieval["relevant_docs"].values() for d in docs)
    rerank = tasks["TrecQA"].dataset["default"]["test"]
    assert set(rerank["top_ranked"]) == set(rerank["queries"]["id"])
    assert all(set(rerank["top_ranked"][q]) == set(rerank["relevant_docs"][q]) for q in rerank["top_ranked"])
    clf = tasks["Banking77Classification"].dataset["default"]
    assert set(clf) == {"train", "test"} and set(clf["test"]["label"]) <= set(clf["train"]["label"])


def test_names_filter_and_order(small_tasks_dir: Path) -> None:
    tasks = load_local_tasks(small_tasks_dir, ["MSRP", "STSBenchmark"])
    assert [t.metadata.name for t in tasks] == ["MSRP", "STSBenchmark"]


def test_unknown_name_is_an_error(small_tasks_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"NoSuchTask.*available: .*STSBenchmark"):
        load_local_tasks(small_tasks_dir, ["NoSuchTask"])


@pytest.mark.parametrize("field", ["type", "main_score", "instruction", "languages", "name", "split"])
def test_missing_field_names_task_and_field(small_tasks_dir: Path, tmp_path: Path, field: str) -> None:
    task_dir = _copy(small_tasks_dir, "MSRP", tmp_path)
    _edit_task_json(task_dir, **{field: None})
    with pytest.raises(ValueError, match=rf"'MSRP'.*field '{field}'.*missing"):
        load_local_tasks(task_dir.parent)


def test_unknown_type_names_task_and_field(small_tasks_dir: Path, tmp_path: Path) -> None:
    task_dir = _copy(small_tasks_dir, "MSRP", tmp_path)
    _edit_task_json(task_dir, type="BitextMining")
    with pytest.raises(TaskSpecError, match=r"'MSRP'.*field 'type'.*'BitextMining'"):
        load_local_tasks(task_dir.parent)


def test_sts_needs_score_range(small_tasks_dir: Path, tmp_path: Path) -> None:
    task_dir = _copy(small_tasks_dir, "STSBenchmark", tmp_path)
    _edit_task_json(task_dir, max_score=None)
    with pytest.raises(ValueError, match=r"'STSBenchmark'.*field 'max_score'"):
        load_local_tasks(task_dir.parent)


def test_missing_data_file_names_file(small_tasks_dir: Path, tmp_path: Path) -> None:
    task_dir = _copy(small_tasks_dir, "SciFact", tmp_path)
    (task_dir / "qrels" / "test.tsv").unlink()
    with pytest.raises(ValueError, match=r"'SciFact'.*file 'qrels/test.tsv'.*missing"):
        load_local_tasks(task_dir.parent)


def test_bad_row_names_file_line_and_field(small_tasks_dir: Path, tmp_path: Path) -> None:
    task_dir = _copy(small_tasks_dir, "MSRP", tmp_path)
    lines = (task_dir / "test.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    del row["label"]
    lines[2] = json.dumps(row)
    (task_dir / "test.jsonl").write_text("\n".join(lines) + "\n")
    (task,) = load_local_tasks(task_dir.parent)
    with pytest.raises(ValueError, match=r"'MSRP'.*file 'test.jsonl' line 3.*'label'"):
        task.load_data()


def test_unknown_language_script(small_tasks_dir: Path, tmp_path: Path) -> None:
    task_dir = _copy(small_tasks_dir, "MSRP", tmp_path)
    _edit_task_json(task_dir, languages=["xyz"])
    with pytest.raises(ValueError, match=r"'MSRP'.*field 'languages'.*'xyz'"):
        load_local_tasks(task_dir.parent)


def test_hash_directory_is_content_based(small_tasks_dir: Path, tmp_path: Path) -> None:
    a = _copy(small_tasks_dir, "MSRP", tmp_path / "a")
    b = _copy(small_tasks_dir, "MSRP", tmp_path / "b")
    assert hash_directory(a) == hash_directory(b) == hash_directory(small_tasks_dir / "MSRP")
    (b / "extra.txt").write_text("x")
    assert hash_directory(a) != hash_directory(b)


def test_summarize_scores_mtk_mty() -> None:
    def s(task: str, kind: str, value: float) -> TaskScore:
        return TaskScore(
            task=task, task_type=kind, languages=["eng"], main_score_name="m", main_score=value, split="test"
        )

    summary = summarize_scores([s("a", "STS", 0.8), s("b", "STS", 0.6), s("c", "Retrieval", 0.4)])
    assert summary["mean_over_tasks"] == pytest.approx(0.6)
    assert summary["per_type"] == {"Retrieval": pytest.approx(0.4), "STS": pytest.approx(0.7)}
    assert summary["mean_over_task_types"] == pytest.approx(0.55)
    assert summarize_scores({})["mean_over_tasks"] is None
