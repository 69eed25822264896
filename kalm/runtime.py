"""Process-wide defaults that must be in place before Prefect, Ray or Hugging Face libraries are imported.

The one place that sets process environment defaults: the CLI, the flows, the evaluation package, tests and
benchmarks call :func:`configure` first. Values already in the environment win (``setdefault``).

Output follows one rule: progress bars only where a person watches a terminal. Without one (a pipe, CI, a
Prefect worker, a deployment) the Hugging Face libraries' bars ("Loading weights", mteb's "Standardizing text
corpus format", ``datasets`` maps) are switched off, since a log keeps every redraw of a bar as a line; our own
long steps log progress lines instead (:mod:`kalm.progress`), and those lines reach the Prefect UI too because
our packages' loggers get Prefect's API handler (``PREFECT_LOGGING_EXTRA_LOGGERS``).
"""

from __future__ import annotations

import logging
import os
import sys

DEFAULTS = {
    # No hub access at run time: everything loads from local paths (KALM_HF_OFFLINE=false lifts it).
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # The ephemeral Prefect API takes 10-26 s to start on 2 cores; the default timeout is too short.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "RAY_USAGE_STATS_ENABLED": "0",
    # Library code logs outside flow runs too (tests, `kalm results`): no warning that the UI cannot have it.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}
# Read by huggingface_hub (so transformers) and datasets when they are imported; the interactive CLI keeps them.
QUIET_PROGRESS_BARS = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
# Packages whose INFO lines (progress of long steps, per-task scores) belong in a flow run's log.
LIBRARY_LOGGERS = ("kalm", "data_catalog", "training")


def interactive() -> bool:
    """Someone watches: stderr is a terminal, unless ``KALM_PROGRESS`` says otherwise (1: bars, 0: none).

    ``training.telemetry.progress_enabled`` applies the same rule to the training bar (``training`` imports
    nothing from ``kalm``).
    """
    flag = os.environ.get("KALM_PROGRESS")
    if flag is not None:
        return flag == "1"
    return sys.stderr is not None and sys.stderr.isatty()


def configure() -> None:
    from kalm.settings import get_settings

    offline = get_settings().hf_offline
    for key, value in DEFAULTS.items():
        if key.endswith("_OFFLINE") and not offline:
            continue
        os.environ.setdefault(key, value)
    if not interactive():
        for key, value in QUIET_PROGRESS_BARS.items():
            os.environ.setdefault(key, value)
    route_library_logs()


def route_library_logs() -> None:
    """Our packages log at INFO, to the console and (inside a flow or task run) to the Prefect API.

    Prefect gives the loggers named in ``PREFECT_LOGGING_EXTRA_LOGGERS`` its API handler when it sets up
    logging; when that has happened already (a deployment imports Prefect before the flow module), the
    handlers of its ``prefect.extra`` logger are added here directly.
    """
    named = [n for n in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",") if n.strip()]
    missing = [n for n in LIBRARY_LOGGERS if n not in named]
    if missing:
        os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(named + missing)
    api_handlers = logging.getLogger("prefect.extra").handlers
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        for handler in api_handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
