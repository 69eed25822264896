"""Pipeline step: score checkpoints with mteb on local evaluation tasks (``eval/<model>/``).

Scores go through the results store, so a checkpoint already scored (by content hash) is not re-run.
"""

from __future__ import annotations

import json
from pathlib import Path

from kalm.evaluation import SentenceTransformerEmbedder
from kalm.hashing import hash_directory
from kalm.profile import Profile
from kalm.results import ResultsStore, evaluate_with_store
from kalm.rundir import RunPaths, record_step
from tasks._prefect import pipeline_task


def tasks_dir_for(profile: Profile, run: RunPaths) -> Path:
    if profile.evaluate.tasks_dir:
        return Path(profile.evaluate.tasks_dir)
    if profile.demo_data:
        return run.demo_eval_tasks
    raise ValueError(f"profile {profile.name!r}: evaluate.tasks_dir is required without demo_data")


def evaluate_model(
    model_path: Path,
    tasks_dir: Path,
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
) -> dict:
    """Score one checkpoint through the results store (default ``<state dir>/results.duckdb``).

    The model is registered, tasks with a current stored result (same model hash, task revision, mteb
    version and prompt setting) are read back instead of re-run, and new scores are recorded.
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


def evaluate_step(profile: Profile, run: RunPaths, models: dict[str, str]) -> dict:
    tasks_dir = tasks_dir_for(profile, run)
    return record_step(
        run,
        "evaluate",
        {
            name: evaluate_model(
                Path(path),
                tasks_dir,
                run.eval / name,
                profile.evaluate.tasks,
                profile.evaluate.batch_size,
                name=f"{run.root.name}/{name}",
                stage=name,
                run_id=run.root.name,
                parents=soup_parents(Path(path)),
            )
            for name, path in models.items()
        },
    )


@pipeline_task("evaluate")
def evaluate_task(profile: dict, run_dir: str, models: dict[str, str], fingerprints: dict[str, str]) -> dict:
    return evaluate_step(Profile.model_validate(profile), RunPaths(Path(run_dir)), models)
