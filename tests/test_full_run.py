"""End to end: the full-run flow on the demo profile, a cached re-run, and a SIGKILL mid-training then resume;
what the run's log and artifacts show a person (progress lines, no library progress bars, scores, links)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kalm.settings import PROJECT_ROOT
from training.export import METRICS_FILE

pytestmark = pytest.mark.slow

EXPECTED_TASKS = {
    "DemoSTS",
    "DemoRetrieval",
    "DemoClassification",
    "DemoClustering",
    "DemoPairClassification",
    "DemoReranking",
}
CHECKPOINTS = ("pretrain", "finetune-seed0", "finetune-seed1", "soup")


def task_run_states(flow_run_id) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run.state.name for run in runs}


@pytest.fixture(scope="module")
def uninterrupted(prefect_harness, tmp_path_factory):
    from flows.full_run import full_run

    runs_dir = tmp_path_factory.mktemp("runs")
    state = full_run(profile="demo", run_id="e2e", runs_dir=str(runs_dir), return_state=True)
    assert state.is_completed(), state.message
    return runs_dir / "e2e", state


def test_full_run_outputs(uninterrupted):
    run_dir, state = uninterrupted
    result = state.result()
    report = (run_dir / "report.md").read_text()
    assert "## Evaluation" in report and "soup" in report
    evaluation = result["evaluation"]
    assert set(evaluation) == set(CHECKPOINTS)
    for scores in evaluation.values():
        assert set(scores["scores"]) == EXPECTED_TASKS
        assert all(0.0 <= s["main_score"] <= 1.0 for s in scores["scores"].values())
    assert (run_dir / "eval" / "soup" / "scores.json").exists()
    soup = json.loads((run_dir / "checkpoints" / "soup" / "soup.json").read_text())
    assert len(soup["ingredients"]) == 2
    for name in CHECKPOINTS[:3]:
        metrics = json.loads((run_dir / "steps" / f"train-{name}.json").read_text())["metrics"]
        assert metrics["steps"] > 0 and metrics["final_loss"] == metrics["final_loss"]  # not NaN
    assert set(task_run_states(state.state_details.flow_run_id).values()) == {"Completed"}


def test_lineage_traces_the_soup_to_its_inputs(uninterrupted):
    from kalm.run.lineage import chain, read_lineage, step_of

    run_dir, _ = uninterrupted
    records = read_lineage(run_dir)
    step = step_of(records, run_dir / "checkpoints" / "soup", run_dir)
    assert step == "soup"
    text = "\n".join(chain(run_dir, step))
    for ancestor in (
        "train-finetune-seed0",
        "train-finetune-seed1",
        "train-pretrain",
        "balance",
        "dedup",
        "collect",
        "input source:demo_articles",
    ):
        assert ancestor in text
    assert "[changed since]" not in text
    assert records["soup"]["packages"]["torch"].startswith("2.")


def test_rerun_is_all_cached(uninterrupted):
    from flows.full_run import full_run

    run_dir, first = uninterrupted
    weights = run_dir / "checkpoints" / "soup" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    again = full_run(profile="demo", run_id="e2e", runs_dir=str(run_dir.parent), return_state=True)
    assert again.is_completed()
    states = task_run_states(again.state_details.flow_run_id)
    assert len(states) == len(task_run_states(first.state_details.flow_run_id)) >= 9
    assert set(states.values()) == {"Cached"}, states
    assert weights.stat().st_mtime_ns == mtime
    assert again.result()["evaluation"] == first.result()["evaluation"]


# A third-party progress bar as it lands in a log: "Loading weights: 100%|██████████| 26/26 [00:00<00:00, …]".
PROGRESS_BAR = re.compile(r"\d+%\|.*\|")


def flow_run_logs(flow_run_id) -> list[str]:
    """Every log line of the flow run and its task runs, as the Prefect UI shows them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)  # logs go to the API in the background
    found: list[str] = []
    with get_client(sync_client=True) as client:
        while page := client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=len(found)
        ):
            found += [log.message for log in page]
    return found


def test_flow_log_shows_our_progress_and_artifacts_what_to_look_at(uninterrupted):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_dir, state = uninterrupted
    flow_run_id = state.state_details.flow_run_id
    logs = flow_run_logs(flow_run_id)
    assert not [line for line in logs if PROGRESS_BAR.search(line)]
    for name in CHECKPOINTS[:3]:
        assert any(
            re.match(rf"train {name}: \d+/\d+ steps \(100%\), [\d.,]+ steps/s", line) for line in logs
        ), name
    for name in CHECKPOINTS:
        assert any(line.startswith(f"evaluate e2e/{name}: task 6/6 ") for line in logs), name

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    (scores,) = [a for a in artifacts if a.key == "scores-e2e"]
    rows = json.loads(scores.data) if isinstance(scores.data, str) else scores.data
    assert len(rows) == len(CHECKPOINTS) * (len(EXPECTED_TASKS) + 2)  # every task, then MTK and MTY
    links = [a.data for a in artifacts if a.type == "markdown" and a.key is None]
    assert any(link.endswith(f"({(run_dir / 'report.md').resolve().as_uri()})") for link in links), links
    assert sum("/figures/" in link for link in links) >= 3, links


