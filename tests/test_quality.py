"""Quality harness: profiles per ablation, the English subsets, the table maths, and a smoke run end to end."""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.harness.profiles import (
    ABLATIONS,
    SHARED_CATALOG,
    SHARED_EVAL,
    HarnessConfig,
    apply_ablation,
    english_catalog,
    english_tasks,
    recipe_profile,
    run_ablations,
)
from benchmarks.harness.report import render, summarize, verdicts
from kalm.run.profile import Profile
from tests.conftest import needs_shared

REPO = Path(__file__).resolve().parents[1]


def _profile(backbone: str = "minilm") -> dict:
    return recipe_profile(HarnessConfig(backbone=backbone), Path("/models/base"), Path("/c.yaml"), "q")


def _diff(a: dict, b: dict, prefix: str = "") -> set[str]:
    keys = set(a) | set(b)
    out = set()
    for k in keys:
        path = f"{prefix}{k}"
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out |= _diff(a[k], b[k], path + ".")
        elif a.get(k) != b.get(k):
            out.add(path)
    return out


@needs_shared  # the profiles name ../shared/datasets/eval, which validation checks
def test_recipe_profile_is_a_valid_profile_with_the_papers_techniques_on() -> None:
    profile = Profile.model_validate(_profile())
    finetune = profile.train.finetune
    assert profile.train.pretrain is None and profile.mining.enabled and profile.decontaminate.enabled
    assert finetune.focal_gamma > 0 and finetune.mixing.enabled and finetune.matryoshka is not None
    assert finetune.homogeneous_ratio == 1.0 and finetune.hard_negatives == profile.mining.num_negatives
    # MiniLM never saw instructions: off in mining, training and evaluation alike; on for the decoder.
    assert not (
        profile.mining.use_instructions or finetune.use_instructions or profile.evaluate.use_instructions
    )
    assert Profile.model_validate(_profile("smollm2")).train.finetune.use_instructions


@needs_shared
def test_gpu_harness_trains_one_worker_per_gpu_over_nccl() -> None:
    cpu = Profile.model_validate(_profile()).train.scaling
    assert (cpu.num_workers, cpu.use_gpu, cpu.backend) == (2, False, "gloo")
    assert cpu.activation_budget_mb == 256.0  # CPU sweeps opt in to gradient-cached steps (memory per worker)
    cfg = HarnessConfig(backbone="smollm2", gpus=1)
    gpu = Profile.model_validate(recipe_profile(cfg, Path("/m"), Path("/c.yaml"), "q")).train.scaling
    assert (gpu.num_workers, gpu.use_gpu, gpu.backend) == (1, True, "nccl")
    assert gpu.activation_budget_mb is None


@needs_shared
@pytest.mark.parametrize(
    ("ablation", "changed"),
    [
        ("no-focal", {"train.finetune.focal_gamma"}),
        ("no-mixing", {"train.finetune.mixing.enabled"}),
        ("causal", {"train.model.bidirectional"}),
        (
            "no-hard-negatives",
            {"mining.enabled", "train.finetune.hard_negatives", "train.finetune.mixing.enabled"},
        ),
        ("no-decontamination", {"decontaminate.enabled"}),
        ("pooling-last", {"train.model.pooling"}),
    ],
)
def test_each_ablation_switches_off_exactly_its_technique(ablation: str, changed: set[str]) -> None:
    base = _profile("smollm2")
    before = copy.deepcopy(base)
    variant = apply_ablation(base, ablation, "smollm2")
    assert base == before  # the full recipe is not modified
    # compared as resolved profiles (merged over the recipe), what a run of each would be configured with
    resolved = [Profile.model_validate(p).model_dump(mode="json") for p in (base, variant)]
    assert _diff(*resolved) - {"name", "evaluate.models", "train.soup_seeds"} == changed
    assert variant["train"]["soup_seeds"] == [0] and variant["evaluate"]["models"] == ["finetune"]


@needs_shared
def test_ablations_that_do_not_apply_fail_loudly() -> None:
    with pytest.raises(ValueError, match="decoder"):
        apply_ablation(_profile(), "causal", "minilm")
    with pytest.raises(ValueError, match="run-level"):
        apply_ablation(_profile(), "no-soup", "minilm")
    assert "causal" not in run_ablations("minilm") and "causal" in run_ablations("smollm2")
    assert set(run_ablations("smollm2")) | {"no-soup"} == set(ABLATIONS)


