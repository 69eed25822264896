"""Pipeline step: collect the catalog's sources into canonical Parquet (``data/collected``).

Three steps: one source (the flow fans these out, so sources run concurrently and a re-run re-collects only
the sources whose input or config changed), the ``collect`` summary that merges their manifests, and the
whole catalog in one call (as Ray tasks when the profile names a Ray cluster).
"""

from __future__ import annotations

from pathlib import Path

from data_catalog.collect import SourceManifest, collect_catalog, collect_source, summarize
from kalm.run.paths import RunPaths
from kalm.run.profile import Profile
from kalm.run.steps import record_step
from tasks._prefect import pipeline_task


def collect_source_step(profile: Profile, run: RunPaths, source: str) -> dict:
    """One source, recorded as the run's ``collect-<source>`` step (its manifest as the summary)."""
    resolved = profile.resolve_catalog(run)
    manifest = collect_source(resolved, resolved.catalog.source(source), run.collected / source)
    summary = manifest.model_dump(mode="json")
    inputs = {f"source:{source}": manifest.input_fingerprint}
    return record_step(run, f"collect-{source}", summary, inputs=inputs, outputs=[run.collected / source])


def summarize_step(profile: Profile, run: RunPaths, manifests: dict[str, SourceManifest]) -> dict:
    manifest = summarize(profile.resolve_catalog(run), manifests)
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
    return record_step(run, "collect", summary, inputs=inputs, outputs=[run.collected])


def collect_step(profile: Profile, run: RunPaths, only: list[str] | None = None) -> dict:
    """The whole catalog (or ``only`` these sources) in one call: serially, or as Ray tasks with a Ray address."""
    manifest = collect_catalog(
        profile.resolve_catalog(run), run.collected, only=only, ray_address=profile.ray_address
    )
    return summarize_step(profile, run, manifest.sources)


@pipeline_task("collect-source", task_run_name="collect-{source}")
def collect_source_task(profile: dict, run_dir: str, source: str, input_fingerprint: str) -> dict:
    """One source's manifest as JSON. A failure fails only this task run (and is not cached)."""
    return collect_source_step(Profile.model_validate(profile), RunPaths(Path(run_dir)), source)


@pipeline_task("collect")
def collect_summary_task(profile: dict, run_dir: str, manifests: dict[str, dict]) -> dict:
    parsed = {name: SourceManifest.model_validate(m) for name, m in manifests.items()}
    return summarize_step(Profile.model_validate(profile), RunPaths(Path(run_dir)), parsed)


@pipeline_task("collect")
def collect_task(
    profile: dict, run_dir: str, inputs_fingerprint: dict[str, str], only: list[str] | None = None
) -> dict:
    return collect_step(Profile.model_validate(profile), RunPaths(Path(run_dir)), only)
