"""Pipeline step: collect the catalog's sources into canonical Parquet (``data/collected``)."""

from __future__ import annotations

from pathlib import Path

from data_catalog.catalog import load_catalog
from data_catalog.collect import collect_catalog, input_fingerprint
from data_catalog.demo_data import write_demo_eval_tasks, write_demo_sources
from kalm.hashing import hash_value
from kalm.profile import Profile
from kalm.rundir import RunPaths, record_step
from tasks._prefect import pipeline_task


def prepare_inputs(profile: Profile, run: RunPaths) -> str:
    """Write the demo inputs when the profile asks for them; return the fingerprint of all inputs."""
    if profile.demo_data:
        write_demo_sources(run.raw)
        write_demo_eval_tasks(run.demo_eval_tasks)
    resolved = load_catalog(profile.catalog_path(), base_dir=run.raw if profile.demo_data else None)
    return hash_value(
        {
            "catalog": resolved.config_hash(),
            "inputs": {s.name: input_fingerprint(resolved, s) for s in resolved.catalog.sources},
        }
    )


def collect_step(profile: Profile, run: RunPaths, only: list[str] | None = None) -> dict:
    resolved = load_catalog(profile.catalog_path(), base_dir=run.raw if profile.demo_data else None)
    manifest = collect_catalog(resolved, run.collected, only=only)
    run.collected.mkdir(parents=True, exist_ok=True)
    (run.collected / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return record_step(
        run,
        "collect",
        {
            "output": str(run.collected),
            "fingerprint": manifest.fingerprint,
            "config_hash": manifest.config_hash,
            "rows_by_source": {name: m.rows_written for name, m in manifest.sources.items()},
            "rows_by_category": manifest.rows_by("category"),
            "rows_by_stage": manifest.rows_by("stage"),
            "quarantined": {
                name: m.quarantine_reasons for name, m in manifest.sources.items() if m.rows_quarantined
            },
        },
        inputs={f"source:{name}": m.input_fingerprint for name, m in manifest.sources.items()},
    )


@pipeline_task("collect")
def collect_task(profile: dict, run_dir: str, inputs_fingerprint: str) -> dict:
    return collect_step(Profile.model_validate(profile), RunPaths(Path(run_dir)))
