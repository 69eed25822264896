"""The ``evaluate`` flow: score a run's checkpoints with mteb on the profile's evaluation tasks, or on the
local and official tasks asked for, or one outside model folder (``kalm evaluate`` runs this flow)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows._common import ProfileName, open_run, run_step
from kalm.hashing import hash_directory
from kalm.run.paths import RunPaths
from kalm.run.profile import Profile
from kalm.run.steps import read_steps, recorded_trains
from tasks.evaluate import evaluate_task, score_model_task


def evaluate_steps(
    profile: Profile,
    run: RunPaths,
    trains: dict[str, dict],
    soup: dict | None,
    request: dict | None = None,
    store: str | None = None,
) -> dict:
    """Score the checkpoints ``profile.evaluate.models`` names (base, pretrain, every finetune seed, soup)."""
    wanted = set(profile.evaluate.models)
    candidates = dict(trains) | ({"soup": soup} if soup else {})
    base = profile.train.model.base
    if "base" in wanted and base:
        candidates["base"] = {"checkpoint": base, "fingerprint": hash_directory(Path(base))}
    chosen = {name: step for name, step in candidates.items() if name.split("-")[0] in wanted}
    return run_step(
        evaluate_task,
        run,
        "evaluate",
        profile.model_dump(mode="json"),
        str(run.root),
        {name: step["checkpoint"] for name, step in chosen.items()},
        {name: step["fingerprint"] for name, step in chosen.items()},
        request,
        store,
    )


@flow(name="evaluate")
def evaluate(
    run_id: str,
    profile: ProfileName = "demo",
    runs_dir: str | None = None,
    model: str | None = None,
    output: str | None = None,
    tasks_dir: str | None = None,
    tasks: list[str] | None = None,
    benchmarks: list[str] | None = None,
    use_instructions: bool | None = None,
    store: str | None = None,
    embedding_cache: bool | None = None,
    shard_above: int | None = None,
    shards: int | None = None,
    ray_address: str | None = None,
) -> dict:
    """Score the checkpoints of ``runs/<run_id>`` (pre-train, fine-tunes, soup), or one ``model`` folder.

    Args:
        profile: profile name in configs/ (e.g. `demo`) or a path to a profile YAML.
        run_id: name of the run directory under the runs folder.
        runs_dir: parent folder of run directories (default: `runs/` in the project, or KALM_RUNS_DIR).
        model: a sentence-transformers folder to score instead of the run's checkpoints (not recorded in the run).
        output: where the model's mteb result JSON goes (default: `eval/<model folder name>` of the run).
        tasks_dir: local tasks folder (the eval layout) instead of the profile's.
        tasks: task names: a local task of the tasks folder if one has the name, else an official mteb task.
        benchmarks: official mteb benchmarks by name, e.g. `MTEB(eng, v1)` (needs the hub or its cache).
        use_instructions: KaLM instructions on queries (default: the profile's).
        store: results DuckDB (default: `<state dir>/results.duckdb`).
        embedding_cache: reuse document embeddings in `<state dir>/embeddings/eval` (default: the profile's).
        shard_above: encode calls of more texts than this run as Ray tasks (default: the profile's).
        shards: Ray tasks per sharded encode call (default: the profile's).
        ray_address: Ray for sharded encoding (`auto`, `ray://host:port`; default: KALM_RAY_ADDRESS, else local).
    """
    with open_run(profile, run_id, runs_dir, ray_address=ray_address) as (resolved, run):
        resolved = resolved.with_evaluation(
            use_instructions=use_instructions,
            embedding_cache=embedding_cache,
            shard_above=shard_above,
            shards=shards,
        )
        custom = model is not None or tasks_dir is not None or bool(tasks) or bool(benchmarks)
        request = resolved.task_request(run, tasks_dir, tasks, benchmarks, one_model=model is not None)
        if model is not None:
            out = output or str(run.eval / Path(model).name)
            summary = score_model_task(
                resolved.model_dump(mode="json"), model, out, request.model_dump(mode="json"), store
            )
            return {Path(model).name: summary}
        steps = read_steps(run)
        return evaluate_steps(
            resolved,
            run,
            recorded_trains(run),
            steps.get("soup"),
            request.model_dump(mode="json") if custom else None,
            store,
        )