@needs_shared
def test_english_subsets_of_the_shared_catalog_and_tasks(tmp_path: Path) -> None:
    assert english_tasks(SHARED_EVAL) == [
        "Banking77Classification",
        "MSRP",
        "SICK-R",
        "STSBenchmark",
        "SciFact",
        "TrecQA",
        "TwentyNewsgroupsClustering",
    ]
    out = yaml.safe_load(english_catalog(SHARED_CATALOG, tmp_path / "c.yaml").read_text())
    names = {s["name"] for s in out["sources"]}
    assert "atec" not in names and "ocnli" not in names and "scifact" in names
    assert Path(out["base_dir"]).is_absolute() and (Path(out["base_dir"]) / "scifact").is_dir()


def _evaluation(scores: dict[str, tuple[str, float]]) -> dict:
    return {"scores": {t: {"task_type": f, "main_score": v} for t, (f, v) in scores.items()}}


def test_means_over_tasks_and_families_and_the_target_verdict() -> None:
    base = _evaluation({"a": ("STS", 0.80), "b": ("STS", 0.60), "c": ("Retrieval", 0.40)})
    trained = _evaluation({"a": ("STS", 0.82), "b": ("STS", 0.64), "c": ("Retrieval", 0.385)})
    rows, family_of = summarize({"base": base, "soup": trained})
    assert family_of == {"a": "STS", "b": "STS", "c": "Retrieval"}
    assert rows["base"].mean_tasks == pytest.approx(60.0)
    assert rows["base"].mean_families == pytest.approx((70.0 + 40.0) / 2)
    assert rows["soup"].families["Retrieval"] == pytest.approx(38.5)
    # +1.5 mean, Retrieval -1.5: the mean target is met but a family dropped more than 1 point.
    (line,) = verdicts(rows)
    assert "+1.50" in line and "Retrieval -1.50" in line and "NOT met" in line
    # The decoder's target: +10 on the mean, no family floor.
    (line,) = verdicts(rows, gain=10.0, family_floor=None)
    assert line.endswith("target (≥ +10.0) NOT met")
    (line,) = verdicts(rows, gain=1.5, family_floor=None)
    assert line.endswith("met") and "NOT" not in line
    with pytest.raises(ValueError, match="different task sets"):
        summarize({"base": base, "x": _evaluation({"a": ("STS", 0.5)})})


def test_rendered_report_compares_each_ablation_with_its_reference() -> None:
    ev = {
        "base": _evaluation({"a": ("STS", 0.70), "c": ("Retrieval", 0.40)}),
        "finetune-seed0": _evaluation({"a": ("STS", 0.74), "c": ("Retrieval", 0.42)}),
        "soup": _evaluation({"a": ("STS", 0.75), "c": ("Retrieval", 0.43)}),
    }
    ablations = {
        "no-focal": (_evaluation({"a": ("STS", 0.73), "c": ("Retrieval", 0.42)}), "finetune-seed0"),
        "no-soup": (ev["finetune-seed0"], "soup"),
    }
    context = {"command": "x", "machine": "m", "wall_s": 1, "full_run_wall_s": 1, "data": {}, "config": {}}
    text = render("t", ev, ablations, context)
    # no-focal: mean 57.5 vs seed-0's 58.0; no-soup: 58.0 vs the soup's 59.0, largest change STS -1.00.
    assert "| --no-focal | finetune-seed0 (58.00) | 57.50 | -0.50 |" in text
    assert "| --no-soup | soup (59.00) | 58.00 | -1.00 |" in text and "STS -1.00 |" in text
    assert "| **mean over tasks** | | **55.00** | **58.00** | **59.00** |" in text


def test_recorded_command_leaves_out_the_runs_dir() -> None:
    spec = importlib.util.spec_from_file_location("quality_cli", REPO / "benchmarks" / "quality.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    argv = ["--budget", "4000", "--runs-dir", "/home/me/runs", "--tag", "t", "--runs-dir=/tmp/r"]
    assert cli._without_runs_dir(argv) == ["--budget", "4000", "--tag", "t"]


@pytest.mark.slow
@needs_shared
def test_smoke_run_end_to_end(tmp_path: Path) -> None:
    """The harness on real data, MiniLM and two real tasks, with tiny budgets: every stage runs for real."""
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "quality.py"), "--smoke", "--runs-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (out / "minilm-smoke.md").read_text()
    for row in ("| STSBenchmark | STS |", "| TrecQA | Reranking |", "mean over tasks", "soup + base"):
        assert row in table
    run = out / "minilm-smoke-full"
    for step in ("collect", "dedup", "decontaminate", "balance", "mine", "soup", "evaluate"):
        assert (run / "steps" / f"{step}.json").is_file(), step
    assert (run / "checkpoints" / "soup-with-base" / "soup.json").is_file()
