"""Ray Train ``TorchTrainer`` with 2 CPU workers: DDP over gloo, a worker killed mid-run, DeepSpeed ZeRO-2.

Each run starts a worker group (~12-24 s here), so these are slow-marked; they still run in CI.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.training.jobs import small_job, with_debug
from training.config import ScalingConfig
from training.export import METRICS_FILE
from training.launch import init_ray, run_with_ray
from training.model import EmbeddingModel
from training.telemetry import CURVE_FILE, STEPS_FILE

pytestmark = pytest.mark.slow
STEPS = 6
WORKERS = {"num_workers": 2, "cpus_per_worker": 0.5, "backend": "gloo"}


@pytest.fixture(scope="module")
def ray_local():
    init_ray(None)


def _run(job, tmp_path, name: str, **scaling) -> tuple[dict, bytes]:
    settings = ScalingConfig(**(WORKERS | {"checkpoint_every_steps": 2} | scaling))
    out = tmp_path / name
    metrics = run_with_ray(job, out, settings, tmp_path / "ray", name=name)
    return metrics, (out / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def ddp_reference(ray_local, demo_data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    return tmp, *_run(small_job(demo_data_dir, STEPS), tmp, "ddp-ref")


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


def test_worker_killed_mid_run_resumes_to_the_same_weights(ddp_reference, demo_data_dir, tmp_path):
    """Rank 1 dies at step 3 (after the step-2 checkpoint); Ray restarts the group, which resumes at step 2."""
    _, reference, weights = ddp_reference
    marker = tmp_path / "killed"
    job = with_debug(small_job(demo_data_dir, STEPS), fail_rank=1, fail_at_step=3, fail_marker=str(marker))
    metrics, resumed = _run(job, tmp_path, "ddp-kill", max_failures=1)
    assert marker.exists(), "the worker was never killed"
    assert metrics["resumed_at"] == [2], "the restarted group resumes from the step-2 checkpoint"
    assert metrics["losses"] == reference["losses"]
    assert resumed == weights


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_deepspeed_on_cpu(zero_stage, ray_local, demo_data_dir, tmp_path):
    """DeepSpeed ZeRO, fp32 on CPU over gloo, torch AdamW passed in (the comm-op build is skipped on CPU).

    ZeRO-2 also loses rank 1 at step 3, after its step-2 checkpoint, and resumes from DeepSpeed's per-rank shards;
    ZeRO-3 exports gathered weights. Same recipe and seed, so both follow the same loss curve.
    """
    job = small_job(demo_data_dir, 4)
    marker = tmp_path / "killed"
    if zero_stage == 2:
        job = with_debug(job, fail_rank=1, fail_at_step=3, fail_marker=str(marker))
    name = f"ds-zero{zero_stage}"
    metrics, _ = _run(job, tmp_path, name, strategy="deepspeed", zero_stage=zero_stage, max_failures=1)
    assert metrics["steps"] == 4 and all(math.isfinite(x) for x in metrics["losses"])
    assert metrics["resumed_at"] == ([2] if zero_stage == 2 else [])
    saved = json.loads((tmp_path / name / METRICS_FILE).read_text())
    assert saved["job"]["scaling"]["strategy"] == "deepspeed"
    model = EmbeddingModel.load(tmp_path / name)
    assert model.encode(["a query"]).shape == (1, model.backbone.config.hidden_size)
    DS_LOSSES[zero_stage] = metrics["losses"]
    if len(DS_LOSSES) == 2:
        print("ZeRO-2 (resumed) losses", DS_LOSSES[2], "ZeRO-3 losses", DS_LOSSES[3])
        assert DS_LOSSES[2] == pytest.approx(DS_LOSSES[3], rel=1e-4)


DS_LOSSES: dict[int, list[float]] = {}
