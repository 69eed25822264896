"""The stage's building blocks, kept apart from the loop: model, loss, sampler, schedule and seeds.

Everything here is a pure function of the job (and the rank), which is what makes a run reproducible and a
resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from training.backbone import build_tiny_backbone, tiny_qwen2_config
from training.config import StageConfig
from training.data import Example
from training.losses import HardNegativeMixer, InfoNCELoss, MatryoshkaLoss
from training.model import EmbeddingModel
from training.sampler import SemiHomogeneousSampler
from training.tokenizer import train_bpe_tokenizer

if TYPE_CHECKING:
    from training.job import TrainJob


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
    vocab = max(len(tokenizer), job.model.tiny.pad_vocab_to or 0)
    config = tiny_qwen2_config(job.model.tiny, vocab, job.model.max_length, tokenizer.pad_token_id)
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
