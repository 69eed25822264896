"""Greedy soup fed by the results store: candidates ranked by stored dev scores, trials scored and cached."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from kalm.evaluation import TaskScore
from kalm.hashing import hash_directory
from kalm.results import ResultsStore, current_mteb_version, dev_scorer, local_task_refs, stored_dev_scores
from tests.results.conftest import CountingEmbedder, linked_copy
from training.soup import greedy_soup


def _checkpoint(path: Path, value: float) -> Path:
    path.mkdir(parents=True)
    save_file(
        {"w": torch.full((4, 3), value), "b": torch.full((3,), -value)}, str(path / "model.safetensors")
    )
    (path / "config.json").write_text("{}")
    return path


def _record(store: ResultsStore, path: Path, tasks_dir: Path, value: float) -> None:
    refs = local_task_refs(tasks_dir, ["STSBenchmark"])
    score = TaskScore(
        task="STSBenchmark", task_type="STS", languages=["eng"], main_score_name="cosine_spearman",
        main_score=value, split="test",
    )  # fmt: skip
    store.register_model(hash_directory(path), path, stage="finetune")
    store.record_scores(
        hash_directory(path),
        [score],
        task_revisions={r.name: r.revision for r in refs},
        mteb_version=current_mteb_version(),
        use_instructions=True,
    )


def test_greedy_soup_ranks_candidates_by_stored_scores(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.duckdb")
    a, b, c = (_checkpoint(tmp_path / n, v) for n, v in (("a", 1.0), ("b", 3.0), ("c", 20.0)))
    _record(store, a, tiny_tasks_dir, 0.70)
    _record(store, b, tiny_tasks_dir, 0.72)  # c has no stored score: greedy soup scores it itself
    stored = stored_dev_scores([a, b, c], tiny_tasks_dir, ["STSBenchmark"], store=store)
    assert stored == {a: 0.70, b: 0.72}

    scored: list[Path] = []

    def dev_score(path: Path) -> float:  # deterministic: closeness of w to 2.0 (the a+b soup hits it)
        scored.append(path)
        return 1.0 - abs(float(load_file(str(path / "model.safetensors"))["w"].mean()) - 2.0) / 10

    out, chosen = greedy_soup([a, b, c], dev_score, tmp_path / "soup", candidate_scores=stored)
    assert chosen == [b, a]  # b (0.72) first, a improves it, c (0.1 alone) is ranked last and rejected
    assert scored[0] == c and len(scored) == 3  # c once for its own score, then two trials
    assert torch.allclose(load_file(str(out / "model.safetensors"))["w"], torch.full((4, 3), 2.0))


def test_dev_scorer_evaluates_once_then_reads_the_store(
    minilm_path: Path, tiny_tasks_dir: Path, tmp_path: Path, counting: type[CountingEmbedder]
) -> None:
    store = ResultsStore(tmp_path / "results.duckdb")
    model = linked_copy(minilm_path, tmp_path / "candidate")
    score = dev_scorer(tiny_tasks_dir, ["STSBenchmark"], store=store, embedder_factory=counting)
    first = score(model)
    assert counting.constructed == 1 and 0.5 < first <= 1.0
    assert score(model) == first and counting.constructed == 1
    assert stored_dev_scores([model], tiny_tasks_dir, ["STSBenchmark"], store=store) == {model: first}
