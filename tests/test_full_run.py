"""End to end: the full-run flow on the demo profile, then again with every step cached."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

EXPECTED_TASKS = {
    "DemoSTS",
    "DemoRetrieval",
    "DemoClassification",
    "DemoClustering",
    "DemoPairClassification",
    "DemoReranking",
}


def task_run_states(flow_run_id) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run.state.name for run in runs}


def test_full_run_then_cached_rerun(prefect_harness, tmp_path):
    from flows.full_run import full_run

    state = full_run(profile="demo", run_id="e2e", runs_dir=str(tmp_path), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    run_dir = tmp_path / "e2e"
    report = (run_dir / "report.md").read_text()
    assert "## Evaluation" in report and "soup" in report
    evaluation = result["evaluation"]
    assert set(evaluation) == {"pretrain", "finetune-seed0", "finetune-seed1", "soup"}
    for scores in evaluation.values():
        assert set(scores["scores"]) == EXPECTED_TASKS
        assert all(0.0 <= s["main_score"] <= 1.0 for s in scores["scores"].values())
    assert (run_dir / "eval" / "soup" / "scores.json").exists()
    soup = json.loads((run_dir / "checkpoints" / "soup" / "soup.json").read_text())
    assert len(soup["ingredients"]) == 2
    for name in ("pretrain", "finetune-seed0", "finetune-seed1"):
        metrics = json.loads((run_dir / "steps" / f"train-{name}.json").read_text())["metrics"]
        assert metrics["steps"] > 0 and metrics["final_loss"] == metrics["final_loss"]  # not NaN
    first_states = task_run_states(state.state_details.flow_run_id)
    assert set(first_states.values()) == {"Completed"}

    weights = run_dir / "checkpoints" / "soup" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    again = full_run(profile="demo", run_id="e2e", runs_dir=str(tmp_path), return_state=True)
    assert again.is_completed()
    states = task_run_states(again.state_details.flow_run_id)
    assert len(states) == len(first_states) >= 9
    assert set(states.values()) == {"Cached"}, states
    assert weights.stat().st_mtime_ns == mtime
    assert again.result()["evaluation"] == evaluation
