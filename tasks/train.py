"""Pipeline step: one training stage: pre-training on ``data/balanced``, or fine-tuning (one seed) on the
data mined with the pre-trained model (``data/mined``) or, without mining, on ``data/balanced``.

The step summary carries the training telemetry (per-step losses, tokens/s, MFU, the step log and loss-curve
files), and inside a Prefect run the stage's summary is also published as a Markdown artifact.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from kalm.hashing import hash_file, hash_value
from kalm.progress import Logger, ProgressLog
from kalm.report import training_markdown
from kalm.run.paths import RunPaths, checkpoint_name
from kalm.run.profile import Profile
from kalm.run.steps import record_step
from tasks._artifacts import artifact_key, in_run, publish_link, publish_markdown
from tasks._prefect import pipeline_task
from training.launch import run_in_process, run_with_ray
from training.soup import WEIGHTS_FILE
from training.telemetry import CURVE_FILE, STEPS_FILE


def train_step(
    profile: Profile,
    run: RunPaths,
    stage: str,
    seed: int | None = None,
    init_from: Path | None = None,
    data_dir: Path | None = None,
) -> dict:
    started = time.perf_counter()
    name = checkpoint_name(stage, seed)
    job = profile.training_job(run, stage, seed, init_from, data_dir)
    output = run.checkpoint(name)
    progress = StepProgress(step_logger(), f"train {name}")
    if profile.launcher == "local":
        metrics = run_in_process(job, output, state_dir=run.train_state(name), on_step=progress)
    else:
        metrics = run_with_ray(
            job, output, profile.train.scaling, run.ray_storage, profile.ray_address, name, on_step=progress
        )
    return record_step(
        run,
        f"train-{name}",
        {
            "checkpoint": str(output),
            "fingerprint": hash_file(output / WEIGHTS_FILE),
            "config_hash": hash_value(job.model_dump(mode="json")),
            "metrics": {
                k: metrics.get(k)
                for k in ("final_loss", "steps", "examples", "tokens", "wall_time_s", "tokens_per_s", "mfu")
            },
            "losses": metrics["losses"],
            "learning_rates": metrics["learning_rates"],
            "steps_log": str(output / STEPS_FILE),
            "loss_curve": str(output / CURVE_FILE),
        },
        parents=(("mine" if data_dir else "balance"), *(("train-pretrain",) if init_from else ())),
        outputs=[output],
        started=started,
    )


@pipeline_task("train")
def train_task(
    profile: dict,
    run_dir: str,
    stage: str,
    seed: int | None,
    upstream: str,
    init_from: str | None = None,
    init_fingerprint: str | None = None,
    data_dir: str | None = None,
) -> dict:
    summary = train_step(
        Profile.model_validate(profile),
        RunPaths(Path(run_dir)),
        stage,
        seed,
        Path(init_from) if init_from else None,
        Path(data_dir) if data_dir else None,
    )
    publish_training_summary(checkpoint_name(stage, seed), summary)
    return summary


class StepProgress:
    """Progress lines for a training stage from its step records (``train_steps.jsonl``, followed by the driver).

    Timed by the records' own step durations, not by when the driver reads them: the driver reads the log in
    batches, and a resumed stage replays the steps it already has.
    """

    def __init__(self, logger: Logger, label: str) -> None:
        self.logger, self.label = logger, label
        self.train_seconds = 0.0
        self.log: ProgressLog | None = None

    def __call__(self, record: dict) -> None:
        self.train_seconds += float(record.get("seconds") or 0.0)
        if self.log is None:
            self.log = ProgressLog(
                self.logger,
                self.label,
                int(record["total_steps"]),
                "steps",
                every_fraction=0.25,
                clock=lambda: self.train_seconds,
            )
        details = {"loss": float(record["loss"]), "tokens/s": float(record["tokens_per_s"])}
        self.log.update(int(record["step"]), **details)


def step_logger() -> Logger:
    """The Prefect run logger inside a run (its lines carry the run, even from another thread), else ours."""
    from prefect.logging import get_run_logger

    return get_run_logger() if in_run() else logging.getLogger(__name__)


def publish_training_summary(name: str, summary: dict) -> None:
    """The stage's telemetry as the ``train-<name>`` Markdown artifact and a link to its loss curve."""
    publish_markdown(training_markdown(name, summary), artifact_key("train", name), f"training: {name}")
    if Path(summary["loss_curve"]).exists():
        publish_link(Path(summary["loss_curve"]), f"loss curve: {name}", f"training loss per step: {name}")
