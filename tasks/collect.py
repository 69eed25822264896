"""Pipeline step: collect the catalog's sources into canonical Parquet (``data/collected``).

In a flow every source is its own cached task (submitted together, so they run concurrently and a re-run
re-collects only the sources whose input or config changed); with a Ray address the sources run as Ray
tasks instead. The ``collect`` summary then merges the per-source manifests.
"""

from __future__ import annotations

from pathlib import Path

from data_catalog.catalog import ResolvedCatalog, Source, load_catalog
from data_catalog.collect import (
    SourceManifest,
    collect_catalog,
    collect_source,
    input_fingerprint,
    raise_failures,
    summarize,
)
from data_catalog.demo_data import write_demo_eval_tasks, write_demo_sources
from data_catalog.loaders import SourceError
from kalm.profile import Profile
from kalm.rundir import RunPaths, record_step
from tasks._prefect import pipeline_task


def resolve_catalog(profile: Profile, run: RunPaths) -> ResolvedCatalog:
    return load_catalog(profile.catalog_path(), base_dir=run.raw if profile.demo_data else None)


def prepare_inputs(profile: Profile, run: RunPaths) -> dict[str, str]:
    """Write the demo inputs when the profile asks for them; return each source's input fingerprint."""
    if profile.demo_data:
        write_demo_sources(run.raw)
        write_demo_eval_tasks(run.demo_eval_tasks)
    resolved = resolve_catalog(profile, run)
    return {s.name: _fingerprint_or_missing(resolved, s) for s in resolved.catalog.sources}


def _fingerprint_or_missing(resolved: ResolvedCatalog, source: Source) -> str:
    # A missing input must fail that source's task (with its own error), not stop the other sources.
    try:
        return input_fingerprint(resolved, source)
    except SourceError as error:
        return f"missing: {error}"


def summarize_step(profile: Profile, run: RunPaths, manifests: dict[str, SourceManifest]) -> dict:
    manifest = summarize(resolve_catalog(profile, run), manifests)
    run.collected.mkdir(parents=True, exist_ok=True)
    (run.collected / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    summary = {
        "output": str(run.collected),
        "fingerprint": manifest.fingerprint,
        "config_hash": manifest.config_hash,
        "rows_by_source": {name: m.rows_written for name, m in manifest.sources.items()},
        "rows_by_category": manifest.rows_by("category"),
        "rows_by_stage": manifest.rows_by("stage"),
        "quarantined": {
            name: m.quarantine_reasons for name, m in manifest.sources.items() if m.rows_quarantined
        },
    }
    inputs = {f"source:{name}": m.input_fingerprint for name, m in manifest.sources.items()}
    return record_step(run, "collect", summary, inputs=inputs)


def collect_step(profile: Profile, run: RunPaths, only: list[str] | None = None) -> dict:
    """Collect in one call (the CLI path): serially, or as Ray tasks when the profile names a Ray address."""
    manifest = collect_catalog(
        resolve_catalog(profile, run), run.collected, only=only, ray_address=profile.ray_address
    )
    return summarize_step(profile, run, manifest.sources)


@pipeline_task("collect-source", task_run_name="collect-{source}")
def collect_source_task(profile: dict, run_dir: str, source: str, input_fingerprint: str) -> dict:
    """One source's manifest as JSON. A failure fails only this task run (and is not cached)."""
    resolved_profile, run = Profile.model_validate(profile), RunPaths(Path(run_dir))
    resolved = resolve_catalog(resolved_profile, run)
    manifest = collect_source(resolved, resolved.catalog.source(source), run.collected / source)
    return manifest.model_dump(mode="json")


@pipeline_task("collect")
def collect_summary_task(profile: dict, run_dir: str, manifests: dict[str, dict]) -> dict:
    parsed = {name: SourceManifest.model_validate(m) for name, m in manifests.items()}
    return summarize_step(Profile.model_validate(profile), RunPaths(Path(run_dir)), parsed)


def collect_sources_concurrently(profile: Profile, run: RunPaths, fingerprints: dict[str, str], bind) -> dict:
    """Submit every source at once, wait for all, then fail naming each failed source, or summarise.

    ``bind`` binds a task to the run (result storage); failed source tasks are not cached, so a re-run
    re-collects only them.
    """
    profile_json = profile.model_dump(mode="json")
    source_task = bind(collect_source_task)
    futures = {
        name: source_task.submit(profile_json, str(run.root), name, fp) for name, fp in fingerprints.items()
    }
    for future in futures.values():
        future.wait()
    outcomes: dict[str, SourceManifest | str] = {}
    for name, future in futures.items():
        completed = future.state.is_completed()
        outcomes[name] = (
            SourceManifest.model_validate(future.result()) if completed else _failure(future.state)
        )
    manifests = raise_failures(outcomes)
    return bind(collect_summary_task)(
        profile_json, str(run.root), {name: m.model_dump(mode="json") for name, m in manifests.items()}
    )


def _failure(state) -> str:
    try:
        state.result()
    except Exception as error:  # the task's own exception, re-raised by Prefect; we only want its message
        return str(error)
    return state.message or state.name


@pipeline_task("collect")
def collect_task(profile: dict, run_dir: str, inputs_fingerprint: dict[str, str]) -> dict:
    return collect_step(Profile.model_validate(profile), RunPaths(Path(run_dir)))
