"""Shared fixtures: offline defaults for every test, one Prefect test harness per session when needed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml

# Tests (and the `kalm run` subprocesses they start) keep the results store, server state and pid files in a
# throw-away folder, never in the project's .state/.
os.environ["KALM_STATE_DIR"] = tempfile.mkdtemp(prefix="kalm-test-state-")

from kalm import runtime

runtime.configure()

# Prefect's console log handler binds the stream it writes to when logging is first set up: set it up now, not
# inside the first CliRunner invocation that imports a flow (that stream is closed once the command returns).
from prefect.logging.configuration import setup_logging  # noqa: E402

setup_logging()

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory) -> Path:
    from data_catalog.demo_data import write_demo_sources

    root = tmp_path_factory.mktemp("demo_raw")
    write_demo_sources(root)
    return root


def small_profile(tmp_path: Path) -> Path:
    """The demo recipe with one pre-training epoch, trained in-process: a whole run in a few minutes."""
    profile = yaml.safe_load((REPO_ROOT / "configs" / "demo.yaml").read_text())
    profile["name"] = "small"
    profile["launcher"] = "local"
    profile["train"]["pretrain"]["epochs"] = 1
    profile["train"]["soup_seeds"] = [0, 1]
    profile["evaluate"] = {"batch_size": 64, "models": ["soup"], "tasks": ["DemoSTS", "DemoRetrieval"]}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


@pytest.fixture(scope="session")
def small_run(prefect_harness, tmp_path_factory):
    from flows.full_run import full_run

    root = tmp_path_factory.mktemp("safe")
    profile = small_profile(root)
    state = full_run(profile=str(profile), run_id="s", runs_dir=str(root / "runs"), return_state=True)
    assert state.is_completed(), state.message
    return profile, root / "runs" / "s"
