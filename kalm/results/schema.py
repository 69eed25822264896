"""The results store's schema, row types and JSON flattening, apart from the connection logic in store.py."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kalm.evaluation.protocol import TaskScore

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    model_hash VARCHAR PRIMARY KEY, path VARCHAR NOT NULL, stage VARCHAR, run_id VARCHAR,
    parents VARCHAR[], created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    model_hash VARCHAR NOT NULL, task VARCHAR NOT NULL, task_type VARCHAR NOT NULL,
    task_revision VARCHAR NOT NULL, mteb_version VARCHAR NOT NULL, use_instructions BOOLEAN NOT NULL,
    split VARCHAR NOT NULL, main_score_name VARCHAR NOT NULL, main_score DOUBLE NOT NULL,
    languages VARCHAR[], result_json VARCHAR, evaluated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (model_hash, task, task_revision, mteb_version, use_instructions));
CREATE TABLE IF NOT EXISTS scores (
    model_hash VARCHAR NOT NULL, task VARCHAR NOT NULL, split VARCHAR NOT NULL, subset VARCHAR NOT NULL,
    metric VARCHAR NOT NULL, value DOUBLE, mteb_version VARCHAR NOT NULL, task_revision VARCHAR NOT NULL,
    evaluated_at TIMESTAMP NOT NULL, use_instructions BOOLEAN NOT NULL);
"""


@dataclass(frozen=True)
class ModelRecord:
    """One registered model; `path` is where it was last seen (a copy elsewhere keeps the same hash)."""

    model_hash: str
    path: str
    stage: str | None
    run_id: str | None
    parents: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class StoredResult:
    """A cached evaluation: the summary row and mteb's result JSON (None if it was recorded without it)."""

    score: TaskScore
    result_json: dict[str, Any] | None
    evaluated_at: datetime


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def is_lock_error(error: Exception) -> bool:
    text = str(error).lower()
    return "lock" in text or "different configuration" in text


def metric_rows(result_json: Mapping[str, Any]) -> Iterator[tuple[str, str, str, float]]:
    """(split, subset, metric, value) for every top-level numeric metric of an mteb result JSON."""
    for split, entries in (result_json.get("scores") or {}).items():
        for entry in entries:
            subset = str(entry.get("hf_subset", "default"))
            for metric, value in entry.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    yield split, subset, metric, float(value)
