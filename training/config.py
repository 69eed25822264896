"""Training configuration: pydantic models loaded from YAML (``training/configs/*.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"


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
    pad_vocab_to: int | None = Field(
        default=None, gt=0, description="embedding rows to allocate (a real model's shape, for benchmarks)"
    )


# The KaLM-V2 backbone's shape (Qwen2-0.5B), for benchmarks and GPU checks on random weights.
QWEN2_0_5B_SHAPE = TinyBackbone(
    vocab_size=151_936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
)


class ModelConfig(_Strict):
    base: str | None = Field(default=None, description="path of a pretrained model; None builds `tiny`")
    tiny: TinyBackbone = TinyBackbone()
    pooling: Literal["mean", "last", "cls"] = "mean"
    max_length: int = Field(default=512, gt=0)
    attn_implementation: Literal["eager", "sdpa", "flex_attention"] = "sdpa"
    packed: bool = Field(
        default=False,
        description="padding-free forward: a micro-batch's sequences concatenated into packed rows with a "
        "per-sequence block mask (decoders; flex_attention on GPU, sdpa/eager on CPU)",
    )
    packed_row_tokens: int = Field(
        default=16_384, gt=0, description="tokens per packed row (one forward each)"
    )
    bidirectional: bool = Field(
        default=True,
        description="decoders: clear causal masking (KaLM-V2); False keeps them causal (ablation)",
    )

    @model_validator(mode="after")
    def _check_packing(self) -> ModelConfig:
        if self.packed and self.packed_row_tokens < self.max_length:
            raise ValueError(
                f"packed_row_tokens ({self.packed_row_tokens}) must hold one max_length ({self.max_length}) sequence"
            )
        return self


class MixingConfig(_Strict):
    """Online hard-negative mixing (KaLM-V2): ``k`` synthetic negatives per query from its own hard negatives."""

    enabled: bool = False
    k: int = Field(default=2, gt=0, description="synthetic negatives per query")
    pair_choice: Literal["hardest", "random"] = "hardest"
    detach: bool = Field(default=True, description="no gradient through the synthetic negatives (MoCHi)")


class MatryoshkaConfig(_Strict):
    """MRL: the loss at each truncated, renormalised dimension, weighted and summed (dims ≤ model width)."""

    dims: list[int] = Field(min_length=1)
    weights: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> MatryoshkaConfig:
        if len(self.dims) != len(self.weights):
            raise ValueError(f"{len(self.dims)} matryoshka dims but {len(self.weights)} weights")
        if any(d <= 0 for d in self.dims) or len(set(self.dims)) != len(self.dims):
            raise ValueError(f"matryoshka dims must be distinct and positive, got {self.dims}")
        return self


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
    focal_gamma: float = Field(default=0.0, ge=0, description="focal weight (1 - p)^gamma; 0 = plain InfoNCE")
    mixing: MixingConfig = MixingConfig()
    matryoshka: MatryoshkaConfig | None = Field(default=None, description="None trains the full width only")
    mask_same_label: bool = Field(
        default=True, description="drop same-label in-batch positives (classification/clustering rows)"
    )
    use_instructions: bool = Field(
        default=True,
        description="prefix queries with the KaLM instruction; False for backbones never trained with one",
    )
    homogeneous_ratio: float = Field(default=1.0, ge=0, le=1, description="share of a batch from one source")
    length_bucketing: int = Field(
        default=0, ge=0, description="sort by length within chunks of this many batches; 0 = off"
    )
    bf16: bool = Field(default=False, description="bf16 autocast (CUDA only; ignored on CPU)")
    gradient_checkpointing: bool = False

    @model_validator(mode="after")
    def _check(self) -> StageConfig:
        if self.mixing.enabled and self.hard_negatives < 2:
            raise ValueError(f"mixing needs at least 2 hard negatives per query, got {self.hard_negatives}")
        return self


class StageRecipe(_Strict):
    """A stage's recipe file (``training/configs/<stage>.yaml``): the model settings and the stage settings.

    The recipe files are the one home of the paper's values: a profile names a recipe per stage and states
    only what it changes (:func:`apply_recipes`).
    """

    model: ModelConfig = ModelConfig()
    stage: StageConfig

    @classmethod
    def from_yaml(cls, path: Path | str) -> StageRecipe:
        """Load ``path``, or a bare name (``"finetune"``) from ``training/configs/``."""
        return cls.model_validate(read_recipe(path))


def named_yaml(name_or_path: Path | str, folder: Path, what: str) -> Path:
    """``name_or_path`` itself, or a bare name (no suffix) of a ``.yaml`` file in ``folder``; a missing file
    is a ValueError naming ``what`` was looked for and the names ``folder`` holds."""
    path = Path(name_or_path)
    if not path.suffix:
        path = folder / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise ValueError(f"{what} {str(name_or_path)!r} not found (known: {known})")
    return path


def read_recipe(path: Path | str) -> dict[str, Any]:
    """A recipe file as plain data: ``path``, or a bare name (``"finetune"``) from ``training/configs/``."""
    return yaml.safe_load(named_yaml(path, CONFIGS_DIR, "recipe").read_text(encoding="utf-8"))


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: nested mappings merge key by key; any other value (lists too) replaces."""
    out = dict(base)
    for key, value in override.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = deep_merge(out[key], value) if both else value
    return out


