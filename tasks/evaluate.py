"""Pipeline step: score checkpoints with mteb on the profile's evaluation tasks, or on a request of local and
official mteb tasks (``eval/<model>/``).

Two steps: the run's checkpoints (recorded as the run's ``evaluate`` step, each model registered with its
stage, the run and a soup's ingredients), and one outside model folder (not part of the run's record). Scores
go through the results store, so a model already scored (by content hash) is not re-run; document embeddings
go through the corpus cache, so a corpus is encoded once per model even when scores are re-run.
"""

from __future__ import annotations

from pathlib import Path

from kalm.evaluation import TaskRequest, TaskSelection
from kalm.results import evaluate_model, soup_parents
from kalm.run.paths import RunPaths
from kalm.run.profile import Profile
from kalm.run.steps import record_step
from tasks._artifacts import artifact_key, publish_table, score_rows
from tasks._prefect import pipeline_task


def evaluate_step(
    profile: Profile,
    run: RunPaths,
    models: dict[str, str],
    request: TaskRequest | None = None,
    store: str | None = None,
) -> dict:
    """Score the run's ``models`` (name → folder) on the profile's tasks, or on ``request``."""
    if request is None and not profile.evaluate.benchmarks:
        selection = TaskSelection(profile.eval_tasks_dir(run), profile.evaluate.tasks)
    else:
        selection = (request or profile.evaluation_request(run)).resolve()
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
                store=store,
                stage=name,
                run_id=run.root.name,
                parents=soup_parents(Path(path)),
                official_tasks=selection.official,
                embedding_cache=profile.evaluate.embedding_cache,
                sharding=profile.sharding(),
            )
            for name, path in models.items()
        },
        outputs=[run.eval / name for name in models],
    )


def score_model_step(
    profile: Profile, model: Path, output: Path, request: TaskRequest, store: str | None = None
) -> dict:
    """Score one model folder from outside the run (registered under its folder name, no run record)."""
    selection = request.resolve()
    return evaluate_model(
        model,
        selection.tasks_dir,
        output,
        selection.local_names,
        use_instructions=profile.evaluate.use_instructions,
        store=store,
        official_tasks=selection.official,
        embedding_cache=profile.evaluate.embedding_cache,
        sharding=profile.sharding(),
    )


@pipeline_task("evaluate")
def evaluate_task(
    profile: dict,
    run_dir: str,
    models: dict[str, str],
    fingerprints: dict[str, str],
    request: dict | None = None,
    store: str | None = None,
) -> dict:
    summary = evaluate_step(
        Profile.model_validate(profile),
        RunPaths(Path(run_dir)),
        models,
        TaskRequest.model_validate(request) if request is not None else None,
        store,
    )
    run_id = Path(run_dir).name
    publish_table(score_rows(summary), artifact_key("scores", run_id), f"main scores ×100 of run {run_id}")
    return summary


@pipeline_task("score-model", cached=False)
def score_model_task(profile: dict, model: str, output: str, request: dict, store: str | None = None) -> dict:
    """Not cached by Prefect: the results store already answers a model it has scored."""
    summary = score_model_step(
        Profile.model_validate(profile), Path(model), Path(output), TaskRequest.model_validate(request), store
    )
    name = Path(model).name
    publish_table(score_rows({name: summary}), artifact_key("scores", name), f"main scores ×100 of {model}")
    return summary
