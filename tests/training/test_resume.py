"""Checkpoints and exact resume, in-process (world size 1, CPU): a stopped-and-resumed stage equals an
uninterrupted one, step for step and byte for byte."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from tests.plots import MPL_BLUE, line_rows, read_png
from tests.training.jobs import small_job, with_debug
from training.checkpointing import (
    STATE_FILE,
    TrainState,
    apply_retention,
    complete_checkpoints,
    latest_checkpoint,
    read_train_state,
    restore_rng,
    step_dir,
    write_rank_files,
)
from training.launch import LocalCheckpointer, run_in_process
from training.loop import train_stage
from training.telemetry import CURVE_FILE, STEPS_FILE

STEPS = 6


@pytest.fixture(scope="module")
def uninterrupted(demo_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "model"
    metrics = run_in_process(small_job(demo_data_dir, STEPS), out)
    return out, metrics


def test_stop_then_resume_equals_the_uninterrupted_run(uninterrupted, demo_data_dir, tmp_path):
    reference, reference_metrics = uninterrupted
    state_dir, out = tmp_path / "state", tmp_path / "model"
    job = small_job(demo_data_dir, STEPS)

    stopped = run_in_process(with_debug(job, stop_after_steps=3), out, state_dir=state_dir)
    assert stopped["steps"] == 3 and not out.exists()
    # Checkpoints at step 2 (interval) and 3 (the stop); the log holds exactly the 3 steps done.
    assert [p.name for p in complete_checkpoints(state_dir)] == ["step-00000002", "step-00000003"]
    assert read_train_state(latest_checkpoint(state_dir)).step == 3
    assert len((state_dir / STEPS_FILE).read_text().splitlines()) == 3

    resumed = run_in_process(job, out, state_dir=state_dir)
    assert resumed["losses"] == reference_metrics["losses"]
    assert resumed["learning_rates"] == reference_metrics["learning_rates"]
    assert resumed["tokens"] == reference_metrics["tokens"]
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert not state_dir.exists(), "resumable state is dropped once the stage's model is written"
    steps = [json.loads(line) for line in (out / STEPS_FILE).read_text().splitlines()]
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    # The curve is the loss per step: the line's height at each step follows the losses, and the resumed
    # run's figure is pixel for pixel the uninterrupted run's.
    curve = read_png(out / CURVE_FILE, (600, 350))
    rows = line_rows(curve, MPL_BLUE, STEPS)
    assert np.corrcoef(rows, resumed["losses"])[0, 1] < -0.999
    assert np.array_equal(curve, read_png(reference / CURVE_FILE))


def test_resume_in_the_loop_restores_every_piece(demo_data_dir, tmp_path, uninterrupted):
    """train_stage directly: the resumed run's model state equals the reference tensor for tensor."""
    _, reference_metrics = uninterrupted
    job = small_job(demo_data_dir, STEPS, every=4)
    checkpointer = LocalCheckpointer(tmp_path, keep=1)
    train_stage(with_debug(job, stop_after_steps=2), checkpointer=checkpointer)
    random.seed(123)  # the resume must restore the RNG states, not rely on the process's
    np.random.seed(123)
    torch.manual_seed(123)
    _, metrics = train_stage(job, checkpointer=checkpointer, resume_from=latest_checkpoint(tmp_path))
    assert metrics.losses == reference_metrics["losses"]
    assert metrics.steps == STEPS
    # keep=1: only the final checkpoint remains; it is the end of the stage.
    assert [p.name for p in complete_checkpoints(tmp_path)] == [f"step-{STEPS:08d}"]
    final = read_train_state(latest_checkpoint(tmp_path))
    assert final.step == STEPS and final.sampler["position"] == STEPS
    assert final.config_hash == job.config_hash()


def test_a_checkpoint_of_another_config_is_refused(demo_data_dir, tmp_path):
    job = small_job(demo_data_dir, 4)
    train_stage(with_debug(job, stop_after_steps=1), checkpointer=LocalCheckpointer(tmp_path, keep=1))
    other = job.model_copy(update={"stage": job.stage.model_copy(update={"seed": 7})})
    assert other.config_hash() != job.config_hash()
    with pytest.raises(ValueError, match="another config"):
        train_stage(other, resume_from=latest_checkpoint(tmp_path))
    # Scaling settings do not change the weights, so they do not change the hash; the activation budget does
    # (a chunked step draws dropout masks chunk by chunk).
    rescaled = job.model_copy(
        update={"scaling": job.scaling.model_copy(update={"checkpoint_every_steps": 9})}
    )
    assert rescaled.config_hash() == job.config_hash()
    chunked = job.model_copy(
        update={"scaling": job.scaling.model_copy(update={"activation_budget_mb": 64.0})}
    )
    assert job.scaling.activation_budget_mb != 64.0 and chunked.config_hash() != job.config_hash()


def test_rng_states_round_trip(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    write_rank_files(tmp_path, TrainState(step=5), rank=0)
    write_rank_files(tmp_path, TrainState(step=5), rank=1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    restore_rng(tmp_path, rank=1)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert (tmp_path / STATE_FILE).exists() and read_train_state(tmp_path).step == 5


def test_retention_keeps_the_last_n_and_drops_interrupted_ones(tmp_path):
    for step in (1, 2, 3, 4):
        step_dir(tmp_path, step).mkdir()
        if step != 4:  # step 4 was interrupted: no state.json
            (step_dir(tmp_path, step) / STATE_FILE).write_text("{}")
    apply_retention(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002", "step-00000003"]
