"""What one training stage is asked to do: the stage and model settings, the data, where it starts from.

A :class:`TrainJob` is the unit the launcher hands to every worker (as JSON through Ray), so it holds only
JSON-able settings; how the stage is distributed lives in ``scaling`` and never changes the weights.
"""

from __future__ import annotations

from pydantic import BaseModel

from training.checkpointing import config_hash
from training.config import ModelConfig, ScalingConfig, StageConfig


class DebugHooks(BaseModel):
    """Test-only fault injection: stop cleanly after a step, or kill one rank's process once."""

    stop_after_steps: int | None = None
    fail_rank: int | None = None
    fail_at_step: int | None = None
    fail_marker: str | None = None  # created before the kill; while it exists the kill does not repeat
    fail_delay_s: float = 5.0


class TrainJob(BaseModel):
    """One stage on one dataset; ``init_from`` is the checkpoint it continues (None: the model's base)."""

    stage: StageConfig
    model: ModelConfig
    data_dir: str
    init_from: str | None = None
    scaling: ScalingConfig = ScalingConfig()
    log_dir: str | None = None  # rank 0 appends the per-step JSONL here while training
    debug: DebugHooks = DebugHooks()

    def config_hash(self) -> str:
        """What determines the weights: a checkpoint is resumable only by a job with the same hash. Of the
        scaling, the activation budget counts: chunked steps draw dropout masks per chunk."""
        fields = {"stage": True, "model": True, "data_dir": True, "init_from": True}
        return config_hash(
            self.model_dump(mode="json", include=fields | {"scaling": {"activation_budget_mb"}})
        )
