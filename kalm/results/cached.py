"""Store-backed evaluation: run mteb only for the tasks the store has no current result for.

The cache key is (model content hash, task, task revision, mteb version, prompt setting). The model hash is
computed before the model is loaded, so a full cache hit neither loads weights nor encodes a single text and
takes as long as hashing the folder. Cached results are written back into `output_dir` (mteb's JSON per
task and ``scores.json``), so callers see the same files whether a task ran or not.

Tasks are local task directories, official mteb tasks (`official_tasks`, resolved by name beforehand), or
both. Each task's score is recorded as soon as it finishes, so a long benchmark stopped half-way (an
official dataset that cannot be downloaded, a lost machine) keeps what it computed. Below the store sits the
corpus-embedding cache (``embedding_cache``): a forced re-evaluation, or another store, does not re-encode a
corpus the same model has already encoded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kalm.evaluation import (
    CorpusEmbeddingCache,
    RaySharding,
    TaskScore,
    TextEmbedder,
    evaluate_tasks,
    load_local_tasks,
    open_corpus_cache,
    summarize_scores,
)
from kalm.hashing import hash_directory
from kalm.results.store import ResultsStore, open_store
from kalm.results.task_refs import current_mteb_version, local_task_refs, official_task_refs
from training.soup import soup_ingredients

if TYPE_CHECKING:
    from mteb.abstasks.abstask import AbsTask

logger = logging.getLogger(__name__)

EmbedderFactory = Callable[..., TextEmbedder]


def _default_factory(path: Path, *, name: str | None = None) -> TextEmbedder:
    from kalm.evaluation import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(path, name=name)


@dataclass
class StoredEvaluation:
    """What one store-backed evaluation produced: scores in task order, and which tasks actually ran."""

    model_hash: str
    scores: dict[str, TaskScore]
    cached: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return summarize_scores(self.scores)


def evaluate_with_store(
    model_path: Path | str,
    tasks_dir: Path | str | None,
    output_dir: Path | str,
    *,
    store: ResultsStore | Path | str | None = None,
    task_names: Sequence[str] | None = None,
    official_tasks: Sequence[AbsTask] = (),
    batch_size: int = 32,
    name: str | None = None,
    use_instructions: bool = True,
    stage: str | None = None,
    run_id: str | None = None,
    parents: Sequence[str] | None = None,
    embedder_factory: EmbedderFactory | None = None,
    model_hash: str | None = None,
    embedding_cache: CorpusEmbeddingCache | Path | str | bool = True,
    sharding: RaySharding | None = None,
) -> StoredEvaluation:
    """Register the model, reuse current stored scores, evaluate the rest with mteb and record them.

    Local tasks are `task_names` of `tasks_dir` (all of them when None; none when `tasks_dir` is None), then
    `official_tasks` in their order. `model_hash` may be passed when the caller already hashed the folder (the
    re-evaluation job does). `embedding_cache`: True = ``<state dir>/embeddings/eval``, a path, or False.
    """
    results_store = open_store(store)
    model_path, output_dir = Path(model_path), Path(output_dir)
    model_hash = model_hash or hash_directory(model_path)
    results_store.register_model(model_hash, model_path, stage=stage, run_id=run_id, parents=parents)
    local_refs = local_task_refs(tasks_dir, task_names) if tasks_dir is not None else []
    refs = local_refs + official_task_refs(official_tasks)
    names = [ref.name for ref in refs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"task name(s) {duplicates} selected twice (a local and an official task?)")
    mteb_version = current_mteb_version()
    cached = results_store.lookup(
        model_hash, refs, mteb_version=mteb_version, use_instructions=use_instructions
    )
    to_run = [ref.name for ref in refs if ref.name not in cached]
    fresh: dict[str, TaskScore] = {}
    if to_run:
        embedder = (embedder_factory or _default_factory)(model_path, name=name)
        if embedder.revision != model_hash:
            raise RuntimeError(f"{model_path} changed while being evaluated (hash {embedder.revision[:12]})")
        local_names = {ref.name for ref in local_refs}
        revisions = {ref.name: ref.revision for ref in refs}

        def record(score: TaskScore, result_file: Path) -> None:
            result = json.loads(result_file.read_text(encoding="utf-8"))
            revision = revisions[score.task]
            if score.task in local_names and result.get("dataset_revision"):
                # what mteb actually saw, should a task directory have changed during the run
                revision = result["dataset_revision"]
            results_store.record_scores(
                model_hash,
                [score],
                task_revisions={score.task: revision},
                mteb_version=mteb_version,
                use_instructions=use_instructions,
                results={score.task: result},
            )

        local_to_run = [n for n in to_run if n in local_names]
        tasks = load_local_tasks(Path(tasks_dir), local_to_run) if local_to_run and tasks_dir else []
        tasks += [task for task in official_tasks if task.metadata.name in to_run]
        fresh = evaluate_tasks(
            embedder,
            tasks,
            output_dir,
            batch_size,
            use_instructions=use_instructions,
            corpus_cache=open_corpus_cache(embedding_cache),
            sharding=sharding,
            on_result=record,
        )
    else:
        logger.info("%s: all %d task(s) cached in %s", model_path, len(refs), results_store.path)

    scores = {ref.name: fresh[ref.name] if ref.name in fresh else cached[ref.name].score for ref in refs}
    _write_outputs(output_dir, model_path, model_hash, use_instructions, scores, cached, to_run)
    return StoredEvaluation(model_hash, scores, cached=[n for n in scores if n in cached], evaluated=to_run)


def evaluate_model(
    model_path: Path,
    tasks_dir: Path | None,
    output_dir: Path,
    task_names: Sequence[str] | None = None,
    batch_size: int = 32,
    name: str | None = None,
    use_instructions: bool = True,
    *,
    store: ResultsStore | Path | str | None = None,
    stage: str | None = None,
    run_id: str | None = None,
    parents: Sequence[str] | None = None,
    official_tasks: Sequence[AbsTask] = (),
    embedding_cache: bool = True,
    sharding: RaySharding | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_with_store` of a sentence-transformers folder, as the JSON-able summary a step records:
    model, model_hash, scores (per task), summary (MTK / MTY), which tasks were cached or evaluated, and the
    wall time it took."""
    started = time.perf_counter()
    result = evaluate_with_store(
        model_path,
        tasks_dir,
        output_dir,
        store=store,
        task_names=task_names,
        batch_size=batch_size,
        name=name,
        use_instructions=use_instructions,
        stage=stage,
        run_id=run_id,
        parents=parents,
        official_tasks=official_tasks,
        embedding_cache=embedding_cache,
        sharding=sharding,
    )
    return {
        "model": str(model_path),
        "model_hash": result.model_hash,
        "scores": {k: v.model_dump(mode="json") for k, v in result.scores.items()},
        "summary": result.summary(),
        "cached": result.cached,
        "evaluated": result.evaluated,
        "wall_s": round(time.perf_counter() - started, 3),
    }


def soup_parents(model_path: Path) -> list[str] | None:
    """Content hashes of a soup's ingredients, for the model registry's lineage (None: not a soup)."""
    ingredients = soup_ingredients(Path(model_path))
    return None if ingredients is None else [hash_directory(p) for p in ingredients if p.is_dir()]


def _write_outputs(
    output_dir: Path,
    model_path: Path,
    model_hash: str,
    use_instructions: bool,
    scores: dict[str, TaskScore],
    cached: dict[str, Any],
    evaluated: list[str],
) -> None:
    """Cached mteb JSON back into ``results/`` and a ``scores.json`` covering every task, ran or cached."""
    results_dir = output_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    for task, stored in cached.items():
        if stored.result_json is not None:
            (results_dir / f"{task}.json").write_text(
                json.dumps(stored.result_json, indent=2, ensure_ascii=False), encoding="utf-8"
            )
    summary = {
        "model": {"name": model_path.name, "path": str(model_path), "revision": model_hash},
        "use_instructions": use_instructions,
        "cached": [t for t in scores if t in cached],
        "evaluated": evaluated,
        "tasks": {task: score.model_dump() for task, score in scores.items()},
        "summary": summarize_scores(scores),
    }
    (output_dir / "scores.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8"
    )
