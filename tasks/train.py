"""Pipeline step: one training stage: pre-training on ``data/balanced``, or fine-tuning (one seed) on the
data mined with the pre-trained model (``data/mined``) or, without mining, on ``data/balanced``.

The step summary carries the training telemetry (per-step losses, tokens/s, MFU, the step log and loss-curve
files), and inside a Prefect run the stage's summary is also published as a Markdown artifact.
"""

from __future__ import annotations

import time
from pathlib import Path

from kalm.hashing import hash_file, hash_value
from kalm.report import training_markdown
from kalm.run.paths import RunPaths, checkpoint_name
from kalm.run.profile import Profile
from kalm.run.steps import record_step
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
    if profile.launcher == "local":
        metrics = run_in_process(job, output, state_dir=run.train_state(name))
    else:
        metrics = run_with_ray(job, output, profile.train.scaling, run.ray_storage, profile.ray_address, name)
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


def publish_training_summary(name: str, summary: dict) -> None:
    """The stage's telemetry as the ``train-<name>`` Markdown artifact, when inside a Prefect run."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    key = "train-" + "".join(c if c.isalnum() else "-" for c in name.lower())
    create_markdown_artifact(training_markdown(name, summary), key=key, description=f"training: {name}")
