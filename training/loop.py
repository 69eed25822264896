"""One training stage on one worker: plain torch, no Ray or Prefect, so it runs (and is tested) anywhere.

The launcher decides how many workers run this function; under ``torch.distributed`` the model is wrapped
in DDP and the loss gathers documents across ranks, so every rank's queries see the global batch.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from pydantic import BaseModel
from torch.nn.parallel import DistributedDataParallel

from training.backbone import build_tiny_backbone, tiny_qwen2_config
from training.config import ModelConfig, StageConfig
from training.data import Example, choose_negatives, global_batches, load_examples, rank_slice
from training.losses import InfoNCELoss
from training.model import EmbeddingModel
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


def train_stage(job: TrainJob, rank: int = 0, world_size: int = 1) -> tuple[EmbeddingModel, StageMetrics]:
    """Train one stage and return the (unwrapped) model and its metrics."""
    started = time.perf_counter()
    stage = job.stage
    examples = load_examples(Path(job.data_dir), stage.data_stage)
    model = build_model(job, examples)
    model.train()
    distributed = dist.is_available() and dist.is_initialized() and world_size > 1
    network = DistributedDataParallel(model) if distributed else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=stage.learning_rate, weight_decay=stage.weight_decay)
    loss_fn = InfoNCELoss(stage.temperature, 1 + stage.hard_negatives)

    batches_per_epoch = len(global_batches(examples, stage.batch_size, stage.seed, 0))
    if batches_per_epoch == 0:
        raise ValueError(f"stage {stage.name}: {len(examples)} examples < one batch of {stage.batch_size}")
    total = stage.max_steps or math.ceil(stage.epochs * batches_per_epoch)
    warmup = int(stage.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: linear_schedule(s, total, warmup))
    by_source: dict[str, list[Example]] = {}
    for example in examples:
        by_source.setdefault(example.source, []).append(example)

    metrics = StageMetrics(examples=len(examples))
    step, epoch = 0, 0
    while step < total:
        for batch in global_batches(examples, stage.batch_size, stage.seed, epoch):
            if step >= total:
                break
            mine = [examples[i] for i in rank_slice(batch, rank, world_size)]
            rng = random.Random(f"{stage.seed}:{step}:{rank}")
            documents = []
            for example in mine:
                documents.append(example.positive)
                documents.extend(
                    choose_negatives(example, stage.hard_negatives, by_source[example.source], rng)
                )
            inputs = model.tokenize([e.query for e in mine] + documents)
            embeddings = network(inputs["input_ids"], inputs["attention_mask"])
            loss = loss_fn(embeddings[: len(mine)], embeddings[len(mine) :])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
            optimizer.step()
            scheduler.step()
            metrics.losses.append(_global_mean(loss.detach(), distributed))
            metrics.learning_rates.append(scheduler.get_last_lr()[0])
            metrics.tokens += int(inputs["attention_mask"].sum()) * world_size
            step += 1
        epoch += 1
    metrics.steps = step
    metrics.wall_time_s = time.perf_counter() - started
    return model, metrics


def _global_mean(value: torch.Tensor, distributed: bool) -> float:
    if distributed:
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)
