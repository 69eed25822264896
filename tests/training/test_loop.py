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
from training.config import ModelConfig, ScalingConfig, StageConfig
from training.data import load_examples
from training.job import TrainJob
from training.loop import build_loss, build_model, build_sampler, linear_schedule, train_stage
from training.losses import HardNegativeMixer, InfoNCELoss, MatryoshkaLoss

REPO = Path(__file__).resolve().parents[2]
STEPS = 5


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_sources(root / "raw")
    resolved = load_catalog(REPO / "data_catalog" / "demo.yaml", base_dir=root / "raw")
    collect_catalog(resolved, root / "data")
    return root / "data"


def _job(
    data_dir: Path, stage: str = "finetune", seed: int = 0, hard_negatives: int = 1, **updates
) -> TrainJob:
    job = TrainJob(
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
    return job.model_copy(update={"stage": StageConfig.model_validate(job.stage.model_dump() | updates)})


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


FULL_RECIPE = {
    "focal_gamma": 0.5,
    "mixing": {"enabled": True, "k": 2, "pair_choice": "random"},
    "matryoshka": {"dims": [TINY.hidden_size, TINY.hidden_size // 2], "weights": [1.0, 0.3]},
    "homogeneous_ratio": 0.5,
    "length_bucketing": 2,
    "mask_same_label": True,
    "gradient_checkpointing": True,
    "bf16": True,  # ignored on CPU
}


def test_demo_finetune_data_has_labelled_rows(data_dir):
    """Same-label masking has work to do: classification/clustering rows carry labels, repeated in a source."""
    labelled = [e for e in load_examples(data_dir, "finetune") if e.label is not None]
    assert labelled
    assert len({(e.source, e.label) for e in labelled}) < len(labelled)


def test_train_stage_with_the_full_recipe(data_dir):
    """Focal + mixing + MRL + label masking + semi-homogeneous bucketed batches: finite and deterministic."""
    job = _job(data_dir, hard_negatives=2, max_steps=3, **FULL_RECIPE)
    (model_a, metrics_a), (model_b, metrics_b) = train_stage(job), train_stage(job)
    assert metrics_a.steps == 3
    assert all(math.isfinite(loss) and loss > 0 for loss in metrics_a.losses)
    assert metrics_a.losses == metrics_b.losses
    assert (
        getattr(model_a.backbone, "is_activation_checkpointing", None)
        or model_a.backbone.is_gradient_checkpointing
    )
    state_b = model_b.state_dict()
    assert all(torch.equal(value, state_b[name]) for name, value in model_a.state_dict().items())
    # The sampler state says where the stage stopped: resuming from it would continue after step 3.
    examples = load_examples(data_dir, "finetune")
    sampler = build_sampler(job.stage, examples, 0, 1)
    assert metrics_a.sampler_state == {**sampler.state_dict(), "position": 3}
    plain = train_stage(_job(data_dir, hard_negatives=2, max_steps=3))[1]
    assert plain.losses != metrics_a.losses


def test_build_loss_composes_the_stage_recipe():
    stage = _job(Path("."), hard_negatives=2, **FULL_RECIPE).stage
    loss = build_loss(stage, width=TINY.hidden_size)
    assert isinstance(loss, MatryoshkaLoss) and loss.dims == [32, 16]
    assert isinstance(loss.loss, InfoNCELoss) and loss.loss.focal_gamma == 0.5 and loss.loss.group_size == 3
    assert isinstance(loss.loss.mixer, HardNegativeMixer) and loss.loss.mixer.k == 2
    plain = build_loss(_job(Path(".")).stage, width=TINY.hidden_size)
    assert isinstance(plain, InfoNCELoss) and plain.mixer is None and plain.focal_gamma == 0
    with pytest.raises(ValueError, match="exceed the model width"):
        build_loss(stage, width=16)


def test_packed_training_matches_padded_training(data_dir, monkeypatch):
    """``model.packed`` runs the same loop padding-free: same losses, token counts and weights (fp32, sdpa)."""
    import training.model

    rows_per_forward = []
    real = training.model.embed_in_rows

    def counting(backbone, sequences, row_tokens, *args):
        out = real(backbone, sequences, row_tokens, *args)
        rows_per_forward.append(out[1] / row_tokens)
        return out

    monkeypatch.setattr(training.model, "embed_in_rows", counting)
    # The whole-batch step, one forward per step (gradient-cached chunks are checked in test_gradcache.py).
    padded = _job(data_dir).model_copy(update={"scaling": ScalingConfig(activation_budget_mb=None)})
    packed_model = padded.model.model_copy(update={"packed": True, "packed_row_tokens": 160})
    packed = padded.model_copy(update={"model": packed_model})
    (m_pad, r_pad), (m_pack, r_pack) = train_stage(padded), train_stage(packed)
    assert len(rows_per_forward) == STEPS and max(rows_per_forward) > 1  # packed, several rows per step
    assert r_pack.tokens == r_pad.tokens
    assert r_pack.losses == pytest.approx(r_pad.losses, rel=1e-4)
    for name, value in m_pad.state_dict().items():
        torch.testing.assert_close(m_pack.state_dict()[name], value, rtol=1e-4, atol=1e-4)


def test_packed_training_refuses_an_encoder():
    from kalm.run.backbones import minilm_path
    from training.backbone import UnsupportedArchitecture
    from training.model import EmbeddingModel

    config = ModelConfig(base=str(minilm_path()), packed=True, max_length=64)
    with pytest.raises(UnsupportedArchitecture, match="packed training"):
        EmbeddingModel.load(minilm_path(), config)
