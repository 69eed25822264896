"""Pipeline step: exact and MinHash near-duplicate removal (``data/collected`` → ``data/dedup``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from kalm.dedup import DedupConfig, dedup_dataset
from kalm.dedup.config import CLUSTER_FIELDS
from kalm.hashing import hash_directory, hash_value
from kalm.run.paths import RunPaths
from kalm.run.steps import record_step
from tasks._artifacts import in_run
from tasks._prefect import pipeline_task


def dedup_step(config: DedupConfig, run: RunPaths) -> dict:
    """With ``config.use_ray`` the summary's ``execution`` says how many tasks ran on which node and which
    tasks were retried (a lost node); the output and the config hash are those of a single-process run."""
    started = time.perf_counter()
    execution: dict = {}
    stats = dedup_dataset(run.collected, run.dedup, config, execution)
    summary = {
        "output": str(run.dedup),
        "fingerprint": hash_directory(run.dedup),
        "config_hash": hash_value(config.model_dump(mode="json", exclude=CLUSTER_FIELDS)),
        "stats": stats.model_dump(mode="json"),
    }
    if execution:
        summary["execution"] = execution
        log_execution("dedup", execution)
    return record_step(run, "dedup", summary, parents=("collect",), outputs=[run.dedup], started=started)


def log_execution(step: str, execution: dict) -> None:
    """One line in the run's log: tasks, nodes, and every task Ray ran more than once."""
    from prefect.logging import get_run_logger

    logger = get_run_logger() if in_run() else logging.getLogger(__name__)
    nodes = execution["tasks_per_node"]
    retried = [f"{r['stage']}[{r['task']}] x{r['attempts']}" for r in execution["retried"]]
    logger.info(
        "%s on Ray: %d tasks on %d nodes; retried: %s",
        step,
        execution["tasks"],
        len(nodes),
        ", ".join(retried) or "none",
    )


def split_config(config: DedupConfig) -> tuple[dict, dict]:
    """(what decides the output, where it runs): the second is left out of the step's cache key."""
    dumped = config.model_dump(mode="json")
    return {k: v for k, v in dumped.items() if k not in CLUSTER_FIELDS}, {
        k: v for k, v in dumped.items() if k in CLUSTER_FIELDS
    }


@pipeline_task("dedup", exclude=("execution",))
def dedup_task(config: dict, run_dir: str, upstream: str, execution: dict | None = None) -> dict:
    return dedup_step(DedupConfig.model_validate(config | (execution or {})), RunPaths(Path(run_dir)))
