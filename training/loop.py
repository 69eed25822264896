"""One training stage on one worker: plain torch, no Ray or Prefect, so it runs (and is tested) anywhere.

The launcher decides how many workers run this function; under ``torch.distributed`` the model is wrapped
in DDP and the loss gathers documents across ranks, so every rank's queries see the global batch.

Per step: the :class:`~training.sampler.SemiHomogeneousSampler` gives this rank its slice of a (mostly)
same-source global batch; each query gets its positive and ``hard_negatives`` negatives; the loss is
:func:`build_loss`'s composition (InfoNCE + focal + hard-negative mixing, same-label masking, MRL).
Randomness is keyed by (seed, step, rank) — negatives choice and mixing — or (seed, epoch) — batches — so
two runs with one seed are identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from pydantic import BaseModel
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from training.backbone import build_tiny_backbone, tiny_qwen2_config
from training.config import ModelConfig, StageConfig
from training.data import Example, choose_negatives, load_examples
from training.losses import HardNegativeMixer, InfoNCELoss, MatryoshkaLoss, encode_labels
from training.model import EmbeddingModel
from training.sampler import SemiHomogeneousSampler
from training.tokenizer import train_bpe_tokenizer


class TrainJob(BaseModel):
    stage: StageConfig
    model: ModelConfig
    data_dir: str
    init_from: str | None = None


@dataclass
class StageMetrics:
    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    examples: int = 0
    steps: int = 0
    tokens: int = 0
    wall_time_s: float = 0.0
    sampler_state: dict[str, Any] = field(default_factory=dict)  # where the sampler stopped (not logged)

    def as_dict(self) -> dict:
        return {
            "losses": self.losses,
            "learning_rates": self.learning_rates,
            "examples": self.examples,
            "steps": self.steps,
            "tokens": self.tokens,
            "wall_time_s": round(self.wall_time_s, 3),
            "final_loss": self.losses[-1] if self.losses else None,
        }


def build_model(job: TrainJob, examples: list[Example]) -> EmbeddingModel:
    torch.manual_seed(job.stage.seed)
    if job.init_from:
        return EmbeddingModel.load(Path(job.init_from), job.model)
    if job.model.base:
        from transformers import AutoTokenizer

        from training.backbone import load_backbone

        return EmbeddingModel(
            load_backbone(job.model.base, job.model), AutoTokenizer.from_pretrained(job.model.base), job.model
        )
    texts = [t for e in examples for t in (e.query, e.positive, *e.negatives)]
    tokenizer = train_bpe_tokenizer(texts, job.model.tiny.vocab_size)
    config = tiny_qwen2_config(job.model.tiny, len(tokenizer), job.model.max_length, tokenizer.pad_token_id)
    return EmbeddingModel(build_tiny_backbone(config, job.model), tokenizer, job.model)


def linear_schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def build_loss(stage: StageConfig, width: int) -> nn.Module:
    """The stage's loss: InfoNCE (focal γ, mixing when enabled), wrapped in MRL when ``matryoshka`` is set."""
    mixer = None
    if stage.mixing.enabled:
        mixer = HardNegativeMixer(stage.mixing.k, stage.mixing.pair_choice, stage.mixing.detach, stage.seed)
    loss: nn.Module = InfoNCELoss(stage.temperature, 1 + stage.hard_negatives, stage.focal_gamma, mixer=mixer)
    if stage.matryoshka is not None:
        if max(stage.matryoshka.dims) > width:
            raise ValueError(
                f"stage {stage.name}: matryoshka dims {stage.matryoshka.dims} exceed the model width {width}"
            )
        loss = MatryoshkaLoss(loss, stage.matryoshka.dims, stage.matryoshka.weights)
    return loss


