"""Shared flow plumbing: resolving the profile and run directory, and binding task results to the run."""

from __future__ import annotations

from pathlib import Path

from kalm import runtime

runtime.configure()

from kalm.profile import Profile, load_profile  # noqa: E402
from kalm.rundir import RunPaths  # noqa: E402


def resolve(profile: str, run_id: str, runs_dir: str | None) -> tuple[Profile, RunPaths]:
    run = RunPaths.for_run(run_id, Path(runs_dir) if runs_dir else None)
    run.root.mkdir(parents=True, exist_ok=True)
    return load_profile(profile), run


def in_run(task, run: RunPaths):
    """The task with its persisted results (and so its cache) stored inside the run directory."""
    return task.with_options(result_storage=run.results_storage)
