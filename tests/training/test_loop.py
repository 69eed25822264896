"""train_stage end to end on the demo data (in-process, world size 1, tiny model, a few steps)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from data_catalog.catalog import load_catalog
from data_catalog.collect import collect_catalog
from data_catalog.demo_data import write_demo_sources
from tests.training.conftest import TINY
from training.config import ModelConfig, StageConfig
from training.data import load_examples
from training.loop import TrainJob, build_model, linear_schedule, train_stage

REPO = Path(__file__).resolve().parents[2]
STEPS = 5


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_sources(root / "raw")
    resolved = load_catalog(REPO / "data_catalog" / "demo.yaml", base_dir=root / "raw")
    collect_catalog(resolved, root / "data")
    return root / "data"


def _job(data_dir: Path, stage: str = "finetune", seed: int = 0, hard_negatives: int = 1) -> TrainJob:
    return TrainJob(
        stage=StageConfig(
            name=f"test-{stage}",
            data_stage=stage,
            hard_negatives=hard_negatives,
            batch_size=8,
            learning_rate=1e-3,
            max_steps=STEPS,
            warmup_ratio=0.2,
            temperature=0.05,
            seed=seed,
        ),
        model=ModelConfig(max_length=48, attn_implementation="sdpa", tiny=TINY),
        data_dir=str(data_dir),
    )


def test_demo_data_has_both_stages(data_dir):
    finetune = load_examples(data_dir, "finetune")
    pretrain = load_examples(data_dir, "pretrain")
    assert len(finetune) > 100 and len(pretrain) > 100
    assert len({e.source for e in finetune}) >= 2  # several sources: same-source batching has work
    assert all(e.query.startswith("Instruct: ") for e in finetune)


@pytest.fixture(scope="module")
def two_runs(data_dir):
    return [train_stage(_job(data_dir)) for _ in range(2)]


def test_train_stage_runs_with_finite_losses(two_runs, data_dir):
    model, metrics = two_runs[0]
    assert metrics.steps == STEPS
    assert len(metrics.losses) == STEPS
    assert all(math.isfinite(loss) and loss > 0 for loss in metrics.losses)
    assert metrics.examples == len(load_examples(data_dir, "finetune"))
    assert metrics.tokens > 0
    # Warm-up then linear decay, as the schedule says (the LR logged after each step).
    expected = [1e-3 * linear_schedule(step + 1, STEPS, 1) for step in range(STEPS)]
    assert metrics.learning_rates == pytest.approx(expected)
    # Training changed the weights.
    initial = build_model(_job(data_dir), load_examples(data_dir, "finetune"))
    changed = [
        not torch.equal(value, model.state_dict()[name]) for name, value in initial.state_dict().items()
    ]
    assert any(changed)
    summary = metrics.as_dict()
    assert summary["final_loss"] == metrics.losses[-1]


def test_train_stage_is_deterministic(two_runs):
    (model_a, metrics_a), (model_b, metrics_b) = two_runs
    assert metrics_a.losses == metrics_b.losses
    state_b = model_b.state_dict()
    for name, value in model_a.state_dict().items():
        assert torch.equal(value, state_b[name]), name


def test_other_seed_differs(two_runs, data_dir):
    _, metrics = train_stage(_job(data_dir, seed=1))
    assert metrics.losses != two_runs[0][1].losses


def test_pretrain_stage_without_hard_negatives(data_dir, tmp_path):
    model, metrics = train_stage(_job(data_dir, stage="pretrain", hard_negatives=0).model_copy())
    assert len(metrics.losses) == STEPS
    assert all(math.isfinite(loss) for loss in metrics.losses)
    # The trained model exports and reloads.
    model.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").exists()


def test_batch_larger_than_data_is_an_error(data_dir):
    job = _job(data_dir)
    job = job.model_copy(update={"stage": job.stage.model_copy(update={"batch_size": 100_000})})
    with pytest.raises(ValueError, match="one batch"):
        train_stage(job)
