"""Pipeline step: drop training rows that leak evaluation texts (``data/dedup`` → ``data/decontaminated``)."""

from __future__ import annotations

from pathlib import Path

from kalm.dedup import decontaminate_dataset
from kalm.hashing import hash_directory, hash_value
from kalm.run.paths import RunPaths
from kalm.run.profile import Profile
from kalm.run.steps import record_step
from tasks._prefect import pipeline_task


def decontaminate_step(profile: Profile, run: RunPaths) -> dict:
    config = profile.decontaminate
    tasks_dir = profile.decontamination_tasks_dir(run)
    stats = decontaminate_dataset(run.dedup, run.decontaminated, tasks_dir, config)
    summary = {
        "output": str(run.decontaminated),
        "fingerprint": hash_directory(run.decontaminated),
        "config_hash": hash_value(config.model_dump(mode="json")),
        "tasks_dir": str(tasks_dir),
        "stats": stats.model_dump(mode="json"),
    }
    return record_step(
        run,
        "decontaminate",
        summary,
        parents=("dedup",),
        inputs={"eval_tasks": hash_directory(tasks_dir)},
        outputs=[run.decontaminated],
    )


@pipeline_task("decontaminate")
def decontaminate_task(profile: dict, run_dir: str, upstream: str, tasks_fingerprint: str) -> dict:
    return decontaminate_step(Profile.model_validate(profile), RunPaths(Path(run_dir)))
