"""Which tasks one evaluation runs: local task directories, official mteb tasks and benchmarks, or both.

The rule for a ``--task`` name is "a local task of the tasks directory if one has that name, else an official
mteb task", so existing local selections keep working and official names need no prefix. Local and official
tasks share the results store and the result files, which are keyed by task name, so one selection never
holds a local and an official task of the same name (the shared datasets copy several MTEB tasks under their
MTEB names): that is an error naming both, not a silent overwrite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from kalm.evaluation.official import TaskSelectionError, resolve_official_tasks
from kalm.evaluation.task_spec import select_task_specs

if TYPE_CHECKING:
    from mteb.abstasks.abstask import AbsTask


@dataclass
class TaskSelection:
    """Local tasks (`tasks_dir` and `local_names`, None = all of them) and official mteb task objects."""

    tasks_dir: Path | None = None
    local_names: list[str] | None = None
    official: list[AbsTask] = field(default_factory=list)

    @property
    def official_names(self) -> list[str]:
        return [task.metadata.name for task in self.official]

    @property
    def is_empty(self) -> bool:
        return self.tasks_dir is None and not self.official


def select_tasks(
    tasks_dir: Path | str | None,
    names: Sequence[str] | None = None,
    benchmarks: Sequence[str] = (),
) -> TaskSelection:
    """Split `names` into local tasks of `tasks_dir` and official mteb tasks, and add the `benchmarks`' tasks.

    Without `names`, every local task of `tasks_dir` is selected (none when `tasks_dir` is None). Official tasks
    are resolved from metadata only; unknown names raise `TaskSelectionError` with close matches from both
    the local and the official names.
    """
    local_dir = Path(tasks_dir) if tasks_dir is not None else None
    available = [spec.name for spec in select_task_specs(local_dir)] if local_dir is not None else []
    if names is None:
        local_names: list[str] | None = None if local_dir is not None else []
        official_names: list[str] = []
    else:
        local_names = [n for n in dict.fromkeys(names) if n in available]
        official_names = [n for n in dict.fromkeys(names) if n not in available]
    official = resolve_official_tasks(benchmarks, official_names, other_names=available)

    selected_local = set(available if local_names is None else local_names)
    clash = [name for name in (t.metadata.name for t in official) if name in selected_local]
    if clash:
        raise TaskSelectionError(
            f"task name(s) {', '.join(clash)} are both local tasks of {local_dir} and official mteb tasks; "
            "results are keyed by task name, so evaluate them in separate runs (drop --tasks-dir or select "
            "the local tasks with --task)"
        )
    if local_names == []:
        local_dir, local_names = None, None
    return TaskSelection(local_dir, local_names, official)


class TaskRequest(BaseModel):
    """What to evaluate on, as names (JSON-able, so it can be a flow or task parameter): resolved into a
    `TaskSelection` by :meth:`resolve` where it is used, with :func:`select_tasks`' rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks_dir: str | None = Field(None, description="local tasks folder (eval layout); None: no local tasks")
    names: list[str] | None = Field(None, description="task names, local first; None: every local task")
    benchmarks: list[str] = Field(default_factory=list, description="official mteb benchmarks by name")

    def resolve(self) -> TaskSelection:
        return select_tasks(self.tasks_dir, self.names, self.benchmarks)
