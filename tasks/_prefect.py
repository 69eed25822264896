"""The one place that says how a pipeline step becomes a cached, persisted Prefect task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE, Inputs

# Inputs are JSON-able values that include the upstream step's content fingerprint, so a cache hit means
# "same code, same config, same input bytes"; results are stored inside the run directory (set by the flow).
CACHE_POLICY = INPUTS + TASK_SOURCE


def pipeline_task(name: str, cached: bool = True, exclude: tuple[str, ...] = (), **options: Any) -> Callable:
    """``cached=False`` for a step whose own store is the cache (the results store of evaluation);
    ``exclude`` names inputs that never change the output (where a step runs), left out of the cache key."""
    if not cached:
        return task(name=name, cache_policy=NO_CACHE, **options)
    policy = Inputs(exclude=list(exclude)) + TASK_SOURCE if exclude else CACHE_POLICY
    return task(name=name, persist_result=True, cache_policy=policy, **options)
