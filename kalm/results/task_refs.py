"""Identities of evaluation tasks, cheap enough to compute before deciding whether anything must run.

A stored score is only reusable for the same task *content*: the revision is the content hash of the task
directory, exactly what `kalm.evaluation.local_tasks` gives mteb as the dataset revision (and mteb writes into
its result JSON), so a cache key computed here matches the one a fresh evaluation records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kalm.evaluation.task_spec import select_task_specs
from kalm.hashing import hash_directory


@dataclass(frozen=True)
class TaskRef:
    """A task as the store keys it: name, family (mteb task type) and content revision."""

    name: str
    type: str
    revision: str


def current_mteb_version() -> str:
    """The installed mteb version; a new one can change scores, so it is part of every cache key."""
    import mteb

    return str(mteb.__version__)


def local_task_refs(tasks_dir: Path | str, names: Sequence[str] | None = None) -> list[TaskRef]:
    """The tasks `kalm.evaluation.load_local_tasks` would evaluate, in the same order, without loading data.

    Same selection rules: every sub-directory with a task.json, sorted by name, or `names` in the order given;
    an unknown name is an error.
    """
    selected = select_task_specs(Path(tasks_dir), names)
    return [TaskRef(s.name, s.type, hash_directory(s.task_dir)) for s in selected]
