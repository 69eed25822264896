"""Official MTEB tasks and benchmarks, resolved by name through mteb's own registry.

Why go through mteb's API rather than re-declaring the tasks: the task classes carry the dataset path, the
pinned dataset revision, the splits, the main score and the prompt, so a score computed here is the score the
public leaderboard computes for the same model. Resolution reads metadata only; the data of a task is loaded
from the Hugging Face hub (or its local cache) only right before that task is evaluated, by
`load_official_data`, which turns every loading failure into one line naming the task.

Every name is checked up front and all unknown names are reported together with close matches, so a typo in
one of fifty task names costs a second, not a half-finished benchmark run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from kalm.hashing import hash_value

if TYPE_CHECKING:
    from mteb.abstasks.abstask import AbsTask


class TaskSelectionError(ValueError):
    """Unknown or unusable task or benchmark names; the message is one line with close matches."""


class TaskDataUnavailable(RuntimeError):
    """An official task's data could not be loaded (hub unreachable or offline, and not in the local cache)."""


def close_matches(name: str, pool: Iterable[str], n: int = 5) -> list[str]:
    """Names of `pool` similar to `name`, case-insensitively (`stsbenchmark` finds `STSBenchmark`)."""
    by_lower: dict[str, str] = {}
    for candidate in pool:
        by_lower.setdefault(candidate.lower(), candidate)
    found = difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[f] for f in found]


def _unknown(kind: str, name: str, pool: Iterable[str]) -> str:
    matches = close_matches(name, pool)
    hint = f"close matches: {', '.join(matches)}" if matches else "no close match"
    return f"unknown {kind} {name!r} ({hint})"


def official_task_names() -> list[str]:
    """Every task name in mteb's registry (superseded, beta and private ones included), metadata only."""
    from importlib import import_module

    registry = import_module("mteb.get_tasks")  # the module; `mteb.get_tasks` the attribute is the function
    classes = getattr(registry, "TASK_LIST", None)
    if classes is None:  # not public API: fall back to instantiating every task (slower, same names)
        import mteb

        classes = mteb.get_tasks(exclude_superseded=False, exclude_private=False, exclude_beta=False)
    return sorted({cls.metadata.name for cls in classes})


def benchmark_names() -> list[str]:
    """Names and aliases of every benchmark mteb knows."""
    import mteb

    names: set[str] = set()
    for bench in mteb.get_benchmarks():
        names.add(bench.name)
        names.update(bench.aliases or ())
    return sorted(names)


def resolve_official_tasks(
    benchmarks: Sequence[str] = (), tasks: Sequence[str] = (), *, other_names: Iterable[str] = ()
) -> list[AbsTask]:
    """mteb task objects for `benchmarks` (their own, possibly language-filtered, task objects) then `tasks`.

    Nothing is downloaded: mteb task objects hold metadata until `load_data` is called. Duplicates (a task
    named on its own and also part of a benchmark) are kept once, first occurrence wins. `other_names` (e.g.
    local task names) only widen the pool of close-match suggestions for unknown task names.
    """
    import mteb

    problems: list[str] = []
    selected: list[AbsTask] = []
    for name in benchmarks:
        try:
            selected.extend(mteb.get_benchmark(name).tasks)
        except KeyError:
            problems.append(_unknown("mteb benchmark", name, benchmark_names()))
    known = set(official_task_names())
    missing = [name for name in tasks if name not in known]
    for name in missing:
        problems.append(_unknown("task", name, [*known, *other_names]))
    if problems:
        raise TaskSelectionError("; ".join(problems))
    if tasks:
        selected.extend(mteb.get_tasks(tasks=list(dict.fromkeys(tasks))))

    by_name: dict[str, AbsTask] = {}
    for task in selected:
        by_name.setdefault(task.metadata.name, task)
    unique = list(by_name.values())
    non_text = [t.metadata.name for t in unique if any(m != "text" for m in t.metadata.modalities)]
    if non_text:
        raise TaskSelectionError(
            f"mteb task(s) {', '.join(non_text)} are not text-only; kalm evaluates text embedders only"
        )
    return unique


def official_revision(task: AbsTask) -> str:
    """The revision a stored score of this task is keyed on: mteb's pinned dataset revision, plus a digest
    of the subsets and splits when a benchmark evaluates only part of the task (e.g. STS17 in MTEB(eng, v2)
    is the en-en subset only), so a partial and a full run never share a cache entry."""
    if task.is_aggregate:  # e.g. CQADupstackRetrieval: the revisions of the tasks it averages
        return "aggregate+" + hash_value([official_revision(sub) for sub in data_tasks(task)])[:12]
    metadata = task.metadata
    revision = str(metadata.dataset.get("revision") or "unpinned")
    subsets, splits = sorted(task.hf_subsets or ()), list(task.eval_splits)
    if subsets != sorted(metadata.hf_subsets or ()) or splits != list(metadata.eval_splits):
        revision += "+" + hash_value({"subsets": subsets, "splits": splits})[:12]
    return revision


def data_tasks(task: AbsTask) -> list[AbsTask]:
    """The tasks whose data evaluating `task` reads: the task itself, or an aggregate task's sub-tasks."""
    return list(task.metadata.tasks) if task.is_aggregate else [task]


def hub_offline() -> bool:
    """Whether Hugging Face hub access is off for this process (read by huggingface_hub at import)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def load_official_data(task: AbsTask) -> None:
    """Load an official task's data, or raise `TaskDataUnavailable` naming the task and the dataset.

    Offline (``HF_HUB_OFFLINE=1``, the project default) the datasets library answers from its local cache or
    fails at once without touching the network, so this never hangs on an unreachable hub.
    """
    if task.data_loaded:
        return
    dataset = task.metadata.dataset
    where = f"{dataset.get('path')}@{str(dataset.get('revision') or 'main')[:12]}"
    try:
        task.load_data()
    except Exception as error:
        if hub_offline():
            reason = (
                "Hugging Face hub access is off (HF_HUB_OFFLINE=1) and the dataset is not in the local "
                "cache; run with KALM_HF_OFFLINE=false where the hub is reachable"
            )
        else:
            first_line = (str(error).strip().splitlines() or [""])[0]
            reason = f"{type(error).__name__}: {first_line}"
        raise TaskDataUnavailable(
            f"mteb task {task.metadata.name!r}: data {where} could not be downloaded: {reason}"
        ) from error
