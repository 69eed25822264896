"""Per-step observability: loss, learning rate, tokens/s and estimated MFU, as JSONL, a PNG and a progress bar
(or, through ``on_record``, whatever the caller makes of each step: the pipeline logs progress lines).

MFU (model FLOPs utilisation) is estimated the usual way — ``6 × parameters × tokens / seconds / peak`` — with
the peak of the whole worker group. The peak per worker is ``ScalingConfig.peak_tflops_per_worker`` when set,
else a known GPU's bf16 dense peak, else 0.1 TFLOP/s per CPU worker (a few AVX2 cores' fp32 rate): on CPU it
is only a relative number. Timing and MFU vary between runs; loss and learning rate do not.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

STEPS_FILE = "train_steps.jsonl"
CURVE_FILE = "loss_curve.png"
CPU_PEAK_TFLOPS = 0.1
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def peak_flops(configured_tflops: float | None, world_size: int) -> float:
    """Peak FLOP/s of the worker group (see the module docstring for the defaults)."""
    per_worker = configured_tflops
    if per_worker is None and torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        per_worker = next((v for k, v in GPU_PEAK_TFLOPS.items() if k in name), None)
    return (per_worker or CPU_PEAK_TFLOPS) * 1e12 * world_size


def peak_memory_mb() -> float:
    """Peak GPU memory allocated by torch on this device, or (CPU) this process's peak RSS."""
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def progress_enabled() -> bool:
    """A bar in an interactive CLI (stderr is a TTY) or with ``KALM_PROGRESS=1``; never under pytest capture."""
    flag = os.environ.get("KALM_PROGRESS")
    return flag == "1" if flag is not None else sys.stderr.isatty()


class StepLog:
    """Builds one record per optimizer step and appends it to ``path`` (JSONL) when a path is given."""

    def __init__(
        self, path: Path | None, params: int, peak: float, total: int, records: list[dict[str, Any]]
    ) -> None:
        self.path, self.params, self.peak, self.total = path, params, peak, total
        self.records = records
        self._last = time.perf_counter()
        if path is not None:  # rewrite what a resumed run already has, so the file never holds duplicates
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    def record(self, step: int, loss: float, lr: float, tokens: int) -> dict[str, Any]:
        now = time.perf_counter()
        seconds, self._last = max(now - self._last, 1e-9), now
        record = {
            "step": step,
            "total_steps": self.total,
            "loss": loss,
            "lr": lr,
            "tokens": tokens,
            "seconds": round(seconds, 4),
            "tokens_per_s": round(tokens / seconds, 1),
            "mfu": 6.0 * self.params * tokens / seconds / self.peak,
            "peak_memory_mb": peak_memory_mb(),
        }
        self.records.append(record)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        return record


def summarize(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """Throughput over the logged steps (the first is skipped when there are more: it includes warm-up)."""
    timed = records[1:] if len(records) > 1 else records
    seconds = sum(r["seconds"] for r in timed)
    memory = max((r.get("peak_memory_mb") or 0.0 for r in records), default=None)
    if not timed or seconds <= 0:
        return {"tokens_per_s": None, "mfu": None, "peak_memory_mb": memory}
    tokens = sum(r["tokens"] for r in timed)
    mfu = sum(r["mfu"] * r["seconds"] for r in timed) / seconds
    return {"tokens_per_s": round(tokens / seconds, 1), "mfu": mfu, "peak_memory_mb": memory}


def plot_loss_curve(records: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in records], [r["loss"] for r in records], linewidth=1.2)
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def quiet_library_bars() -> None:
    """No Hugging Face progress bars in this process: for Ray workers, whose output goes to log files only.

    Switched off after import, so it holds whatever the worker's environment says (an interactive driver
    keeps its own bars, and a local Ray's workers inherit the driver's environment).
    """
    import huggingface_hub.utils
    from transformers.utils import logging as transformers_logging

    huggingface_hub.utils.disable_progress_bars()
    transformers_logging.disable_progress_bar()


class ProgressBar:
    """A tqdm bar over steps; ``follow`` tails a JSONL step log from another process (Ray workers' output
    does not reach the driver's terminal) and also hands each record to ``on_record`` (e.g. progress lines
    for the flow run's log), bar or no bar."""

    def __init__(
        self,
        description: str,
        enabled: bool | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.enabled = progress_enabled() if enabled is None else enabled
        self.on_record = on_record
        self._bar: Any = None
        self._description = description
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, record: dict[str, Any]) -> None:
        if self.on_record is not None:
            self.on_record(record)
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=record["total_steps"], desc=self._description, unit="step")
        self._bar.n = record["step"]
        self._bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")

    def follow(self, path: Path, interval: float = 0.5) -> None:
        if not self.enabled and self.on_record is None:
            return

        offset = 0

        def read_new() -> None:
            nonlocal offset
            if not path.exists():
                return
            text = path.read_text(encoding="utf-8")
            if len(text) < offset:
                offset = 0  # rewritten after a restart
            lines = text[offset:].split("\n")
            offset += len("\n".join(lines[:-1])) + (1 if len(lines) > 1 else 0)
            for line in lines[:-1]:
                if line.strip():
                    self.update(json.loads(line))

        def tail() -> None:
            while not self._stop.wait(interval):
                read_new()
            read_new()  # the last steps, written after the previous look

        self._thread = threading.Thread(target=tail, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._bar is not None:
            self._bar.close()
