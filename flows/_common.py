"""Shared flow plumbing: resolving the profile and run directory, and binding task results to the run."""

from __future__ import annotations

from pathlib import Path

from kalm import runtime

runtime.configure()

from kalm.profile import Profile, load_profile  # noqa: E402
from kalm.rundir import RunPaths  # noqa: E402


def resolve(
    profile: str,
    run_id: str,
    runs_dir: str | None,
    catalog: str | None = None,
    base_model: str | None = None,
    ray_address: str | None = None,
) -> tuple[Profile, RunPaths]:
    """The profile with the flow's overrides applied, and the run directory (created)."""
    from kalm.settings import get_settings

    resolved = load_profile(profile)
    updates: dict = {"ray_address": ray_address or resolved.ray_address or get_settings().ray_address}
    if catalog:
        updates["catalog"] = catalog
    if base_model:
        model = resolved.train.model.model_copy(update={"base": base_model})
        updates["train"] = resolved.train.model_copy(update={"model": model})
    run = RunPaths.for_run(run_id, Path(runs_dir) if runs_dir else None)
    run.root.mkdir(parents=True, exist_ok=True)
    return resolved.model_copy(update=updates), run


def in_run(task, run: RunPaths):
    """The task with its persisted results (and so its cache) stored inside the run directory."""
    return task.with_options(result_storage=run.results_storage)


def recorded(run: RunPaths, step: str, produced_by: str) -> dict:
    """A step summary recorded by an earlier flow, or a clear error saying which flow makes it."""
    from kalm.rundir import read_steps

    steps = read_steps(run)
    if step not in steps:
        raise FileNotFoundError(
            f"run {run.root.name!r} has no {step!r} step yet: run the {produced_by} flow first"
        )
    return steps[step]


def recorded_trains(run: RunPaths) -> dict[str, dict]:
    from kalm.rundir import read_steps

    trains = {n.removeprefix("train-"): s for n, s in read_steps(run).items() if n.startswith("train-")}
    if not trains:
        raise FileNotFoundError(f"run {run.root.name!r} has no trained checkpoints: run the train flow first")
    return trains
