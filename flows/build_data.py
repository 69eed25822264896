"""The ``build-data`` flow: collect → dedup → decontaminate → balance."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._common import in_run, resolve
from kalm.hashing import hash_directory
from kalm.profile import Profile
from kalm.rundir import RunPaths
from tasks.balance import balance_task
from tasks.collect import collect_sources_concurrently, collect_task, prepare_inputs
from tasks.decontaminate import decontaminate_task
from tasks.dedup import dedup_task
from tasks.evaluate import tasks_dir_for


def build_data_steps(profile: Profile, run: RunPaths) -> dict[str, dict]:
    """Run the data steps; returns each step's summary by name (collect, dedup, decontaminate, balance)."""
    profile_json = profile.model_dump(mode="json")
    fingerprints = prepare_inputs(profile, run)
    if profile.ray_address:
        collected = in_run(collect_task, run)(profile_json, str(run.root), fingerprints)
    else:
        collected = collect_sources_concurrently(profile, run, fingerprints, lambda task: in_run(task, run))
    deduped = in_run(dedup_task, run)(
        profile.dedup.model_dump(mode="json"), str(run.root), collected["fingerprint"]
    )
    eval_tasks = profile.decontaminate.tasks_dir or tasks_dir_for(profile, run)
    clean = in_run(decontaminate_task, run)(
        profile_json, str(run.root), deduped["fingerprint"], hash_directory(eval_tasks)
    )
    balanced = in_run(balance_task, run)(
        profile.balance.model_dump(mode="json"), str(run.root), clean["fingerprint"]
    )
    return {"collect": collected, "dedup": deduped, "decontaminate": clean, "balance": balanced}


@flow(name="build-data")
def build_data(
    profile: str = "demo", run_id: str = "demo", runs_dir: str | None = None, catalog: str | None = None
) -> dict:
    """Collect the catalog, remove duplicates and eval leaks, balance categories into ``runs/<run_id>/data``.

    Args:
        profile: profile name in configs/ (e.g. `demo`) or a path to a profile YAML.
        run_id: name of the run directory under the runs folder; re-using it resumes and reuses cached steps.
        runs_dir: parent folder of run directories (default: `runs/` in the project, or KALM_RUNS_DIR).
        catalog: catalog YAML to collect instead of the profile's.
    """
    resolved, run = resolve(profile, run_id, runs_dir, catalog=catalog)
    data = build_data_steps(resolved, run)
    get_run_logger().info("balanced data: %s", run.balanced)
    return data
