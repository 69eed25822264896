"""The texts an mteb task scores a model on, read from the task object: what decontamination must keep out of
training for official benchmarks, whose data only mteb knows how to load.

The same rule as :func:`kalm.evaluation.task_spec.eval_texts` for local folders, applied to mteb's data
structures (a test holds the two equal on every local task): STS / PairClassification sentence pairs,
Classification / Clustering inputs of the evaluation splits (not the classifier's training split),
Retrieval queries (corpus documents only with ``include_corpus``: one collection shared by all splits), and
Reranking queries with their candidate documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kalm.evaluation.official import data_tasks, load_official_data

if TYPE_CHECKING:
    from mteb.abstasks.abstask import AbsTask


def task_texts(task: AbsTask, include_corpus: bool = False) -> list[str]:
    """Every evaluation text of ``task`` (an aggregate task's sub-tasks included); loads the data through
    :func:`kalm.evaluation.official.load_official_data`, so an unreachable dataset raises
    ``TaskDataUnavailable`` naming it."""
    texts: list[str] = []
    for sub in data_tasks(task):
        if not sub.data_loaded:
            load_official_data(sub)
        kind = sub.metadata.type
        for split in _eval_splits(sub):
            if kind in ("Retrieval", "Reranking"):
                texts += _column(split["queries"], "text")
                if include_corpus or kind == "Reranking":
                    for title, text in zip(
                        _column(split["corpus"], "title"), _column(split["corpus"], "text"), strict=True
                    ):
                        texts += [t for t in (title, text) if t]
            elif kind in ("STS", "PairClassification"):
                for first, second in zip(
                    _column(split, "sentence1"), _column(split, "sentence2"), strict=True
                ):
                    texts += [*_flat(first), *_flat(second)]
            else:
                column = getattr(sub, "input_column_name", "text")
                for value in _column(split, column):
                    texts += _flat(value)
    return texts


def _eval_splits(task: AbsTask) -> Iterable[Any]:
    """The evaluation splits' data of every subset the task evaluates (mteb keys data by subset, then split)."""
    dataset = task.dataset
    subsets = task.hf_subsets or list(dataset)
    for subset in subsets:
        per_split = dataset.get(subset, dataset)
        for split in task.eval_splits:
            if split in per_split:
                yield per_split[split]


def _column(data: Any, name: str) -> list[Any]:
    if data is None:
        return []
    if hasattr(data, "column_names"):
        return list(data[name]) if name in data.column_names else [""] * len(data)
    return [row.get(name, "") for row in data]


def _flat(value: Any) -> list[str]:
    """A cell as texts: a string, or a list of strings (some pair and clustering tasks hold lists)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


class UncheckedBenchmark(RuntimeError):
    """An official benchmark's test texts could not be read, so training rows cannot be checked against them."""


def benchmark_texts(
    benchmarks: list[str], include_corpus: bool = False, allow_unchecked: bool = False
) -> tuple[dict[str, list[str]], list[str]]:
    """(official task name → evaluation texts, the tasks that could not be read) of ``benchmarks``.

    A task whose data cannot be loaded (no hub, not in the local cache) stops here with one line, unless
    ``allow_unchecked``: then it is listed as unchecked and the others are still read.
    """
    from kalm.evaluation.official import TaskDataUnavailable, official_revision, resolve_official_tasks

    texts: dict[str, list[str]] = {}
    unchecked: list[str] = []
    for task in resolve_official_tasks(benchmarks):
        name = task.metadata.name
        try:
            texts[name] = task_texts(task, include_corpus)
        except TaskDataUnavailable as error:
            if not allow_unchecked:
                raise UncheckedBenchmark(
                    f"decontamination cannot read the test texts of {', '.join(benchmarks)}: {error}; set "
                    "decontaminate.allow_unchecked_benchmarks: true to train without checking them"
                ) from None
            unchecked.append(f"{name}@{official_revision(task)[:12]}")
    return texts, unchecked
