"""Pipeline step: drop training rows that leak evaluation texts (``data/dedup`` → ``data/decontaminated``)."""

from __future__ import annotations

import time
from pathlib import Path

from kalm.dedup import decontaminate_dataset
from kalm.evaluation.task_texts import benchmark_texts
from kalm.hashing import hash_directory, hash_value
from kalm.run.paths import RunPaths
from kalm.run.profile import Profile
from kalm.run.steps import record_step
from tasks._prefect import pipeline_task


def decontaminate_step(profile: Profile, run: RunPaths) -> dict:
    """Against the profile's local evaluation tasks and its official benchmarks (``evaluate.benchmarks``,
    their test texts read through mteb: without the hub the step stops, unless the profile allows it)."""
    started = time.perf_counter()
    config = profile.decontaminate
    tasks_dir = profile.decontamination_tasks_dir(run)
    official, unchecked = (None, [])
    if config.enabled and profile.evaluate.benchmarks:
        official, unchecked = benchmark_texts(
            profile.evaluate.benchmarks, config.include_corpus, config.allow_unchecked_benchmarks
        )
    stats = decontaminate_dataset(run.dedup, run.decontaminated, tasks_dir, config, official, unchecked)
    summary = {
        "output": str(run.decontaminated),
        "fingerprint": hash_directory(run.decontaminated),
        "config_hash": hash_value(config.model_dump(mode="json")),
        "tasks_dir": str(tasks_dir) if tasks_dir else None,
        "benchmarks": profile.evaluate.benchmarks,
        "stats": stats.model_dump(mode="json"),
    }
    inputs = {"eval_tasks": hash_directory(tasks_dir)} if tasks_dir else {}
    inputs |= {f"official:{name}": str(len(texts)) for name, texts in (official or {}).items()}
    return record_step(
        run,
        "decontaminate",
        summary,
        parents=("dedup",),
        inputs=inputs,
        outputs=[run.decontaminated],
        started=started,
    )


@pipeline_task("decontaminate")
def decontaminate_task(profile: dict, run_dir: str, upstream: str, tasks_fingerprint: str) -> dict:
    return decontaminate_step(Profile.model_validate(profile), RunPaths(Path(run_dir)))
