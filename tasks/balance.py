"""Pipeline step: per-source caps and temperature quotas across categories (``data/dedup`` → ``data/balanced``)."""

from __future__ import annotations

from pathlib import Path

from kalm.balance import BalanceConfig, balance_dataset
from kalm.hashing import hash_directory
from kalm.rundir import RunPaths, record_step
from tasks._prefect import pipeline_task


def balance_step(config: BalanceConfig, run: RunPaths) -> dict:
    stats = balance_dataset(run.dedup, run.balanced, config)
    return record_step(
        run, "balance", {"fingerprint": hash_directory(run.balanced), "stats": stats.model_dump(mode="json")}
    )


@pipeline_task("balance")
def balance_task(config: dict, run_dir: str, upstream: str) -> dict:
    return balance_step(BalanceConfig.model_validate(config), RunPaths(Path(run_dir)))
