"""Pipeline step: per-source caps and temperature quotas across categories (``data/dedup`` → ``data/balanced``)."""

from __future__ import annotations

import time
from pathlib import Path

from kalm.balance import BalanceConfig, balance_dataset
from kalm.hashing import hash_directory, hash_value
from kalm.run.paths import RunPaths
from kalm.run.steps import record_step
from tasks._prefect import pipeline_task


def balance_step(config: BalanceConfig, run: RunPaths) -> dict:
    started = time.perf_counter()
    stats = balance_dataset(run.decontaminated, run.balanced, config)
    summary = {
        "output": str(run.balanced),
        "fingerprint": hash_directory(run.balanced),
        "config_hash": hash_value(config.model_dump(mode="json")),
        "stats": stats.model_dump(mode="json"),
    }
    return record_step(
        run, "balance", summary, parents=("decontaminate",), outputs=[run.balanced], started=started
    )


@pipeline_task("balance")
def balance_task(config: dict, run_dir: str, upstream: str) -> dict:
    return balance_step(BalanceConfig.model_validate(config), RunPaths(Path(run_dir)))
