"""Pipeline step: exact and MinHash near-duplicate removal (``data/collected`` → ``data/dedup``)."""

from __future__ import annotations

import time
from pathlib import Path

from kalm.dedup import DedupConfig, dedup_dataset
from kalm.hashing import hash_directory, hash_value
from kalm.run.paths import RunPaths
from kalm.run.steps import record_step
from tasks._prefect import pipeline_task


def dedup_step(config: DedupConfig, run: RunPaths) -> dict:
    started = time.perf_counter()
    stats = dedup_dataset(run.collected, run.dedup, config)
    summary = {
        "output": str(run.dedup),
        "fingerprint": hash_directory(run.dedup),
        "config_hash": hash_value(config.model_dump(mode="json")),
        "stats": stats.model_dump(mode="json"),
    }
    return record_step(run, "dedup", summary, parents=("collect",), outputs=[run.dedup], started=started)


@pipeline_task("dedup")
def dedup_task(config: dict, run_dir: str, upstream: str) -> dict:
    return dedup_step(DedupConfig.model_validate(config), RunPaths(Path(run_dir)))
