"""Ray Train ``TorchTrainer`` with 2 CPU workers: DDP over gloo (equal to one process on the same global
batches), a worker killed mid-run, DeepSpeed ZeRO-2 (killed and resumed) against ZeRO-3.

Each run starts a worker group (~12-24 s here), so these are slow-marked; they still run in CI. The DDP runs
leave out the per-rank draws (hard-negative sample, mixing λ) so that one process can reproduce them; the
DeepSpeed runs keep the full recipe, so resuming every rank's RNG under Ray is checked there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.training.jobs import small_job, with_debug
from training.components import build_model
from training.config import MixingConfig, ScalingConfig
from training.data import load_examples
from training.export import METRICS_FILE
from training.job import TrainJob
from training.launch import init_ray, run_in_process, run_with_ray
from training.model import EmbeddingModel
from training.telemetry import CURVE_FILE, STEPS_FILE

pytestmark = pytest.mark.slow
STEPS = 6
# A budget of a few texts: DDP runs take gradient-cached steps of several chunks (gradients averaged by hand).
WORKERS = {"num_workers": 2, "cpus_per_worker": 0.5, "backend": "gloo", "activation_budget_mb": 0.5}


@pytest.fixture(scope="module")
def ray_local():
    init_ray(None)


def _run(job, tmp_path, name: str, **scaling) -> tuple[dict, bytes]:
    settings = ScalingConfig(**(WORKERS | {"checkpoint_every_steps": 2} | scaling))
    out = tmp_path / name
    metrics = run_with_ray(job, out, settings, tmp_path / "ray", name=name)
    return metrics, (out / "model.safetensors").read_bytes()


def _without_per_rank_draws(job: TrainJob) -> TrainJob:
    """The recipe less what each rank draws from its own seed (its hard-negative sample and mixing λ), which a
    single process draws differently; focal weights, MRL, same-label masking and cross-rank negatives stay."""
    stage = job.stage.model_copy(update={"hard_negatives": 0, "mixing": MixingConfig(enabled=False)})
    return job.model_copy(update={"stage": stage})


@pytest.fixture(scope="module")
def ddp_reference(ray_local, demo_data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    return tmp, *_run(_without_per_rank_draws(small_job(demo_data_dir, STEPS)), tmp, "ddp-ref")


def test_ddp_gloo_two_workers(ddp_reference):
    tmp, metrics, _ = ddp_reference
    assert metrics["steps"] == STEPS and len(metrics["losses"]) == STEPS
    assert all(math.isfinite(x) for x in metrics["losses"])
    assert metrics["tokens_per_s"] > 0 and metrics["mfu"] > 0
    out = tmp / "ddp-ref"
    assert len((out / STEPS_FILE).read_text().splitlines()) == STEPS and (out / CURVE_FILE).exists()
    assert json.loads((out / METRICS_FILE).read_text())["job"]["scaling"]["strategy"] == "ddp"
    assert metrics["resumed_at"] == []
    assert not (tmp / "ray" / "ddp-ref").exists(), "a finished run's Ray storage is cleaned up"
    EmbeddingModel.load(out).encode(["a query"])


def test_ddp_through_ray_equals_one_process_on_the_same_global_batch(ddp_reference, demo_data_dir, tmp_path):
    """Two Ray workers, each on half of every global batch, gathering the other's documents as negatives and
    averaging gradients, train the same model as one process on whole batches: same losses, same weights."""
    ray_tmp, ddp, _ = ddp_reference
    job = _without_per_rank_draws(small_job(demo_data_dir, STEPS))
    single = run_in_process(job, tmp_path / "single")
    print("single", single["losses"], "ddp", ddp["losses"])
    assert ddp["steps"] == single["steps"] == STEPS and ddp["examples"] == single["examples"]
    assert ddp["tokens"] == single["tokens"]
    assert ddp["losses"] == pytest.approx(single["losses"], rel=1e-5)
    one = EmbeddingModel.load(tmp_path / "single").backbone.state_dict()
    two = EmbeddingModel.load(ray_tmp / "ddp-ref").backbone.state_dict()
    examples = load_examples(Path(job.data_dir), job.stage.data_stage, job.stage.use_instructions)
    initial = build_model(job, examples).backbone.state_dict()
    assert one.keys() == two.keys() == initial.keys()
    for name, weight in one.items():
        torch.testing.assert_close(two[name], weight, rtol=1e-4, atol=1e-6, msg=name)
    moved = max(float((one[name] - initial[name]).abs().max()) for name in one)
    assert moved > 1e-3, "training did not move the weights: the comparison would be vacuous"


def test_worker_killed_mid_run_resumes_to_the_same_weights(ddp_reference, demo_data_dir, tmp_path):
    """Rank 1 dies at step 3 (after the step-2 checkpoint); Ray restarts the group, which resumes at step 2."""
    _, reference, weights = ddp_reference
    marker = tmp_path / "killed"
    job = _without_per_rank_draws(small_job(demo_data_dir, STEPS))
    job = with_debug(job, fail_rank=1, fail_at_step=3, fail_marker=str(marker))
    metrics, resumed = _run(job, tmp_path, "ddp-kill", max_failures=1)
    assert marker.exists(), "the worker was never killed"
    assert metrics["resumed_at"] == [2], "the restarted group resumes from the step-2 checkpoint"
    assert metrics["losses"] == reference["losses"]
    assert resumed == weights


def test_chunked_steps_train_like_whole_batch_ddp(ddp_reference, demo_data_dir, tmp_path):
    """The whole-batch step wrapped in DDP with glibc's malloc (the path before gradient caching): the same run
    up to float rounding."""
    _, reference, weights = ddp_reference
    job = _without_per_rank_draws(small_job(demo_data_dir, STEPS))
    metrics, whole = _run(job, tmp_path, "ddp-whole", activation_budget_mb=None, worker_allocator="system")
    assert metrics["losses"] == pytest.approx(reference["losses"], rel=1e-5)
    assert metrics["tokens"] == reference["tokens"]
    reference_state = _state(weights)
    for name, value in _state(whole).items():
        torch.testing.assert_close(value, reference_state[name], rtol=1e-4, atol=1e-4)


def _state(safetensors_bytes: bytes) -> dict:
    from safetensors.torch import load

    return load(safetensors_bytes)


def test_cpu_workers_get_jemalloc():
    from training.launch import worker_runtime_env

    env = worker_runtime_env(ScalingConfig())["env_vars"]
    assert Path(env["LD_PRELOAD"].split()[0]).is_file() and "jemalloc" in env["LD_PRELOAD"]
    assert worker_runtime_env(ScalingConfig(worker_allocator="system")) == {}
    assert worker_runtime_env(ScalingConfig(use_gpu=True, backend="nccl")) == {}


def _deepspeed(job, tmp_path, zero_stage: int) -> tuple[dict, EmbeddingModel]:
    name = f"ds-zero{zero_stage}"
    metrics, _ = _run(job, tmp_path, name, strategy="deepspeed", zero_stage=zero_stage, max_failures=1)
    assert metrics["steps"] == 4 and all(math.isfinite(x) for x in metrics["losses"])
    saved = json.loads((tmp_path / name / METRICS_FILE).read_text())
    assert saved["job"]["scaling"]["strategy"] == "deepspeed"
    assert saved["job"]["scaling"]["zero_stage"] == zero_stage
    model = EmbeddingModel.load(tmp_path / name)
    assert model.encode(["a query"]).shape == (1, model.backbone.config.hidden_size)
    return metrics, model


def test_deepspeed_zero2_resumed_and_zero3_follow_the_same_losses(ray_local, demo_data_dir, tmp_path):
    """DeepSpeed ZeRO, fp32 on CPU over gloo, torch AdamW passed in (the comm-op build is skipped on CPU).

    ZeRO-2 loses rank 1 at step 3, after its step-2 checkpoint, and resumes from DeepSpeed's per-rank shards;
    ZeRO-3 exports gathered weights. Same recipe and seed, so both follow the same loss curve and end at the
    same weights. One test runs both, so the comparison can never be left out.
    """
    job = small_job(demo_data_dir, 4)
    marker = tmp_path / "killed"
    zero2, model2 = _deepspeed(
        with_debug(job, fail_rank=1, fail_at_step=3, fail_marker=str(marker)), tmp_path, 2
    )
    assert marker.exists(), "the ZeRO-2 worker was never killed"
    assert zero2["resumed_at"] == [2]
    zero3, model3 = _deepspeed(job, tmp_path, 3)
    assert zero3["resumed_at"] == []
    print("ZeRO-2 (resumed) losses", zero2["losses"], "ZeRO-3 losses", zero3["losses"])
    assert zero2["losses"] == pytest.approx(zero3["losses"], rel=1e-4)
    weights3 = dict(model3.backbone.named_parameters())
    for name, weight in model2.backbone.named_parameters():
        torch.testing.assert_close(weight, weights3[name], rtol=1e-3, atol=1e-5, msg=name)