def build_sampler(
    stage: StageConfig, examples: list[Example], rank: int, world_size: int
) -> SemiHomogeneousSampler:
    lengths = [len(e.query) + len(e.positive) for e in examples] if stage.length_bucketing else None
    return SemiHomogeneousSampler(
        [e.source for e in examples],
        stage.batch_size,
        homogeneous_ratio=stage.homogeneous_ratio,
        seed=stage.seed,
        rank=rank,
        world_size=world_size,
        lengths=lengths,
        bucket_batches=stage.length_bucketing,
    )


def label_key(example: Example) -> str | None:
    """The masking label, namespaced by source: label "0" of one dataset is not label "0" of another."""
    return None if example.label is None else f"{example.source}\x1f{example.label}"


def step_seed(seed: int, step: int, rank: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{step}:{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def enable_checkpointing(backbone: nn.Module) -> None:
    """Recompute layer activations in the backward pass (non-reentrant, so DDP and frozen inputs work)."""
    kwargs = {"use_reentrant": False}
    if hasattr(backbone, "activation_checkpointing_enable"):  # transformers >= 5.x
        backbone.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _device() -> torch.device:
    if torch.cuda.is_available():
        index = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def train_stage(job: TrainJob, rank: int = 0, world_size: int = 1) -> tuple[EmbeddingModel, StageMetrics]:
    """Train one stage and return the (unwrapped) model and its metrics."""
    started = time.perf_counter()
    stage = job.stage
    examples = load_examples(Path(job.data_dir), stage.data_stage)
    model = build_model(job, examples)
    device = _device()
    model.to(device)
    if stage.gradient_checkpointing:
        enable_checkpointing(model.backbone)
    model.train()
    distributed = dist.is_available() and dist.is_initialized() and world_size > 1
    network = DistributedDataParallel(model) if distributed else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=stage.learning_rate, weight_decay=stage.weight_decay)
    loss_fn = build_loss(stage, model.backbone.config.hidden_size)
    mixers = [m for m in loss_fn.modules() if isinstance(m, HardNegativeMixer)]
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if stage.bf16 and device.type == "cuda"
        else contextlib.nullcontext()
    )

    sampler = build_sampler(stage, examples, rank, world_size)
    if len(sampler) == 0:
        raise ValueError(f"stage {stage.name}: {len(examples)} examples < one batch of {stage.batch_size}")
    total = stage.max_steps or math.ceil(stage.epochs * len(sampler))
    warmup = int(stage.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: linear_schedule(s, total, warmup))
    by_source: dict[str, list[Example]] = {}
    for example in examples:
        by_source.setdefault(example.source, []).append(example)

    metrics = StageMetrics(examples=len(examples))
    step = 0
    while step < total:
        for batch in sampler:
            mine = [examples[i] for i in batch]
            rng = random.Random(f"{stage.seed}:{step}:{rank}")
            for mixer in mixers:
                mixer.manual_seed(step_seed(stage.seed, step, rank))
            documents = []
            for example in mine:
                documents.append(example.positive)
                documents.extend(
                    choose_negatives(example, stage.hard_negatives, by_source[example.source], rng)
                )
            labels = (
                encode_labels([label_key(e) for e in mine], device=device) if stage.mask_same_label else None
            )
            inputs = model.tokenize([e.query for e in mine] + documents)
            with autocast:
                embeddings = network(inputs["input_ids"].to(device), inputs["attention_mask"].to(device))
            loss = loss_fn(embeddings[: len(mine)], embeddings[len(mine) :], labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
            optimizer.step()
            scheduler.step()
            metrics.losses.append(_global_mean(loss.detach(), distributed))
            metrics.learning_rates.append(scheduler.get_last_lr()[0])
            metrics.tokens += int(inputs["attention_mask"].sum()) * world_size
            step += 1
            if step >= total:
                break
    metrics.steps = step
    metrics.sampler_state = sampler.state_dict()
    metrics.wall_time_s = time.perf_counter() - started
    return model, metrics


def _global_mean(value: torch.Tensor, distributed: bool) -> float:
    if distributed:
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)
