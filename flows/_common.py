"""Shared flow plumbing: opening a run (profile with overrides, run directory, its lock) and binding tasks to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field

from kalm import runtime

runtime.configure()

from kalm.run.lock import run_lock  # noqa: E402
from kalm.run.outputs import step_problem  # noqa: E402
from kalm.run.paths import RunPaths  # noqa: E402
from kalm.run.profile import PROFILES_DIR, Profile, load_profile  # noqa: E402

# The UI's profile field is a choice of configs/*.yaml; a direct call (the CLI, tests) may also pass a path.
ProfileName = Annotated[
    str,
    Field(
        description="profile name in configs/ (or, from the CLI or Python, a path to a profile YAML)",
        json_schema_extra={"enum": sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))},
    ),
]


@contextlib.contextmanager
def open_run(
    profile: str,
    run_id: str | None,
    runs_dir: str | None,
    catalog: str | None = None,
    base_model: str | None = None,
    ray_address: str | None = None,
) -> Iterator[tuple[Profile, RunPaths]]:
    """The profile with the flow's overrides applied (:meth:`Profile.with_overrides`) and the run directory,
    locked for the ``with`` block (a second run on the same directory stops with one line naming the first).

    Without a run id (a run started from the UI with the field left empty) the run gets a fresh one,
    ``<profile>-<UTC time>-<flow run name>``, so two such runs never share a directory.
    """
    from prefect.runtime import flow_run

    resolved = load_profile(profile).with_overrides(catalog, base_model, ray_address)
    name = flow_run.get_name()
    if not run_id:
        run_id = f"{resolved.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}" + (f"-{name}" if name else "")
    run = RunPaths.open(run_id, runs_dir)
    with run_lock(run, flow_run=name):
        yield resolved, run


def in_run(task, run: RunPaths):
    """The task with its persisted results (and so its cache) stored inside the run directory."""
    return task.with_options(result_storage=run.results_storage)


def run_step(task, run: RunPaths, step: str, *args, **kwargs):
    """Call a cached step task; its result is used only while it still stands for the run's files.

    A cache hit whose outputs are gone or changed (or that is not the run's latest record of the step) is
    logged with the reason and the step runs again; later steps then see their inputs' fingerprints and are
    cached or re-run accordingly.
    """
    bound = in_run(task, run)
    result = bound(*args, **kwargs)
    problem = step_problem(run, step, result)
    if problem is None:
        return result
    return rerun(bound, run, step, problem, *args, **kwargs)


def rerun(bound, run: RunPaths, step: str, problem: str, *args, **kwargs):
    """Run ``bound`` again past its cache because of ``problem``; its fresh result must then check out."""
    from prefect import get_run_logger

    get_run_logger().warning("step %s: %s: running it again", step, problem)
    result = bound.with_options(refresh_cache=True)(*args, **kwargs)
    problem = step_problem(run, step, result)
    if problem is not None:
        raise RuntimeError(
            f"step {step} right after it ran: {problem} (is another process writing to {run.root}?)"
        )
    return result
