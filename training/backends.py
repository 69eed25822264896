"""The distribution backends behind one switch (``ScalingConfig.strategy``), with one small interface.

The training loop only calls :class:`Engine`: ``forward``, ``step(loss)`` (backward, clip, optimizer and
scheduler step), ``save``/``load`` of the resumable state and ``export`` of full-precision weights. So the
same loop runs single-process, as DDP over gloo (CPU) or NCCL (GPU), and as DeepSpeed ZeRO 1/2/3.

DeepSpeed is given a *torch* AdamW (DeepSpeed's own Adam JIT-compiles a kernel for minutes) and the loop's
scheduler. It runs in fp32 on CPU (gloo) and bf16 on GPU. On CPU, DeepSpeed's communication backend JIT-builds
a shared-memory comm op at its first start on a machine (measured here: 85-190 s on 2 busy cores). That op only
serves ``inference_all_reduce``, never training, so on CPU its build is skipped (:func:`skip_cpu_shm_op`):
DeepSpeed then starts in ~5-10 s. ``TORCH_EXTENSIONS_DIR`` still points at a persistent folder
(:func:`extensions_dir`), so any op that does get built is built once per machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from training.config import ScalingConfig, StageConfig
from training.gradcache import average_gradients, broadcast_parameters, cached_backward, saved_bytes_per_token
from training.model import EmbeddingModel

TRAINER_FILE = "trainer.pt"
DS_DIR = "deepspeed"
DS_TAG = "state"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def extensions_dir() -> Path:
    """Where DeepSpeed's JIT-built ops are cached: ``$TORCH_EXTENSIONS_DIR``, else ``.state/torch_extensions``."""
    path = Path(os.environ.get("TORCH_EXTENSIONS_DIR", PROJECT_ROOT / ".state" / "torch_extensions"))
    os.environ["TORCH_EXTENSIONS_DIR"] = str(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def skip_cpu_shm_op() -> None:
    """Make DeepSpeed's CPU comm backend skip building its shm op (used by inference all-reduce only).

    Guarded: on a DeepSpeed without ``build_shm_op`` nothing changes and the op is built (and cached) as usual.
    """
    import sys

    import deepspeed.comm.torch  # noqa: F401 - the attribute path resolves to torch, hence sys.modules

    module = sys.modules["deepspeed.comm.torch"]
    if hasattr(module, "build_shm_op"):
        module.build_shm_op = lambda: None


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters that train (a frozen BERT pooler, unused by embedding pooling, is left out)."""
    return [p for p in model.parameters() if p.requires_grad]


class Engine(Protocol):
    module: EmbeddingModel

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor: ...
    def step(self, loss: torch.Tensor) -> None: ...
    def lr(self) -> float: ...
    def save(self, directory: Path, rank: int) -> None: ...
    def load(self, directory: Path) -> None: ...
    def export(self) -> EmbeddingModel | None: ...


class TorchEngine:
    """Single process or DDP: rank 0 saves model, optimizer and scheduler (they are equal on every rank)."""

    def __init__(
        self,
        model: EmbeddingModel,
        stage: StageConfig,
        schedule: Callable[[int], float],
        distributed: bool,
        device: torch.device,
        chunk_tokens: int | None = None,
    ) -> None:
        self.module = model
        self.distributed, self.chunk_tokens = distributed, chunk_tokens
        if distributed and chunk_tokens:
            # Chunked steps run several backward passes per step and average the gradients once, themselves
            # (DDP would need every rank to run the same number of chunks, and keeps a gradient-sized bucket copy).
            broadcast_parameters(model)
            self.network: torch.nn.Module = model
        else:
            self.network = DistributedDataParallel(model) if distributed else model
        self.optimizer = torch.optim.AdamW(
            trainable(model), lr=stage.learning_rate, weight_decay=stage.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.grad_clip = stage.grad_clip
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if stage.bf16 and device.type == "cuda"
            else contextlib.nullcontext()
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with self.autocast:
            return self.network(input_ids, attention_mask)

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()

    def step_chunked(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        loss_of: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """The step of ``loss_of(embeddings of the texts)`` with at most ``chunk_tokens`` padded tokens' graph
        alive at a time (:mod:`training.gradcache`); the same update as :meth:`step`, up to float rounding."""
        assert self.chunk_tokens, "step_chunked needs chunk_tokens"
        self.optimizer.zero_grad(set_to_none=True)
        loss = cached_backward(self.forward, input_ids, attention_mask, loss_of, self.chunk_tokens)
        if self.distributed:
            average_gradients(trainable(self.module))
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss

    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def save(self, directory: Path, rank: int) -> None:
        if rank == 0:
            state = {
                "model": self.module.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            }
            torch.save(state, directory / TRAINER_FILE)

    def load(self, directory: Path) -> None:
        state = torch.load(directory / TRAINER_FILE, map_location="cpu", weights_only=True)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def export(self) -> EmbeddingModel | None:
        return self.module


class DeepSpeedEngine:
    """DeepSpeed ZeRO: every rank saves its own shard (DeepSpeed's checkpoint layout under ``deepspeed/``)."""

    def __init__(
        self,
        model: EmbeddingModel,
        stage: StageConfig,
        scaling: ScalingConfig,
        schedule: Callable[[int], float],
        device: torch.device,
        fresh_model: Callable[[], EmbeddingModel],
        per_rank_batch: int,
    ) -> None:
        extensions_dir()
        # The device is known here; left to detect it, DeepSpeed warns "Setting accelerator to CPU. If you have
        # GPU or other accelerator, we were unable to detect it." on every CPU rank.
        os.environ.setdefault("DS_ACCELERATOR", device.type)
        import deepspeed

        if device.type == "cpu":
            skip_cpu_shm_op()

        if not dist.is_initialized():  # in-process (world size 1): DeepSpeed still wants a process group
            _single_process_group("nccl" if device.type == "cuda" else "gloo")
        self.bf16 = stage.bf16 and device.type == "cuda"
        self.zero_stage = scaling.zero_stage
        self.fresh_model = fresh_model
        optimizer = torch.optim.AdamW(
            trainable(model), lr=stage.learning_rate, weight_decay=stage.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        config: dict[str, Any] = {
            "train_micro_batch_size_per_gpu": per_rank_batch,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": stage.grad_clip,
            "zero_optimization": {
                "stage": scaling.zero_stage,
                "stage3_gather_16bit_weights_on_model_save": True,
            },
            "zero_allow_untested_optimizer": True,
            "bf16": {"enabled": self.bf16},
            "steps_per_print": 1 << 30,
            "wall_clock_breakdown": False,
        }
        self.engine, _, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config, dist_init_required=False
        )
        self.module = self.engine.module

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.engine(input_ids, attention_mask).float()

    def step(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)
        self.engine.step()  # clips, steps the optimizer and the scheduler, zeroes the gradients

    def lr(self) -> float:
        return float(self.engine.get_lr()[0])

    def save(self, directory: Path, rank: int) -> None:
        self.engine.save_checkpoint(str(directory / DS_DIR), tag=DS_TAG, save_latest=False)

    def load(self, directory: Path) -> None:
        path, _ = self.engine.load_checkpoint(
            str(directory / DS_DIR), tag=DS_TAG, load_optimizer_states=True, load_lr_scheduler_states=True
        )
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint under {directory / DS_DIR}")

    def export(self) -> EmbeddingModel | None:
        """Full fp32 weights on rank 0 (a collective under ZeRO-3: every rank must call it)."""
        if self.zero_stage == 3:
            state = self.engine._zero3_consolidated_16bit_state_dict()  # gathered; None off rank 0
        else:
            state = self.module.state_dict() if dist.get_rank() == 0 else None
        if state is None:
            return None
        if self.zero_stage != 3 and not self.bf16:
            return self.module  # already full fp32 weights
        model = self.fresh_model()
        model.load_state_dict({k: v.detach().float().cpu() for k, v in state.items()})
        return model


def _single_process_group(backend: str) -> None:
    """A world-size-1 process group over a file store (no port to pick, nothing reachable from outside)."""
    import tempfile

    store = Path(tempfile.mkdtemp(prefix="kalm-pg-")) / "store"
    dist.init_process_group(backend, init_method=f"file://{store}", rank=0, world_size=1)


def train_step(
    engine: Engine,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """One optimizer step on ``loss_of(embeddings of the texts)``: gradient-cached chunks when the engine has a
    chunk size (CPU within an activation budget), else the whole batch in one graph."""
    if getattr(engine, "chunk_tokens", None):
        return engine.step_chunked(input_ids, attention_mask, loss_of)
    loss = loss_of(engine.forward(input_ids, attention_mask))
    engine.step(loss)
    return loss


def chunk_tokens(model: EmbeddingModel, scaling: ScalingConfig, device: torch.device) -> int | None:
    """Padded tokens per chunk of a gradient-cached step (CPU with an activation budget), else None.

    At least one max-length text, so every text fits a chunk.
    """
    if device.type != "cpu" or scaling.activation_budget_mb is None:
        return None
    if model.tokenizer.padding_side != "right":
        raise ValueError(
            "gradient-cached steps trim each chunk's right padding; this tokenizer pads on the "
            f"{model.tokenizer.padding_side}: set scaling.activation_budget_mb: null"
        )
    max_length = model.config.max_length
    per_token = saved_bytes_per_token(model, max_length, model.tokenizer.pad_token_id or 0)
    return max(max_length, int(scaling.activation_budget_mb * 2**20 / per_token))


def build_engine(
    model: EmbeddingModel,
    stage: StageConfig,
    scaling: ScalingConfig,
    schedule: Callable[[int], float],
    device: torch.device,
    world_size: int,
    fresh_model: Callable[[], EmbeddingModel],
) -> Engine:
    if scaling.strategy == "deepspeed":
        return DeepSpeedEngine(
            model, stage, scaling, schedule, device, fresh_model, stage.batch_size // world_size
        )
    # Under a launcher the process group exists even for one worker: wrap in DDP then too (a 1-GPU check
    # measures the real DDP path); in-process training has no process group and trains the bare model.
    distributed = dist.is_available() and dist.is_initialized()
    return TorchEngine(model, stage, schedule, distributed, device, chunk_tokens(model, scaling, device))
