"""Small training jobs for the checkpoint / distributed tests: the tiny backbone, a handful of steps."""

from __future__ import annotations

from pathlib import Path

from tests.training.conftest import TINY
from training.config import ModelConfig, ScalingConfig, StageConfig
from training.job import DebugHooks, TrainJob

RECIPE = {
    "hard_negatives": 2,
    "focal_gamma": 0.5,
    "mixing": {"enabled": True, "k": 2, "pair_choice": "random"},
    "matryoshka": {"dims": [TINY.hidden_size, TINY.hidden_size // 2], "weights": [1.0, 0.3]},
    "homogeneous_ratio": 0.5,
    "length_bucketing": 2,
}


def small_job(data_dir: Path, steps: int = 6, every: int = 2, **scaling) -> TrainJob:
    """The full fine-tuning recipe (mixing, focal, MRL, mixed batches) on the tiny model, ``steps`` steps."""
    stage = StageConfig(
        name="ckpt-test",
        data_stage="finetune",
        batch_size=8,
        learning_rate=1e-3,
        max_steps=steps,
        warmup_ratio=0.2,
        temperature=0.05,
        **RECIPE,
    )
    return TrainJob(
        stage=stage,
        model=ModelConfig(max_length=48, tiny=TINY),
        data_dir=str(data_dir),
        scaling=ScalingConfig(checkpoint_every_steps=every, **scaling),
    )


def with_debug(job: TrainJob, **hooks) -> TrainJob:
    return job.model_copy(update={"debug": DebugHooks(**hooks)})
