"""Launch a training stage through Ray Train's ``TorchTrainer`` (or in-process for tests and debugging).

Each worker runs :func:`training.loop.train_stage` with a :class:`RayCheckpointer`: every rank reports its own
share of each resumable checkpoint (Ray merges them into one folder in ``storage_path``), and the last one also
holds the exported sentence-transformers model under ``model/``, which the driver copies to the run's
``checkpoints/<stage>``. A restarted worker group (``FailureConfig``) or a restarted driver (same run name and
storage: Ray Train V2 restores its checkpoint list) resumes from ``ray.train.get_checkpoint()``. After a
successful run the driver deletes the run's Ray storage, so a later run of the same name starts fresh.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.config import ScalingConfig
from training.export import EXPORT_DIR, METRICS_FILE, write_export
from training.job import TrainJob
from training.loop import StageMetrics, train_stage
from training.model import EmbeddingModel
from training.telemetry import STEPS_FILE, ProgressBar, quiet_library_bars

__all__ = ["METRICS_FILE", "init_ray", "run_in_process", "run_with_ray"]

StepCallback = Callable[[dict[str, Any]], None]


class LocalCheckpointer:
    """In-process checkpoints under ``root/step-XXXXXXXX`` (written to a temp name, then renamed)."""

    def __init__(self, root: Path, keep: int) -> None:
        self.root, self.keep = root, keep

    def save(self, step: int, write: Callable[[Path], None], metrics: dict[str, Any], final: bool) -> None:
        from training.checkpointing import apply_retention, step_dir

        target = step_dir(self.root, step)
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        apply_retention(self.root, self.keep)


class RayCheckpointer:
    """Every rank writes its files into a local temp folder and reports it; Ray merges them in storage."""

    def save(self, step: int, write: Callable[[Path], None], metrics: dict[str, Any], final: bool) -> None:
        import ray.train

        with tempfile.TemporaryDirectory(prefix="kalm-ckpt-") as tmp:
            write(Path(tmp))
            ray.train.report(
                metrics,
                checkpoint=ray.train.Checkpoint.from_directory(tmp),
                checkpoint_dir_name=f"step-{step:08d}",
            )


def _exporter(job: TrainJob) -> Callable[[Path, EmbeddingModel | None, StageMetrics], None]:
    def export(directory: Path, model: EmbeddingModel | None, metrics: StageMetrics) -> None:
        if model is not None:
            write_export(model, metrics, job, directory / EXPORT_DIR)

    return export


def run_in_process(
    job: TrainJob, output_dir: Path, state_dir: Path | None = None, on_step: StepCallback | None = None
) -> dict:
    """Single-process training (world size 1); with ``state_dir``, resumable checkpoints go there and a rerun
    continues from the latest one. They are deleted once the stage's model is written. ``on_step`` sees each
    step's telemetry record (with ``state_dir``, whose step log it follows)."""
    from training.checkpointing import latest_checkpoint

    checkpointer = LocalCheckpointer(state_dir, job.scaling.keep_checkpoints) if state_dir else None
    resume = latest_checkpoint(state_dir) if state_dir else None
    if state_dir is not None:
        job = job.model_copy(update={"log_dir": str(state_dir)})
    bar = ProgressBar(job.stage.name, on_record=on_step)
    if job.log_dir:
        bar.follow(Path(job.log_dir) / STEPS_FILE)
    try:
        model, metrics = train_stage(job, checkpointer=checkpointer, resume_from=resume)
    finally:
        bar.close()
    if job.debug.stop_after_steps == metrics.steps and metrics.steps < _planned(metrics):
        return metrics.as_dict()  # a debug stop: the checkpoint is the output
    assert model is not None
    tmp = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write_export(model, metrics, job, tmp)
    shutil.rmtree(output_dir, ignore_errors=True)
    tmp.rename(output_dir)
    if state_dir is not None:
        shutil.rmtree(state_dir, ignore_errors=True)
    return metrics.as_dict()


def _planned(metrics: StageMetrics) -> int:
    return int(metrics.records[-1]["total_steps"]) if metrics.records else 0


def _ray_worker(config: dict) -> None:
    import ray.train
    import torch

    quiet_library_bars()
    torch.set_num_threads(max(1, int(config.pop("threads_per_worker", 1))))
    job = TrainJob.model_validate(config)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        train_stage(job, rank, world, checkpointer=RayCheckpointer(), export_final=_exporter(job))
        return
    with checkpoint.as_directory() as directory:
        train_stage(
            job,
            rank,
            world,
            checkpointer=RayCheckpointer(),
            resume_from=Path(directory),
            export_final=_exporter(job),
        )