def kalm_run(runs_dir: Path, log: Path, profile: str = "demo") -> subprocess.Popen:
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("PREFECT_API")]:
        env.pop(key)  # a fresh process with its own ephemeral API, as a user's shell would have
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kalm.cli",
            "run",
            "--profile",
            profile,
            "--run-id",
            "e2e",
            "--runs-dir",
            str(runs_dir),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def registered_checkpoint(storage: Path) -> int | None:
    """The step of the checkpoint Ray Train registered last for a stage: what a restarted driver resumes from
    (a step folder can exist a moment before Ray records it, so the folders alone do not say)."""
    from ray.train.v2._internal.constants import CHECKPOINT_MANAGER_SNAPSHOT_FILENAME

    try:
        snapshot = json.loads((storage / CHECKPOINT_MANAGER_SNAPSHOT_FILENAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or being written
        return None
    latest = snapshot.get("latest_checkpoint_result")
    return int(latest["checkpoint_dir_name"].removeprefix("step-")) if latest else None


def kill_session(sid: int, timeout_s: float = 60) -> None:
    """SIGKILL every process of the session `sid` (the run, its Prefect server and its whole local Ray: Ray's
    workers sit in process groups of their own) and wait until none is left (zombies aside)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if os.getsid(int(entry.name)) == sid and state != "Z":
                    left.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
        if not left:
            return
        assert time.monotonic() < deadline, f"processes of the killed run still alive: {left}"
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def test_sigkill_inside_pretraining_after_a_checkpoint_then_resume(uninterrupted, tmp_path):
    """SIGKILL the whole run (driver, Prefect, Ray) inside pre-training, once Ray Train has registered a step
    checkpoint: the re-run reuses the data steps, resumes pre-training from that step, and ends byte-identical
    to the uninterrupted run. The profile is the demo's with a checkpoint every 5 of pre-training's 33 steps
    (the demo: every 20), which changes when checkpoints are written, never the weights."""
    reference_dir, _ = uninterrupted
    profile = yaml.safe_load((PROJECT_ROOT / "configs" / "demo.yaml").read_text())
    profile["train"]["scaling"]["checkpoint_every_steps"] = 5
    (tmp_path / "demo-every-5.yaml").write_text(yaml.safe_dump(profile))
    run_dir = tmp_path / "e2e"
    storage = run_dir / "ray" / "pretrain"
    first = kalm_run(tmp_path, tmp_path / "first.log", str(tmp_path / "demo-every-5.yaml"))
    deadline = time.monotonic() + 900
    try:
        while not registered_checkpoint(storage):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no pre-training checkpoint was registered in time"
            time.sleep(0.05)
    finally:
        kill_session(first.pid)
        first.wait()
    at_kill = registered_checkpoint(storage)  # Ray is dead: this is the checkpoint a re-run must resume from
    assert at_kill is not None and (storage / f"step-{at_kill:08d}" / "state.json").exists()
    print(f"killed with the step-{at_kill} checkpoint registered")
    assert not (run_dir / "checkpoints" / "pretrain").exists(), "killed too late: pre-training had finished"
    assert not (run_dir / "steps" / "train-pretrain.json").exists()

    second = kalm_run(tmp_path, tmp_path / "second.log", str(tmp_path / "demo-every-5.yaml"))
    assert second.wait(timeout=900) == 0, (tmp_path / "second.log").read_text()[-3000:]
    log = (tmp_path / "second.log").read_text()
    for console in ((tmp_path / "first.log").read_text(), log):  # no library bars in either console
        assert not PROGRESS_BAR.search(console)
    assert re.search(r"train \S+: \d+/\d+ steps", log)  # our own progress lines instead
    cached = set(re.findall(r"Task run '([a-z]+)-[0-9a-z]+' - Finished in state Cached", log))
    assert {"collect", "dedup", "balance"} <= cached and "train" not in cached, (cached, log[-3000:])
    pretrain = json.loads((run_dir / "checkpoints" / "pretrain" / METRICS_FILE).read_text())
    assert pretrain["resumed_at"] == [at_kill] and 0 < at_kill < pretrain["steps"], pretrain["resumed_at"]
    expected = json.loads((reference_dir / "checkpoints" / "pretrain" / METRICS_FILE).read_text())
    assert pretrain["losses"] == expected["losses"]
    for name in CHECKPOINTS[1:3]:  # the fine-tunes ran once, after the kill
        assert json.loads((run_dir / "checkpoints" / name / METRICS_FILE).read_text())["resumed_at"] == []
    for name in CHECKPOINTS:
        resumed = (run_dir / "checkpoints" / name / "model.safetensors").read_bytes()
        assert resumed == (reference_dir / "checkpoints" / name / "model.safetensors").read_bytes(), name
    for name in CHECKPOINTS:
        assert main_scores(run_dir / "eval" / name) == main_scores(reference_dir / "eval" / name), name


def main_scores(eval_dir: Path) -> dict[str, float]:
    """Per-task main scores (scores.json also names the model path and folder hash, which differ per run)."""
    scores = json.loads((eval_dir / "scores.json").read_text())
    return {task: entry["main_score"] for task, entry in scores["tasks"].items()}
