"""Shared flow plumbing: opening a run (profile with overrides, run directory) and binding tasks to it."""

from __future__ import annotations

from kalm import runtime

runtime.configure()

from kalm.run.paths import RunPaths  # noqa: E402
from kalm.run.profile import Profile, load_profile  # noqa: E402


def open_run(
    profile: str,
    run_id: str,
    runs_dir: str | None,
    catalog: str | None = None,
    base_model: str | None = None,
    ray_address: str | None = None,
) -> tuple[Profile, RunPaths]:
    """The profile with the flow's overrides applied (:meth:`Profile.with_overrides`), and the run directory."""
    resolved = load_profile(profile).with_overrides(catalog, base_model, ray_address)
    return resolved, RunPaths.open(run_id, runs_dir)


def in_run(task, run: RunPaths):
    """The task with its persisted results (and so its cache) stored inside the run directory."""
    return task.with_options(result_storage=run.results_storage)
