"""Training configuration: pydantic models loaded from YAML (``training/configs/*.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TinyBackbone(_Strict):
    """A random-init Qwen2-shaped decoder for smoke runs; the tokenizer is trained on the stage's data."""

    vocab_size: int = 2048
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2


class ModelConfig(_Strict):
    base: str | None = Field(default=None, description="path of a pretrained model; None builds `tiny`")
    tiny: TinyBackbone = TinyBackbone()
    pooling: Literal["mean", "last", "cls"] = "mean"
    max_length: int = Field(default=512, gt=0)
    attn_implementation: Literal["eager", "sdpa"] = "sdpa"


class StageConfig(_Strict):
    name: str
    data_stage: Literal["pretrain", "finetune"]
    hard_negatives: int = Field(default=0, ge=0, description="hard negatives per query (group size - 1)")
    batch_size: int = Field(default=32, gt=0, description="queries per optimizer step, global")
    learning_rate: float = Field(default=1e-5, gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, le=1)
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    temperature: float = Field(default=0.02, gt=0)
    weight_decay: float = 0.0
    seed: int = 0
    grad_clip: float = 1.0


class ScalingConfig(_Strict):
    num_workers: int = Field(default=2, gt=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(default=0.5, gt=0)
    backend: Literal["gloo", "nccl"] = "gloo"


class TrainConfig(_Strict):
    model: ModelConfig = ModelConfig()
    pretrain: StageConfig
    finetune: StageConfig
    soup_seeds: list[int] = Field(default=[0, 1], min_length=1)
    scaling: ScalingConfig = ScalingConfig()

    @classmethod
    def from_yaml(cls, path: Path | str) -> TrainConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
