"""Encoding one text list over several Ray tasks (one per GPU, or fractional-CPU workers), results in order.

Why tasks, not a long-lived actor pool: a mining run encodes each corpus once (the cache serves the rest), so a
worker that loads the model, encodes one contiguous shard and exits is simplest and frees the GPU at once.
Contiguous shards keep the concatenation order equal to the input order, so the result is the same array a
single process produces (up to float rounding of different batch compositions).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kalm.mining.encode import EncodeConfig, TextEncoder, default_device


def _encode_shard(model_path: str, texts: list[str], config: dict, threads: int) -> np.ndarray:
    import torch

    from training.telemetry import quiet_library_bars

    quiet_library_bars()  # a Ray task: its output goes to Ray's log files, where a bar is noise
    torch.set_num_threads(max(1, threads))
    return TextEncoder(model_path, EncodeConfig.model_validate(config)).encode(texts)


def shard_bounds(n: int, num_shards: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal [start, end) ranges; never an empty shard."""
    num_shards = max(1, min(num_shards, n))
    base, extra = divmod(n, num_shards)
    bounds, start = [], 0
    for i in range(num_shards):
        end = start + base + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def encode_sharded(
    texts: Sequence[str],
    model_path: Path | str,
    num_shards: int,
    config: EncodeConfig | None = None,
    *,
    cpus_per_shard: float = 0.5,
    ray_address: str | None = None,
) -> np.ndarray:
    """Encode ``texts`` in ``num_shards`` Ray tasks; joins a running Ray or starts a loopback-only local one.

    With GPUs each task asks for one GPU; on CPU each asks for ``cpus_per_shard`` (0.5 lets two shards share a
    core on small machines). Never stops Ray: other steps of the run may be using it.
    """
    import ray

    from training.launch import init_ray

    init_ray(ray_address)
    config = config or EncodeConfig()
    use_gpu = (config.device or default_device()).startswith("cuda")
    options = {"num_gpus": 1, "num_cpus": 1} if use_gpu else {"num_cpus": cpus_per_shard}
    remote = ray.remote(_encode_shard).options(**options)
    shard_config = config.model_dump(mode="json") | {"num_shards": 1, "device": None}
    threads = 1 if not use_gpu else 2
    refs = [
        remote.remote(str(model_path), list(texts[start:end]), shard_config, threads)
        for start, end in shard_bounds(len(texts), num_shards)
    ]
    parts = ray.get(refs)
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 0), dtype=np.float32)