def worker_runtime_env(scaling: ScalingConfig) -> dict[str, Any]:
    """The Ray runtime env of the training workers: on CPU, Ray's bundled jemalloc preloaded as their malloc.

    glibc's malloc serves buffers below its mmap threshold (which grows to 32 MB) from a heap it rarely hands
    back: with a step's chunks of varying shapes the heap fragments, and an all-MiniLM-L6-v2 worker's peak sat
    ~250 MB above the memory it used (measured in ``benchmarks/train_memory.py``; jemalloc matches a
    return-everything glibc at full speed). The allocator can only be swapped at exec time; Ray execs each
    worker with its runtime env's variables set, so the preload applies to the worker alone.
    """
    if scaling.use_gpu or scaling.worker_allocator != "jemalloc":
        return {}
    import ray

    library = Path(ray.__file__).parent / "core" / "libjemalloc.so"
    if not library.is_file():
        return {}
    preload = " ".join(filter(None, [str(library), os.environ.get("LD_PRELOAD")]))
    # Freed pages go back after 1 s instead of jemalloc's default 10 s: a SmolLM2 step takes longer than that,
    # and the default kept ~100 MB more per worker at the same speed.
    return {"env_vars": {"LD_PRELOAD": preload, "MALLOC_CONF": "dirty_decay_ms:1000"}}


def init_ray(address: str | None = None) -> None:
    """Connect to ``address`` (``auto`` / ``ray://host:port``) or start a loopback-only local Ray."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        _quiet_token_notice()
        ray.init(
            address="local",
            _node_ip_address="127.0.0.1",
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


class _DropTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _quiet_token_notice() -> None:
    """A new local Ray enables token auth by default and says so in every run's log; the notice is dropped
    (the opposite notice, auth disabled, is kept). Setting ``RAY_AUTH_MODE=token`` instead would have to
    happen before ``import ray``, which caches the mode."""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropTokenNotice) for f in logger.filters):
        logger.addFilter(_DropTokenNotice())


def run_with_ray(
    job: TrainJob,
    output_dir: Path,
    scaling: ScalingConfig,
    storage_dir: Path,
    ray_address: str | None = None,
    name: str | None = None,
    on_step: StepCallback | None = None,
) -> dict:
    """Train with ``scaling.num_workers`` Ray workers: DDP (gloo/nccl) or DeepSpeed ZeRO, per ``scaling``.

    ``on_step`` sees each step's telemetry record as rank 0 writes it (the driver follows the step log)."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    init_ray(ray_address)
    name = name or job.stage.name
    run_dir = storage_dir.resolve() / name
    job = job.model_copy(update={"scaling": scaling, "log_dir": str(run_dir)})
    config = job.model_dump(mode="json") | {"threads_per_worker": max(1, int(scaling.cpus_per_worker))}
    trainer = TorchTrainer(
        train_loop_per_worker=_ray_worker,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.num_workers,
            use_gpu=scaling.use_gpu,
            resources_per_worker={"CPU": scaling.cpus_per_worker} | ({"GPU": 1} if scaling.use_gpu else {}),
        ),
        torch_config=TorchConfig(backend=scaling.backend),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=str(storage_dir.resolve()),
            failure_config=ray.train.FailureConfig(max_failures=scaling.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=scaling.keep_checkpoints),
            worker_runtime_env=worker_runtime_env(scaling),
        ),
    )
    bar = ProgressBar(name, on_record=on_step)
    bar.follow(run_dir / STEPS_FILE)
    try:
        result = trainer.fit()
    finally:
        bar.close()
    if result.checkpoint is None:
        raise RuntimeError(f"stage {job.stage.name}: Ray run finished without a checkpoint")
    tmp = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with result.checkpoint.as_directory() as directory:
        if not (Path(directory) / EXPORT_DIR).is_dir():
            raise RuntimeError(f"stage {job.stage.name}: the last checkpoint has no exported model")
        shutil.copytree(Path(directory) / EXPORT_DIR, tmp)
    shutil.rmtree(output_dir, ignore_errors=True)
    tmp.rename(output_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return json.loads((output_dir / METRICS_FILE).read_text())
