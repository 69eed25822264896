"""``kalm plan`` against what a real run then did: rows and steps within the plan's stated margins."""

from __future__ import annotations

import json

import pytest

from kalm.run.paths import RunPaths
from kalm.run.plan import plan_run
from kalm.run.profile import load_profile
from kalm.run.rates import load_rates

pytestmark = pytest.mark.slow
MARGIN = 0.20  # what plan_markdown states for rows and steps


def within(estimate: float, actual: float) -> bool:
    return abs(estimate - actual) <= MARGIN * actual


def test_the_plan_made_before_a_run_matches_what_it_did(small_run):
    profile_path, run_dir = small_run
    profile = load_profile(str(profile_path)).with_overrides()
    before = plan_run(profile, RunPaths(run_dir.parent / "never-run"), load_rates("cpu-tiny"))
    assert before.stages[0].basis == "catalog hints" and not any(s.done for s in before.stages)
    steps = {
        p.stem: json.loads(p.read_text())
        for p in (run_dir / "steps").glob("*.json")
        if ".outputs" not in p.name
    }
    balanced = sum(
        c["rows_after"] for cats in steps["balance"]["stats"]["stages"].values() for c in cats.values()
    )
    planned = {s.stage: s for s in before.stages}
    assert within(planned["data (collect, dedup, decontaminate, balance)"].rows, balanced)
    assert within(planned["mine"].rows, steps["mine"]["stats"]["rows_out"])
    stages = steps["balance"]["stats"]["stages"]
    assert within(planned["train-pretrain"].rows, sum(c["rows_after"] for c in stages["pretrain"].values()))
    for name in ("train-pretrain", "train-finetune-seed0", "train-finetune-seed1"):
        assert within(planned[name].steps, steps[name]["metrics"]["steps"]), name

    after = plan_run(profile, RunPaths(run_dir), load_rates("cpu-tiny"))
    assert all(s.done for s in after.stages) and after.stages[0].basis == "counted"
    assert after.stages[0].rows == balanced
