"""Pipeline step: one training stage (pre-training, or fine-tuning with one seed) on ``data/balanced``."""

from __future__ import annotations

from pathlib import Path

from kalm.hashing import hash_file, hash_value
from kalm.profile import Profile
from kalm.rundir import RunPaths, record_step
from tasks._prefect import pipeline_task
from training.launch import run_in_process, run_with_ray
from training.loop import TrainJob
from training.soup import WEIGHTS_FILE


def checkpoint_name(stage: str, seed: int | None = None) -> str:
    return stage if seed is None else f"{stage}-seed{seed}"


def train_step(
    profile: Profile, run: RunPaths, stage: str, seed: int | None = None, init_from: Path | None = None
) -> dict:
    stage_config = getattr(profile.train, stage)
    if seed is not None:
        stage_config = stage_config.model_copy(update={"seed": seed})
    name = checkpoint_name(stage, seed)
    job = TrainJob(
        stage=stage_config,
        model=profile.train.model,
        data_dir=str(run.balanced),
        init_from=str(init_from) if init_from else None,
    )
    output = run.checkpoint(name)
    if profile.launcher == "local":
        metrics = run_in_process(job, output)
    else:
        metrics = run_with_ray(job, output, profile.train.scaling, run.ray_storage, profile.ray_address, name)
    return record_step(
        run,
        f"train-{name}",
        {
            "checkpoint": str(output),
            "fingerprint": hash_file(output / WEIGHTS_FILE),
            "config_hash": hash_value(job.model_dump(mode="json")),
            "metrics": {k: metrics[k] for k in ("final_loss", "steps", "examples", "tokens", "wall_time_s")},
            "losses": metrics["losses"],
        },
        parents=("balance", "train-pretrain") if init_from else ("balance",),
    )


@pipeline_task("train")
def train_task(
    profile: dict,
    run_dir: str,
    stage: str,
    seed: int | None,
    upstream: str,
    init_from: str | None = None,
    init_fingerprint: str | None = None,
) -> dict:
    return train_step(
        Profile.model_validate(profile),
        RunPaths(Path(run_dir)),
        stage,
        seed,
        Path(init_from) if init_from else None,
    )
