"""Which texts get the KaLM-V2 instruction, per task type, observed through what the embedder receives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kalm.evaluation import evaluate_embedder, format_query

from .conftest import RecordingEmbedder


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _instruction(task_dir: Path) -> str:
    return json.loads((task_dir / "task.json").read_text(encoding="utf-8"))["instruction"]


def _run(recorder: RecordingEmbedder, tasks_dir: Path, name: str, tmp_path: Path) -> list[str]:
    evaluate_embedder(recorder, tasks_dir, tmp_path / name, task_names=[name], batch_size=8)
    return recorder.texts


def test_query_template_exact() -> None:
    assert format_query("Find it", "q") == "Instruct: Find it \n Query: q"
    assert format_query("", "q") == "q"


@pytest.mark.parametrize("name", ["STSBenchmark", "MSRP"])
def test_symmetric_tasks_instruct_both_sides(
    recorder: RecordingEmbedder, small_tasks_dir: Path, tmp_path: Path, name: str
) -> None:
    task_dir = small_tasks_dir / name
    prefix = format_query(_instruction(task_dir), "")
    seen = _run(recorder, small_tasks_dir, name, tmp_path)
    rows = _rows(task_dir / "test.jsonl")
    expected = {prefix + r["sentence1"] for r in rows} | {prefix + r["sentence2"] for r in rows}
    assert set(seen) == expected
    assert all(t.startswith(prefix) for t in seen)


@pytest.mark.parametrize("name", ["Banking77Classification", "TwentyNewsgroupsClustering"])
def test_single_text_tasks_are_queries(
    recorder: RecordingEmbedder, small_tasks_dir: Path, tmp_path: Path, name: str
) -> None:
    task_dir = small_tasks_dir / name
    prefix = format_query(_instruction(task_dir), "")
    seen = _run(recorder, small_tasks_dir, name, tmp_path)
    assert seen and all(t.startswith(prefix) for t in seen)
    test_texts = {prefix + r["text"] for r in _rows(task_dir / "test.jsonl")}
    assert test_texts <= set(seen)


def test_retrieval_queries_instructed_documents_bare(
    recorder: RecordingEmbedder, small_tasks_dir: Path, tmp_path: Path
) -> None:
    task_dir = small_tasks_dir / "SciFact"
    prefix = format_query(_instruction(task_dir), "")
    seen = set(_run(recorder, small_tasks_dir, "SciFact", tmp_path))
    queries = {prefix + q["text"] for q in _rows(task_dir / "queries.jsonl")}
    # mteb joins title and body with a space for the document side
    docs = {(d["title"] + " " + d["text"]).strip() for d in _rows(task_dir / "corpus.jsonl")}
    assert queries <= seen
    assert docs <= seen
    assert seen == queries | docs
    assert not any(d.startswith("Instruct:") for d in docs)


def test_reranking_queries_instructed_candidates_bare(
    recorder: RecordingEmbedder, small_tasks_dir: Path, tmp_path: Path
) -> None:
    task_dir = small_tasks_dir / "TrecQA"
    prefix = format_query(_instruction(task_dir), "")
    seen = set(_run(recorder, small_tasks_dir, "TrecQA", tmp_path))
    rows = _rows(task_dir / "test.jsonl")
    queries = {prefix + r["query"] for r in rows}
    candidates = {t.strip() for r in rows for t in r["positive"] + r["negative"]}
    assert seen == queries | candidates


def test_instructions_can_be_disabled(
    recorder: RecordingEmbedder, small_tasks_dir: Path, tmp_path: Path
) -> None:
    evaluate_embedder(recorder, small_tasks_dir, tmp_path, task_names=["SciFact"], use_instructions=False)
    queries = {q["text"] for q in _rows(small_tasks_dir / "SciFact" / "queries.jsonl")}
    assert queries <= set(recorder.texts)
    assert not any(t.startswith("Instruct:") for t in recorder.texts)
    assert json.loads((tmp_path / "scores.json").read_text())["use_instructions"] is False
