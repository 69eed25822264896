"""The stage's exported model folder: a sentence-transformers checkpoint plus what the run learned about itself.

Besides the model, the folder holds ``train_metrics.json`` (summary, per-step losses and learning rates, the
job), ``train_steps.jsonl`` (one record per step: loss, lr, tokens/s, MFU) and ``loss_curve.png``, so the
report and anyone holding only the checkpoint can see how it was trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from training.telemetry import CURVE_FILE, STEPS_FILE, plot_loss_curve

if TYPE_CHECKING:
    from training.job import TrainJob
    from training.loop import StageMetrics
    from training.model import EmbeddingModel

METRICS_FILE = "train_metrics.json"
EXPORT_DIR = "model"  # inside a Ray checkpoint: the exported model next to the resumable state
QUERY_PROMPT = "Instruct: {instruction} \n Query: "


def write_export(model: EmbeddingModel, metrics: StageMetrics, job: TrainJob, path: Path) -> None:
    model.save(path, prompts={"query": QUERY_PROMPT})
    summary = metrics.as_dict() | {"job": job.model_dump(mode="json", exclude={"debug", "log_dir"})}
    (path / METRICS_FILE).write_text(json.dumps(summary, indent=2))
    lines = "".join(json.dumps(r) + "\n" for r in metrics.records)
    (path / STEPS_FILE).write_text(lines, encoding="utf-8")
    if metrics.records:
        plot_loss_curve(metrics.records, path / CURVE_FILE, f"{job.stage.name}: loss per step")
