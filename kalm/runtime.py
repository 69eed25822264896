"""Process-wide defaults that must be in place before Prefect, Ray or Hugging Face libraries are imported.

The one place that sets process environment defaults: the CLI, the flows, the evaluation package, tests and
benchmarks call :func:`configure` first. Values already in the environment win (``setdefault``).
"""

from __future__ import annotations

import os

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
}


def configure() -> None:
    from kalm.settings import get_settings

    offline = get_settings().hf_offline
    for key, value in DEFAULTS.items():
        if key.endswith("_OFFLINE") and not offline:
            continue
        os.environ.setdefault(key, value)
