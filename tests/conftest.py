"""Shared fixtures: offline defaults for every test, one Prefect test harness per session when needed.

Under ``CI=true`` (what the CI runner sets) a green run must mean every collected test ran: the session stops
at once with one line when ``../shared/datasets`` is missing, and any skip (a missing package, a missing
system tool, …) is reported as an error that names the skip's reason. Off CI, the same tests skip with a reason.
"""

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
SHARED_DATASETS = SHARED / "datasets"
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
MISSING_SHARED = f"shared datasets not found at {SHARED_DATASETS} (CI=true fails instead of skipping)"

# Tests reading ../shared/datasets: off CI they skip when it is absent; under CI=true the session never starts.
needs_shared = pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason=MISSING_SHARED)


def require_shared(path: Path = SHARED_DATASETS) -> Path:
    """``path`` under ../shared, or skip the calling test/fixture (off CI) when the datasets are absent."""
    if not path.exists():
        pytest.skip(f"{path} not found: {MISSING_SHARED}")
    return path


def pytest_sessionstart(session: pytest.Session) -> None:
    if IN_CI and not SHARED_DATASETS.is_dir():
        pytest.exit(
            f"error: CI=true but the real datasets are missing: {SHARED_DATASETS} does not exist",
            returncode=1,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI=true a skipped test is an error naming its reason: CI must not pass with tests left out."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """The same for a module skipped as a whole at collection time."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"


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


# CPU float sums depend on the thread count: the small run trains with this many torch threads, and a test that
# compares a `kalm run` subprocess to it byte for byte gives that process the same (OMP_NUM_THREADS).
SMALL_RUN_THREADS = 1


@pytest.fixture(scope="session")
def small_run(prefect_harness, tmp_path_factory):
    import torch

    from flows.full_run import full_run

    root = tmp_path_factory.mktemp("safe")
    profile = small_profile(root)
    previous = torch.get_num_threads()
    torch.set_num_threads(SMALL_RUN_THREADS)
    try:
        state = full_run(profile=str(profile), run_id="s", runs_dir=str(root / "runs"), return_state=True)
    finally:
        torch.set_num_threads(previous)
    assert state.is_completed(), state.message
    return profile, root / "runs" / "s"
