"""Re-evaluation: score every registered model on every configured task whose result is missing or stale.

Run on a schedule, this keeps the leaderboard complete when tasks are added or revised or mteb is upgraded.
It is idempotent by construction: the plan is "pairs the store has no current result for", and evaluating
a pair records it, so a second run finds nothing to do. A registered model whose folder is gone, or now holds
different weights (a re-trained checkpoint at the same path registers under its new hash), is skipped and
reported rather than silently scored under the wrong identity.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kalm.hashing import hash_directory
from kalm.results.cached import EmbedderFactory, evaluate_with_store
from kalm.results.store import ModelRecord, ResultsStore, open_store
from kalm.results.task_refs import TaskRef, current_mteb_version, local_task_refs
from kalm.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

DEFAULT_TASKS_DIR = PROJECT_ROOT.parent / "shared" / "datasets" / "eval"


@dataclass
class ReevaluationPlan:
    """Which tasks each model still needs (model hash -> task names), and which models cannot be scored."""

    tasks_dir: Path
    tasks: list[TaskRef]
    todo: dict[str, list[str]] = field(default_factory=dict)
    models: dict[str, ModelRecord] = field(default_factory=dict)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(model, task) for model, tasks in self.todo.items() for task in tasks]


def plan_reevaluation(
    store: ResultsStore,
    tasks_dir: Path | str | None = None,
    task_names: Sequence[str] | None = None,
    *,
    use_instructions: bool = True,
) -> ReevaluationPlan:
    """The missing or stale (model, task) pairs over all registered models and the configured tasks."""
    root = Path(tasks_dir) if tasks_dir is not None else DEFAULT_TASKS_DIR
    refs = local_task_refs(root, task_names)
    models = {m.model_hash: m for m in store.models()}
    pairs = store.missing_pairs(
        list(models), refs, mteb_version=current_mteb_version(), use_instructions=use_instructions
    )
    todo: dict[str, list[str]] = {}
    for model, task in pairs:
        todo.setdefault(model, []).append(task)
    return ReevaluationPlan(root, refs, todo, models)


def _unscorable(record: ModelRecord) -> str | None:
    path = Path(record.path)
    if not path.is_dir():
        return f"{path} no longer exists"
    if hash_directory(path) != record.model_hash:
        return f"{path} now holds a different model"
    return None


def run_plan(
    plan: ReevaluationPlan,
    store: ResultsStore,
    output_root: Path,
    *,
    batch_size: int = 32,
    use_instructions: bool = True,
    embedder_factory: EmbedderFactory | None = None,
) -> dict[str, Any]:
    """Evaluate the plan's pairs, model by model; returns what ran and what was skipped (and why)."""
    evaluated: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for model_hash, task_names in plan.todo.items():
        record = plan.models[model_hash]
        reason = _unscorable(record)
        if reason is not None:
            logger.warning("re-evaluation: skipping %s: %s", model_hash[:12], reason)
            skipped[model_hash] = reason
            continue
        result = evaluate_with_store(
            record.path,
            plan.tasks_dir,
            output_root / model_hash[:16],
            store=store,
            task_names=task_names,
            batch_size=batch_size,
            use_instructions=use_instructions,
            embedder_factory=embedder_factory,
            model_hash=model_hash,
        )
        evaluated[model_hash] = result.evaluated
    return {
        "tasks": [t.name for t in plan.tasks],
        "planned": plan.pairs,
        "evaluated": evaluated,
        "skipped": skipped,
    }


def reevaluate_all(
    store: ResultsStore | Path | str | None = None,
    tasks_dir: Path | str | None = None,
    task_names: Sequence[str] | None = None,
    *,
    output_root: Path | str | None = None,
    batch_size: int = 32,
    use_instructions: bool = True,
    embedder_factory: EmbedderFactory | None = None,
) -> dict[str, Any]:
    """Plan and run; mteb outputs go to `output_root/<model hash>` (default: ``<store dir>/reevaluate``)."""
    results_store = open_store(store)
    plan = plan_reevaluation(results_store, tasks_dir, task_names, use_instructions=use_instructions)
    root = Path(output_root) if output_root is not None else results_store.path.parent / "reevaluate"
    return run_plan(
        plan,
        results_store,
        root,
        batch_size=batch_size,
        use_instructions=use_instructions,
        embedder_factory=embedder_factory,
    )
