"""The profiles a user runs: the paper's run resolved offline, the laptop run held to the harness's best setting,
the plan of each, and decontamination that refuses to train on an official benchmark it could not read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.harness.profiles import HarnessConfig, recipe_profile
from kalm.cli import app
from kalm.run.paths import RunPaths
from kalm.run.profile import Profile, load_profile
from training.config import StageRecipe

PROFILES = ("demo", "shared-minilm", "kalm-v2")


def test_the_papers_run_resolves_every_stage_to_its_training_job_offline(tmp_path):
    profile = load_profile("kalm-v2").with_overrides()
    run = RunPaths(tmp_path / "kalm-v2")
    pretrain = profile.training_job(run, "pretrain")
    finetune = profile.training_job(
        run, "finetune", seed=2, init_from=run.checkpoint("pretrain"), data_dir=run.mined
    )
    recipes = {name: StageRecipe.from_yaml(name) for name in ("pretrain", "finetune")}
    assert pretrain.stage == recipes["pretrain"].stage  # the recipe as it is
    assert finetune.stage == recipes["finetune"].stage.model_copy(update={"seed": 2})
    assert finetune.init_from == str(run.checkpoint("pretrain")) and finetune.data_dir == str(run.mined)
    model = finetune.model
    assert (model.base, model.pooling, model.max_length, model.bidirectional) == (
        "Qwen/Qwen2-0.5B",
        "mean",
        512,
        True,
    )
    assert model.packed and model.attn_implementation == "flex_attention"
    scaling = finetune.scaling
    assert (scaling.use_gpu, scaling.backend, scaling.strategy, scaling.zero_stage) == (
        True,
        "nccl",
        "deepspeed",
        2,
    )
    assert finetune.stage.bf16 and finetune.stage.matryoshka.dims[0] == 896
    assert profile.train.soup_seeds == [0, 1, 2]
    assert profile.evaluate.benchmarks == ["MTEB(eng, v1)", "MTEB(cmn, v1)"]
    assert profile.eval_tasks_dir(run) is None  # scored on the official benchmarks only
    assert not profile.decontaminate.allow_unchecked_benchmarks
    catalog = profile.resolve_catalog(run).catalog
    assert {"trec_covid", "dbpedia", "arguana"}.isdisjoint(s.name for s in catalog.sources)  # eval leaks off


def test_the_laptop_profile_is_the_quality_harness_best_setting(tmp_path):
    """configs/shared-minilm.yaml is what `benchmarks/quality.py --budget 4000 --learning-rate 6e-5` ran."""
    from kalm.run.backbones import minilm_path

    harness = HarnessConfig(budget=4000, learning_rate=6e-5)
    expected = Profile.model_validate(
        recipe_profile(harness, minilm_path(), Path("data_catalog/shared.yaml"), "shared-minilm")
    )
    profile = load_profile("shared-minilm").with_overrides()
    run = RunPaths(tmp_path / "r")
    for section in ("dedup", "balance", "mining", "train"):
        assert getattr(profile, section) == getattr(expected, section), section
    assert (
        profile.evaluate.tasks == expected.evaluate.tasks
        and profile.evaluate.models == expected.evaluate.models
    )
    assert profile.eval_tasks_dir(run) == Path(expected.evaluate.tasks_dir).resolve()
    assert profile.decontamination_tasks_dir(run) == Path(expected.decontaminate.tasks_dir).resolve()
    sources = profile.resolve_catalog(run).catalog.sources
    assert sources and all(s.languages == ["eng"] for s in sources)  # the harness's English catalog


def test_a_profile_names_a_packaged_backbone():
    from kalm.run.profile import ProfileError, resolve_backbone

    assert Path(resolve_backbone("packaged:all-MiniLM-L6-v2"), "modules.json").is_file()
    assert resolve_backbone("Qwen/Qwen2-0.5B") == "Qwen/Qwen2-0.5B"
    with pytest.raises(ProfileError, match="unknown packaged backbone 'nope'"):
        resolve_backbone("packaged:nope")


@pytest.mark.parametrize("name", PROFILES)
def test_kalm_plan_prints_a_plan_for_every_profile(name, tmp_path):
    result = CliRunner().invoke(app, ["plan", "--profile", name, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"# Plan: profile `{name}`" in result.output and "Assumptions:" in result.output
    plan = json.loads(
        CliRunner().invoke(app, ["plan", "--profile", name, "--runs-dir", str(tmp_path), "--json"]).output
    )
    stages = {s["stage"]: s for s in plan["stages"]}
    assert any(s.startswith("train-finetune-seed0") for s in stages)
    assert all(s["rows"] is None or s["rows"] >= 0 for s in stages.values())
    if name == "kalm-v2":  # before any collection: the paper's 470M pre-training pairs, kept by the rates
        rates, pretrain = plan["rates"], stages["train-pretrain"]
        rows = int(470_000_000 * rates["dedup_keep"] * rates["decontaminate_keep"])
        assert pretrain["rows"] == rows and pretrain["steps"] == rows // 1024
        assert pretrain["gpu_hours"] == pytest.approx(pretrain["tokens"] / rates["train_tokens_per_s"] / 3600)
        assert any("expected_rows" in a for a in plan["assumptions"])


def test_decontamination_refuses_an_unread_benchmark_offline_in_one_line(tmp_path):
    from kalm.evaluation.task_texts import UncheckedBenchmark, benchmark_texts

    with pytest.raises(UncheckedBenchmark, match=r"cannot read the test texts of MTEB\(eng, v1\): mteb task"):
        benchmark_texts(["MTEB(eng, v1)"])
    texts, unchecked = benchmark_texts(["MTEB(eng, v1)"], allow_unchecked=True)
    assert texts == {} and len(unchecked) == 56 and "STSBenchmark@" in " ".join(unchecked)
