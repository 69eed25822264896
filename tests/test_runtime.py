"""Process defaults: library progress bars only for a terminal, our packages' logs routed to Prefect."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kalm.settings import PROJECT_ROOT

PROBE = """
import json, logging, os
from kalm import runtime
runtime.configure()
print(json.dumps({
    "hub": os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"),
    "datasets": os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS"),
    "extra": os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS"),
    "level": logging.getLogger("kalm.evaluation.run").getEffectiveLevel(),
}))
"""


def configured(**env: str) -> dict:
    """What a fresh process (stderr a pipe, never a terminal) gets from ``runtime.configure``."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_DISABLE", "HF_DATASETS_DISABLE"))
    }
    clean.pop("KALM_PROGRESS", None)
    clean.pop("PREFECT_LOGGING_EXTRA_LOGGERS", None)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT_ROOT,
        env=clean | {"PYTHONPATH": str(PROJECT_ROOT)} | env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("env", "quiet"), [({}, True), ({"KALM_PROGRESS": "0"}, True), ({"KALM_PROGRESS": "1"}, False)]
)
def test_library_bars_are_off_without_a_terminal(env: dict, quiet: bool) -> None:
    got = configured(**env)
    assert (got["hub"], got["datasets"]) == (("1", "1") if quiet else (None, None))


def test_our_loggers_log_progress_and_keep_a_users_extra_loggers() -> None:
    got = configured(PREFECT_LOGGING_EXTRA_LOGGERS="mylib")
    assert got["extra"] == "mylib,kalm,data_catalog,training"
    assert got["level"] == 20  # INFO: progress lines are not filtered out
