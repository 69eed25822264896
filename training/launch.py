"""Launch a training stage through Ray Train's ``TorchTrainer`` (or in-process for tests and debugging).

Each worker runs :func:`training.loop.train_stage`; rank 0 saves the model into a Ray checkpoint, and the
driver copies the reported checkpoint into the run's ``checkpoints/<stage>`` folder, so the same code works on
a local Ray, and on a cluster whose ``storage_path`` is shared storage.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from training.config import ScalingConfig
from training.loop import TrainJob, train_stage

METRICS_FILE = "train_metrics.json"


def _save(model, metrics: dict, job: TrainJob, path: Path) -> None:
    model.save(path, prompts={"query": "Instruct: {instruction} \n Query: "})
    (path / METRICS_FILE).write_text(json.dumps(metrics | {"job": job.model_dump(mode="json")}, indent=2))


def run_in_process(job: TrainJob, output_dir: Path) -> dict:
    """Single-process training (world size 1): the fallback when no Ray launch is wanted."""
    model, metrics = train_stage(job)
    tmp = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _save(model, metrics.as_dict(), job, tmp)
    shutil.rmtree(output_dir, ignore_errors=True)
    tmp.rename(output_dir)
    return metrics.as_dict()


def _ray_worker(config: dict) -> None:
    import ray.train
    import torch

    torch.set_num_threads(max(1, int(config.pop("threads_per_worker", 1))))
    job = TrainJob.model_validate(config)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    model, metrics = train_stage(job, rank, world)
    summary = {k: v for k, v in metrics.as_dict().items() if not isinstance(v, list)}
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            _save(model, metrics.as_dict(), job, Path(tmp))
            ray.train.report(summary, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(summary)


def init_ray(address: str | None = None) -> None:
    """Connect to ``address`` (``auto`` / ``ray://host:port``) or start a loopback-only local Ray."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            address="local",
            _node_ip_address="127.0.0.1",
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


def run_with_ray(
    job: TrainJob,
    output_dir: Path,
    scaling: ScalingConfig,
    storage_dir: Path,
    ray_address: str | None = None,
    name: str | None = None,
) -> dict:
    """Train with ``scaling.num_workers`` Ray workers (DDP over gloo on CPU, nccl on GPU)."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    init_ray(ray_address)
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
        run_config=ray.train.RunConfig(name=name or job.stage.name, storage_path=str(storage_dir.resolve())),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"stage {job.stage.name}: Ray run finished without a checkpoint")
    tmp = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    result.checkpoint.to_directory(str(tmp))
    shutil.rmtree(output_dir, ignore_errors=True)
    tmp.rename(output_dir)
    return json.loads((output_dir / METRICS_FILE).read_text())