def apply_recipes(train: dict[str, Any]) -> dict[str, Any]:
    """A ``train`` section with each stage merged over its recipe, and ``model`` over the recipes' model.

    A stage names its recipe with ``recipe:`` (default: the stage's own, ``pretrain`` / ``finetune``;
    ``recipe: null`` starts from :class:`StageConfig`'s defaults instead); its other keys override the
    recipe's ``stage`` section. ``model`` is merged over the ``model`` section of the stages' recipes, which
    must agree. Applying it to an already-resolved section changes nothing, so a dumped profile re-validates
    to itself.
    """
    out = dict(train)
    models = []
    for stage in ("pretrain", "finetune"):
        section = out.get(stage)
        if not isinstance(section, dict):
            continue
        overrides = {k: v for k, v in section.items() if k != "recipe"}
        name = section.get("recipe", stage)
        if name is None:
            out[stage] = overrides
            continue
        recipe = read_recipe(name)
        out[stage] = deep_merge(recipe["stage"], overrides)
        models.append((name, recipe.get("model") or {}))
    if models:
        (first, model), *others = models
        for name, other in others:
            if other != model:
                raise ValueError(
                    f"recipes {first!r} and {name!r} assume different models: {model} vs {other}"
                )
        out["model"] = deep_merge(model, out.get("model") or {})
    return out


class ScalingConfig(_Strict):
    """How a stage is distributed, checkpointed and restarted (none of it changes the trained weights)."""

    num_workers: int = Field(default=2, gt=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(default=0.5, gt=0)
    backend: Literal["gloo", "nccl"] = "gloo"
    strategy: Literal["ddp", "deepspeed"] = Field(
        default="ddp", description="DDP (gloo/nccl), or DeepSpeed ZeRO with a torch AdamW passed in"
    )
    zero_stage: Literal[1, 2, 3] = 2
    checkpoint_every_steps: int | None = Field(
        default=20,
        gt=0,
        description="resumable checkpoint interval in optimizer steps (None: stage end only)",
    )
    keep_checkpoints: int = Field(default=2, gt=0, description="retention: the last N checkpoints are kept")
    max_failures: int = Field(default=2, ge=0, description="Ray FailureConfig: worker-group restarts")
    activation_budget_mb: float | None = Field(
        default=None,
        gt=0,
        description="CPU workers (DDP or one process): the autograd graph kept alive at a time, in MB of saved "
        "activations; a step's texts are embedded in length-sorted chunks of that size and back-propagated "
        "chunk by chunk (gradient caching, training/gradcache.py): same update up to float rounding (other "
        "dropout masks), one extra forward; 256 holds an all-MiniLM-L6-v2 worker at ~1.35 GB instead of "
        "~3.8 GB at 0.9x the steps/s (benchmarks/RESULTS.md). None (default): the whole batch in one graph "
        "(GPU workers always)",
    )
    worker_allocator: Literal["jemalloc", "system"] = Field(
        default="jemalloc",
        description="malloc of Ray CPU training workers: Ray's bundled jemalloc hands freed activation memory "
        "back; glibc's heap keeps the fragments of variable-shaped steps (~300 MB per worker)",
    )
    peak_tflops_per_worker: float | None = Field(
        default=None,
        gt=0,
        description="for the MFU estimate; None: a known GPU's bf16 dense peak, or 0.1 TFLOP/s per CPU worker",
    )


class TrainConfig(_Strict):
    model: ModelConfig = ModelConfig()
    pretrain: StageConfig | None = Field(
        default=None, description="None: no pre-training; fine-tune (and mine with) the pretrained model.base"
    )
    finetune: StageConfig
    soup_seeds: list[int] = Field(default=[0, 1], min_length=1)
    scaling: ScalingConfig = ScalingConfig()

    @model_validator(mode="after")
    def _check_matryoshka_width(self) -> TrainConfig:
        """With the tiny backbone the width is known here: MRL dims beyond it fail at load, not mid-run."""
        if self.model.base is None:
            if self.pretrain is None:
                raise ValueError("train.pretrain may be omitted only with a pretrained model.base")
            width = self.model.tiny.hidden_size
            for stage in (self.pretrain, self.finetune):
                if stage.matryoshka and max(stage.matryoshka.dims) > width:
                    raise ValueError(
                        f"stage {stage.name}: matryoshka dims {stage.matryoshka.dims} exceed the tiny "
                        f"backbone's width {width}"
                    )
        return self

    @classmethod
    def from_yaml(cls, path: Path | str) -> TrainConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
