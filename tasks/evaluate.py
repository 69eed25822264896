"""Pipeline step: score checkpoints with mteb on local evaluation tasks and, when asked, official mteb tasks
(``eval/<model>/``).

Scores go through the results store, so a checkpoint already scored (by content hash) is not re-run; document
embeddings go through the corpus cache, so a corpus is encoded once per model even when scores are re-run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kalm.evaluation import RaySharding, SentenceTransformerEmbedder, TaskSelection
from kalm.hashing import hash_directory
from kalm.profile import Profile
from kalm.results import ResultsStore, evaluate_with_store
from kalm.rundir import RunPaths, record_step
from tasks._prefect import pipeline_task

if TYPE_CHECKING:
    from mteb.abstasks.abstask import AbsTask


def tasks_dir_for(profile: Profile, run: RunPaths) -> Path:
    if profile.evaluate.tasks_dir:
        return Path(profile.evaluate.tasks_dir)
    if profile.demo_data:
        return run.demo_eval_tasks
    raise ValueError(f"profile {profile.name!r}: evaluate.tasks_dir is required without demo_data")


def sharding_for(profile: Profile, ray_address: str | None = None) -> RaySharding | None:
    """The profile's Ray sharding of big encode calls (`evaluate.shard_above`), None when off."""
    if profile.evaluate.shard_above is None:
        return None
    from kalm.settings import get_settings

    return RaySharding(
        threshold=profile.evaluate.shard_above,
        num_shards=profile.evaluate.shards,
        ray_address=ray_address or profile.ray_address or get_settings().ray_address,
    )


def evaluate_model(
    model_path: Path,
    tasks_dir: Path | None,
    output_dir: Path,
    task_names: list[str] | None = None,
    batch_size: int = 32,
    name: str | None = None,
    use_instructions: bool = True,
    *,
    store: ResultsStore | Path | str | None = None,
    stage: str | None = None,
    run_id: str | None = None,
    parents: list[str] | None = None,
    official_tasks: Sequence[AbsTask] = (),
    embedding_cache: bool = True,
    sharding: RaySharding | None = None,
) -> dict:
    """Score one checkpoint through the results store (default ``<state dir>/results.duckdb``).

    The model is registered, tasks with a current stored result (same model hash, task revision, mteb
    version and prompt setting) are read back instead of re-run, and new scores are recorded. Local tasks
    come from `tasks_dir` (None: none), official mteb tasks from `official_tasks`.
    """
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
        embedder_factory=SentenceTransformerEmbedder,
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
    }


def soup_parents(model_path: Path) -> list[str] | None:
    """Content hashes of a soup's ingredients (from its soup.json), for the model registry's lineage."""
    record_file = Path(model_path) / "soup.json"
    if not record_file.is_file():
        return None
    ingredients = [Path(i["path"]) for i in json.loads(record_file.read_text())["ingredients"]]
    return [hash_directory(p) for p in ingredients if p.is_dir()]


def evaluate_step(
    profile: Profile,
    run: RunPaths,
    models: dict[str, str],
    *,
    selection: TaskSelection | None = None,
    sharding: RaySharding | None = None,
) -> dict:
    """Score `models` on the profile's tasks, or on `selection` (local and official tasks from the CLI)."""
    if selection is None:
        selection = TaskSelection(tasks_dir_for(profile, run), profile.evaluate.tasks)
    return record_step(
        run,
        "evaluate",
        {
            name: evaluate_model(
                Path(path),
                selection.tasks_dir,
                run.eval / name,
                selection.local_names,
                profile.evaluate.batch_size,
                name=f"{run.root.name}/{name}",
                use_instructions=profile.evaluate.use_instructions,
                stage=name,
                run_id=run.root.name,
                parents=soup_parents(Path(path)),
                official_tasks=selection.official,
                embedding_cache=profile.evaluate.embedding_cache,
                sharding=sharding if sharding is not None else sharding_for(profile),
            )
            for name, path in models.items()
        },
    )


@pipeline_task("evaluate")
def evaluate_task(profile: dict, run_dir: str, models: dict[str, str], fingerprints: dict[str, str]) -> dict:
    return evaluate_step(Profile.model_validate(profile), RunPaths(Path(run_dir)), models)
