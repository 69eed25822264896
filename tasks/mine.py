"""Pipeline step: hard-negative mining with the pre-train checkpoint (``data/balanced`` → ``data/mined``).

The fine-tune stage trains on ``data/mined``. Embeddings are cached in ``<run>/cache/embeddings`` (outside the
output folder, whose content hash is the step's fingerprint), so re-mining with other ranks or filters after a
config change does not re-encode, and the Prefect cache key includes the checkpoint's fingerprint, so a
re-trained pre-train checkpoint re-mines.
"""

from __future__ import annotations

import time
from pathlib import Path

from kalm.hashing import hash_directory, hash_value
from kalm.mining import MiningConfig, mine_dataset
from kalm.mining.pipeline import PLOT_FILE
from kalm.run.paths import RunPaths
from kalm.run.steps import record_step
from tasks._prefect import pipeline_task


def mine_step(
    config: MiningConfig, run: RunPaths, model_path: Path, model_fingerprint: str | None = None
) -> dict:
    out = run.mined
    started = time.perf_counter()
    stats = mine_dataset(
        run.balanced,
        out,
        Path(model_path),
        config,
        cache_dir=run.embedding_cache,
        model_fingerprint=None,  # the folder hash, not the caller's weights-file hash, keys the cache
    )
    summary = {
        "output": str(out),
        "fingerprint": hash_directory(out),
        "config_hash": hash_value(config.model_dump(mode="json")),
        "miner": str(model_path),
        "miner_fingerprint": model_fingerprint,
        "plot": str(out / PLOT_FILE),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "stats": stats.model_dump(mode="json"),
    }
    in_run = Path(model_path).resolve().is_relative_to(run.root.resolve())  # else a pretrained base model
    parents = ("balance", *(("train-pretrain",) if in_run else ()))
    return record_step(run, "mine", summary, parents=parents, outputs=[out])


@pipeline_task("mine")
def mine_task(config: dict, run_dir: str, model_path: str, upstream: str, model_fingerprint: str) -> dict:
    """Cached on (config, balanced-data fingerprint ``upstream``, checkpoint ``model_fingerprint``, code)."""
    return mine_step(
        MiningConfig.model_validate(config), RunPaths(Path(run_dir)), Path(model_path), model_fingerprint
    )
