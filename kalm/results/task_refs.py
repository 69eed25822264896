"""Identities of evaluation tasks, cheap enough to compute before deciding whether anything must run.

A stored score is only reusable for the same task *content and protocol*: the revision of a local task is the
content hash of its directory plus a digest of how it is scored (its MTEB counterpart's protocol, see
`kalm.evaluation.counterpart`), exactly what `kalm.evaluation.local_tasks` gives mteb as the dataset revision
(and mteb writes into its result JSON), so a cache key computed here matches the one a fresh evaluation records. An official
mteb task's revision is the dataset revision mteb pins for it (plus a digest of the subsets and splits when a
benchmark evaluates only part of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kalm.evaluation.official import official_revision
from kalm.evaluation.task_spec import select_task_specs

if TYPE_CHECKING:
    from mteb.abstasks.abstask import AbsTask


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
    from kalm.evaluation.local_tasks import task_revision

    selected = select_task_specs(Path(tasks_dir), names)
    return [TaskRef(s.name, s.type, task_revision(s)) for s in selected]


def official_task_refs(tasks: Sequence[AbsTask]) -> list[TaskRef]:
    """Store keys of official mteb task objects, from their metadata (no data is loaded)."""
    return [TaskRef(t.metadata.name, str(t.metadata.type), official_revision(t)) for t in tasks]
