"""Pipeline step: score checkpoints with mteb on local evaluation tasks (``eval/<model>/``)."""

from __future__ import annotations

from pathlib import Path

from kalm.evaluation import SentenceTransformerEmbedder, evaluate_embedder, summarize_scores
from kalm.profile import Profile
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
) -> dict:
    embedder = SentenceTransformerEmbedder(model_path, name=name)
    scores = evaluate_embedder(
        embedder,
        tasks_dir,
        output_dir,
        task_names=task_names,
        batch_size=batch_size,
        use_instructions=use_instructions,
    )
    return {
        "model": str(model_path),
        "scores": {k: v.model_dump(mode="json") for k, v in scores.items()},
        "summary": summarize_scores(scores),
    }


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
            )
            for name, path in models.items()
        },
    )


@pipeline_task("evaluate")
def evaluate_task(profile: dict, run_dir: str, models: dict[str, str], fingerprints: dict[str, str]) -> dict:
    return evaluate_step(Profile.model_validate(profile), RunPaths(Path(run_dir)), models)
