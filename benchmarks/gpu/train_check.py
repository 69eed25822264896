"""GPU check for issue 6: DeepSpeed ZeRO-2 bf16 and DDP NCCL through Ray's TorchTrainer on one GPU.

A random-init Qwen2-0.5B-shaped bidirectional backbone (24 layers, width 896, 14 heads / 2 KV heads, MLP 4864,
151,936 embedding rows) trains a few steps of the fine-tuning recipe on the generated demo data (offline: no
network on the accelerator machine). Prints tokens/s, estimated MFU and peak GPU memory per backend.
``--small`` runs the same path on CPU (tiny model, gloo, DeepSpeed fp32) to prove the script works.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from kalm import runtime  # noqa: E402

runtime.configure()

from data_catalog.catalog import load_catalog  # noqa: E402
from data_catalog.collect import collect_catalog  # noqa: E402
from data_catalog.demo_data import write_demo_sources  # noqa: E402
from training.config import (  # noqa: E402
    QWEN2_0_5B_SHAPE,
    ModelConfig,
    ScalingConfig,
    StageConfig,
    TinyBackbone,
)
from training.job import TrainJob  # noqa: E402
from training.launch import init_ray, run_with_ray  # noqa: E402

# BPE trained on the demo data (8,192 tokens); the embedding is padded to Qwen2's 151,936 rows.
QWEN2_05B = QWEN2_0_5B_SHAPE.model_copy(update={"vocab_size": 8192, "pad_vocab_to": 151_936})
SMALL = TinyBackbone(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2)


def demo_data(root: Path) -> Path:
    write_demo_sources(root / "raw")
    collect_catalog(load_catalog(REPO / "data_catalog" / "demo.yaml", base_dir=root / "raw"), root / "data")
    return root / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="CPU, tiny model, gloo (proves the script runs)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="queries per step (global)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--backends", default="deepspeed,ddp,ddp-packed")
    args = parser.parse_args()
    small = args.small
    steps = args.steps or (4 if small else 30)
    batch = args.batch_size or (8 if small else 64)
    root = Path(tempfile.mkdtemp(prefix="kalm-gpu-check-"))
    data = demo_data(root)
    init_ray(None)
    job = TrainJob(
        stage=StageConfig(
            name="gpu-check",
            data_stage="finetune",
            hard_negatives=3,
            batch_size=batch,
            learning_rate=1e-4,
            max_steps=steps,
            temperature=0.05,
            bf16=not small,
            gradient_checkpointing=not small,
        ),
        model=ModelConfig(max_length=args.max_length, tiny=SMALL if small else QWEN2_05B),
        data_dir=str(data),
    )
    rows = []
    for backend in args.backends.split(","):
        scaling = ScalingConfig(
            num_workers=1,
            use_gpu=not small,
            cpus_per_worker=1 if small else 8,
            backend="gloo" if small else "nccl",
            strategy="deepspeed" if backend == "deepspeed" else "ddp",
            zero_stage=2,
            checkpoint_every_steps=None,
            keep_checkpoints=1,
            max_failures=0,
        )
        run = job
        if backend == "ddp-packed":  # the padding-free path through the same loop (flex attention on GPU)
            attn = "sdpa" if small else "flex_attention"
            packed = job.model.model_copy(update={"packed": True, "attn_implementation": attn})
            run = job.model_copy(update={"model": packed})
        started = time.perf_counter()
        metrics = run_with_ray(run, root / f"out-{backend}", scaling, root / "ray", name=f"check-{backend}")
        label = (
            "DeepSpeed ZeRO-2 " + ("fp32/gloo" if small else "bf16")
            if backend == "deepspeed"
            else ("DDP gloo" if small else "DDP NCCL (bf16 autocast)")
        ) + (" packed" if backend == "ddp-packed" else "")
        rows.append(
            {
                "backend": label,
                "steps": metrics["steps"],
                "tokens_per_s": metrics["tokens_per_s"],
                "mfu": metrics["mfu"],
                "peak_memory_mb": metrics["peak_memory_mb"],
                "final_loss": metrics["final_loss"],
                "wall_s": round(time.perf_counter() - started, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    device = "CPU (--small)"
    if not small:
        import torch

        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(
        f"\ndevice: {device}; model: {'tiny' if small else 'Qwen2-0.5B-shaped'}; steps: {steps}; batch: {batch}"
    )
    print("| backend | steps | tokens/s | MFU | peak memory (MiB) | final loss | wall (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['steps']} | {r['tokens_per_s']} | {r['mfu']:.3%} | {r['peak_memory_mb']} "
            f"| {r['final_loss']:.4f} | {r['wall_s']} |"
        )


if __name__ == "__main__":
    main()
