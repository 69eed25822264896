"""The ``build-data`` flow: collect → dedup → decontaminate → balance (all of them, or the ``steps`` asked for).

Collection fans out here: every source is its own cached task, submitted together so they run concurrently,
and a re-run re-collects only the sources whose input or config changed; with a Ray address the whole catalog
is one task that runs the sources as Ray tasks. A step that is not asked for but is needed upstream of one
that is must already be recorded in the run (``kalm collect`` before ``kalm dedup``).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from data_catalog.collect import SourceManifest, raise_failures
from flows._common import ProfileName, in_run, open_run, rerun, run_step
from kalm.hashing import hash_directory
from kalm.run.inputs import prepare_inputs
from kalm.run.outputs import step_problem
from kalm.run.paths import RunPaths
from kalm.run.profile import Profile
from kalm.run.steps import recorded
from tasks.balance import balance_task
from tasks.collect import collect_source_task, collect_summary_task, collect_task
from tasks.decontaminate import decontaminate_task
from tasks.dedup import dedup_task, split_config

DATA_STEPS = ("collect", "dedup", "decontaminate", "balance")


def build_data_steps(
    profile: Profile, run: RunPaths, steps: list[str] | None = None, sources: list[str] | None = None
) -> dict[str, dict]:
    """Run the data steps (default: all) in order; returns each run step's summary by name.

    ``sources`` limits collection to those sources (the summary then covers only them).
    """
    wanted = list(steps or DATA_STEPS)
    unknown = sorted(set(wanted) - set(DATA_STEPS))
    if unknown:
        raise ValueError(f"unknown data step(s) {unknown}: choose from {', '.join(DATA_STEPS)}")
    profile_json = profile.model_dump(mode="json")
    done: dict[str, dict] = {}

    def upstream(name: str) -> str:
        return (done[name] if name in done else recorded(run, name, f"the {name} step"))["fingerprint"]

    if "collect" in wanted:
        fingerprints = prepare_inputs(profile, run)
        if sources:
            catalog = profile.resolve_catalog(run).catalog
            fingerprints = {catalog.source(name).name: fingerprints[name] for name in sources}
        if profile.ray_address:
            done["collect"] = run_step(
                collect_task, run, "collect", profile_json, str(run.root), fingerprints, sources
            )
        else:
            done["collect"] = collect_sources_concurrently(profile_json, run, fingerprints)
    if "dedup" in wanted:
        recipe, execution = split_config(profile.dedup)
        done["dedup"] = run_step(
            dedup_task, run, "dedup", recipe, str(run.root), upstream("collect"), execution
        )
    if "decontaminate" in wanted:
        local_tasks = profile.decontamination_tasks_dir(run)
        eval_tasks = hash_directory(local_tasks) if local_tasks else "no local tasks"
        done["decontaminate"] = run_step(
            decontaminate_task,
            run,
            "decontaminate",
            profile_json,
            str(run.root),
            upstream("dedup"),
            eval_tasks,
        )
    if "balance" in wanted:
        done["balance"] = run_step(
            balance_task,
            run,
            "balance",
            profile.balance.model_dump(mode="json"),
            str(run.root),
            upstream("decontaminate"),
        )
    return done


def collect_sources_concurrently(profile_json: dict, run: RunPaths, fingerprints: dict[str, str]) -> dict:
    """Submit every source at once, wait for all, then fail naming each failed source, or summarise.

    Failed source tasks are not cached, so a re-run re-collects only them; a cached source whose shards are
    gone or changed is collected again (:func:`flows._common.run_step`).
    """
    source_task = in_run(collect_source_task, run)
    futures = {
        name: source_task.submit(profile_json, str(run.root), name, fp) for name, fp in fingerprints.items()
    }
    for future in futures.values():
        future.wait()
    outcomes: dict[str, SourceManifest | str] = {}
    for name, future in futures.items():
        if not future.state.is_completed():
            outcomes[name] = _failure(future.state)
            continue
        result, step = future.result(), f"collect-{name}"
        problem = step_problem(run, step, result)
        if problem is not None:
            result = rerun(
                source_task, run, step, problem, profile_json, str(run.root), name, fingerprints[name]
            )
        outcomes[name] = SourceManifest.model_validate(result)
    manifests = raise_failures(outcomes)
    manifests_json = {name: m.model_dump(mode="json") for name, m in manifests.items()}
    return run_step(collect_summary_task, run, "collect", profile_json, str(run.root), manifests_json)


def _failure(state) -> str:
    try:
        state.result()
    except Exception as error:  # the task's own exception, re-raised by Prefect; we only want its message
        return str(error)
    return state.message or state.name


@flow(name="build-data")
def build_data(
    profile: ProfileName = "demo",
    run_id: str | None = None,
    runs_dir: str | None = None,
    catalog: str | None = None,
    steps: list[str] | None = None,
    sources: list[str] | None = None,
) -> dict:
    """Collect the catalog, remove duplicates and eval leaks, balance categories into ``runs/<run_id>/data``.

    Args:
        profile: profile name in configs/ (e.g. `demo`) or a path to a profile YAML.
        run_id: name of the run directory under the runs folder; re-using it resumes and reuses cached steps;
            empty: a fresh one, `<profile>-<UTC time>-<flow run name>`.
        runs_dir: parent folder of run directories (default: `runs/` in the project, or KALM_RUNS_DIR).
        catalog: catalog YAML to collect instead of the profile's.
        steps: only these of collect, dedup, decontaminate, balance (default: all, in that order).
        sources: collect only these sources of the catalog.
    """
    with open_run(profile, run_id, runs_dir, catalog=catalog) as (resolved, run):
        data = build_data_steps(resolved, run, steps, sources)
        get_run_logger().info("data steps %s done in %s", ", ".join(data), run.data)
        return data
