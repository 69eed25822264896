"""One training stage on one worker: plain torch, no Ray or Prefect, so it runs (and is tested) anywhere.

The launcher decides how many workers run this function; the backend (:mod:`training.backends`) wraps the
model in DDP or DeepSpeed, and the loss gathers documents across ranks, so every rank's queries see the
global batch.

Per step: the :class:`~training.sampler.SemiHomogeneousSampler` gives this rank its slice of a (mostly)
same-source global batch; each query gets its positive and ``hard_negatives`` negatives; the loss is
:func:`build_loss`'s composition (InfoNCE + focal + hard-negative mixing, same-label masking, MRL).
Randomness is keyed by (seed, step, rank) — negatives choice and mixing — or (seed, epoch) — batches — so
two runs with one seed are identical, and a run resumed from a checkpoint (model, optimizer, scheduler,
sampler position, every rank's RNG states: :mod:`training.checkpointing`) continues exactly as the
uninterrupted run would have.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from training.backends import build_engine, train_step
from training.checkpointing import (
    TrainState,
    check_resumable,
    read_train_state,
    restore_rng,
    write_rank_files,
)
from training.components import (
    _device,
    build_loss,
    build_model,
    build_sampler,
    enable_checkpointing,
    label_key,
    linear_schedule,
    step_seed,
)
from training.data import Example, choose_negatives, load_examples
from training.job import DebugHooks, TrainJob
from training.losses import HardNegativeMixer, encode_labels
from training.model import EmbeddingModel
from training.sampler import SemiHomogeneousSampler
from training.telemetry import STEPS_FILE, StepLog, peak_flops

__all__ = [
    "Checkpointer",
    "DebugHooks",
    "StageMetrics",
    "TrainJob",
    "build_loss",
    "build_model",
    "build_sampler",
    "enable_checkpointing",
    "label_key",
    "linear_schedule",
    "step_seed",
    "train_stage",
]


class Checkpointer(Protocol):
    """Where resumable checkpoints go (a local folder, or Ray's ``report``); called on every rank."""

    def save(
        self, step: int, write: Callable[[Path], None], metrics: dict[str, Any], final: bool
    ) -> None: ...


@dataclass
class StageMetrics:
    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    examples: int = 0
    steps: int = 0
    tokens: int = 0
    wall_time_s: float = 0.0
    sampler_state: dict[str, Any] = field(default_factory=dict)  # where the sampler stopped (not logged)
    records: list[dict[str, Any]] = field(default_factory=list)  # per step: loss, lr, tokens/s, MFU
    tokens_per_s: float | None = None
    mfu: float | None = None
    resumed_at: list[int] = field(default_factory=list)
    peak_memory_mb: float | None = None  # rank 0's peak (GPU allocated, or process RSS on CPU)

    def as_dict(self) -> dict:
        return {
            "losses": self.losses,
            "learning_rates": self.learning_rates,
            "examples": self.examples,
            "steps": self.steps,
            "tokens": self.tokens,
            "wall_time_s": round(self.wall_time_s, 3),
            "final_loss": self.losses[-1] if self.losses else None,
            "tokens_per_s": self.tokens_per_s,
            "mfu": self.mfu,
            "resumed_at": self.resumed_at,
            "peak_memory_mb": self.peak_memory_mb,
        }


def train_stage(
    job: TrainJob,
    rank: int = 0,
    world_size: int = 1,
    checkpointer: Checkpointer | None = None,
    resume_from: Path | None = None,
    export_final: Callable[[Path, EmbeddingModel | None, StageMetrics], None] | None = None,
) -> tuple[EmbeddingModel | None, StageMetrics]:
    """Train one stage; return the full-precision model (``None`` off rank 0 under ZeRO-3) and its metrics.

    With a ``checkpointer``, a resumable checkpoint is saved every ``checkpoint_every_steps`` and at the end;
    ``export_final`` adds the exported model to that last checkpoint. ``resume_from`` continues from one.
    """
    started = time.perf_counter()
    stage, scaling = job.stage, job.scaling
    examples = load_examples(Path(job.data_dir), stage.data_stage, stage.use_instructions)
    model = build_model(job, examples)
    device = _device()
    model.to(device)
    if stage.gradient_checkpointing:
        enable_checkpointing(model.backbone)
    model.train()
    sampler = build_sampler(stage, examples, rank, world_size)
    if len(sampler) == 0:
        raise ValueError(f"stage {stage.name}: {len(examples)} examples < one batch of {stage.batch_size}")
    total = stage.max_steps or math.ceil(stage.epochs * len(sampler))
    warmup = int(stage.warmup_ratio * total)
    params = sum(p.numel() for p in model.parameters())
    engine = build_engine(
        model,
        stage,
        scaling,
        lambda s: linear_schedule(s, total, warmup),
        device,
        world_size,
        lambda: build_model(job, examples),
    )
    loss_fn = build_loss(stage, model.backbone.config.hidden_size)
    mixers = [m for m in loss_fn.modules() if isinstance(m, HardNegativeMixer)]
    by_source: dict[str, list[Example]] = {}
    for example in examples:
        by_source.setdefault(example.source, []).append(example)

    state = TrainState(config_hash=job.config_hash(), world_size=world_size)
    if resume_from is not None:
        saved = read_train_state(resume_from)
        check_resumable(saved, state.config_hash, world_size, resume_from)
        engine.load(resume_from)
        sampler.load_state_dict(saved.sampler)
        restore_rng(resume_from, rank)
        state = saved
        state.resumed_at.append(state.step)
    log_path = Path(job.log_dir) / STEPS_FILE if job.log_dir and rank == 0 else None
    log = StepLog(
        log_path, params, peak_flops(scaling.peak_tflops_per_worker, world_size), total, state.records
    )

    def save(final: bool, export: EmbeddingModel | None = None) -> None:
        state.sampler = sampler.state_dict()

        def write(directory: Path) -> None:
            engine.save(directory, rank)
            write_rank_files(directory, state, rank)
            # Rank 0 alone writes the exported model: Ray merges every rank's folder into one checkpoint, and
            # two ranks writing the same file names there interleave (a corrupt train_metrics.json was seen).
            if export_final is not None and final and rank == 0:
                export_final(directory, export, _metrics(state, len(examples), sampler, started))

        assert checkpointer is not None
        summary = {"step": state.step, "loss": state.records[-1]["loss"] if state.records else None}
        checkpointer.save(state.step, write, summary, final)

    stop_at = job.debug.stop_after_steps
    while state.step < total and state.step != stop_at:
        for batch in sampler:
            loss, tokens = _train_step(
                job, engine, loss_fn, mixers, examples, by_source, batch, state.step, rank
            )
            loss_value = _global_mean(loss.detach(), world_size > 1)
            tokens = _global_sum(tokens, world_size > 1)
            state.step += 1
            state.tokens += tokens
            log.record(state.step, loss_value, engine.lr(), tokens)
            if (
                checkpointer is not None
                and (
                    state.step == stop_at
                    or (scaling.checkpoint_every_steps and state.step % scaling.checkpoint_every_steps == 0)
                )
                and state.step < total
            ):
                save(final=False)
            _maybe_fail(job.debug, state.step, rank)
            if state.step >= total or state.step == stop_at:
                break
    exported = engine.export()  # a collective under ZeRO-3
    metrics = _metrics(state, len(examples), sampler, started)
    if checkpointer is not None and state.step >= total:
        save(final=True, export=exported)
    return exported, metrics


def _train_step(
    job: TrainJob,
    engine: Any,
    loss_fn: nn.Module,
    mixers: list[HardNegativeMixer],
    examples: list[Example],
    by_source: dict[str, list[Example]],
    batch: list[int],
    step: int,
    rank: int,
) -> tuple[torch.Tensor, int]:
    """One optimizer step on this rank's slice; returns the local loss and this rank's token count."""
    stage, model = job.stage, engine.module
    device = next(model.parameters()).device
    mine = [examples[i] for i in batch]
    rng = random.Random(f"{stage.seed}:{step}:{rank}")
    for mixer in mixers:
        mixer.manual_seed(step_seed(stage.seed, step, rank))
    documents = []
    for example in mine:
        documents.append(example.positive)
        documents.extend(choose_negatives(example, stage.hard_negatives, by_source[example.source], rng))
    labels = encode_labels([label_key(e) for e in mine], device=device) if stage.mask_same_label else None
    inputs = model.tokenize([e.query for e in mine] + documents)
    ids, mask, n = inputs["input_ids"].to(device), inputs["attention_mask"].to(device), len(mine)
    loss = train_step(engine, ids, mask, lambda embeddings: loss_fn(embeddings[:n], embeddings[n:], labels))
    return loss, int(inputs["attention_mask"].sum())


def _metrics(
    state: TrainState, examples: int, sampler: SemiHomogeneousSampler, started: float
) -> StageMetrics:
    from training.telemetry import summarize

    throughput = summarize(state.records)
    return StageMetrics(
        losses=[r["loss"] for r in state.records],
        learning_rates=[r["lr"] for r in state.records],
        examples=examples,
        steps=state.step,
        tokens=state.tokens,
        wall_time_s=time.perf_counter() - started,
        sampler_state=sampler.state_dict(),
        records=list(state.records),
        tokens_per_s=throughput["tokens_per_s"],
        mfu=throughput["mfu"],
        resumed_at=list(state.resumed_at),
        peak_memory_mb=throughput["peak_memory_mb"],
    )


def _maybe_fail(debug: DebugHooks, step: int, rank: int) -> None:
    """Test hook: the process of ``fail_rank`` dies at ``fail_at_step`` — once, guarded by the marker file."""
    if debug.fail_at_step != step or debug.fail_rank != rank or not debug.fail_marker:
        return
    marker = Path(debug.fail_marker)
    if marker.exists():
        return
    marker.write_text(f"rank {rank} killed at step {step}\n")
    # Ray Train's controller collects reported checkpoints when it polls the workers (every 2 s by default); a
    # crash right after a report can lose it. Waiting makes "the last checkpoint" well defined for the test.
    time.sleep(debug.fail_delay_s)
    os._exit(1)


def _global_sum(value: int, distributed: bool) -> int:
    if not distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(tensor)
    return int(tensor.item())


def _comm_device() -> torch.device:
    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )


def _global_mean(value: torch.Tensor, distributed: bool) -> float:
    if distributed:
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)
