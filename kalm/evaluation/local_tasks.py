"""mteb task objects backed by local task directories instead of the Hugging Face hub.

Each task type subclasses mteb's own abstract task, so scoring is exactly mteb's; only `load_data` is replaced
to read the local files into the structure that abstask expects. A fresh subclass is created per task because
mteb keeps `metadata` on the class (it drops instance-level metadata when it unloads data after a run).

A task whose task.json names an ``mteb_counterpart`` subclasses that counterpart's own class instead, so it is
scored with the counterpart's protocol (its abstract task, classifier sample sizes, experiments, score
ranges, ... see :mod:`kalm.evaluation.counterpart`), not the defaults of its type; the reader matching the
counterpart's abstract task supplies the rows. Every task class carries its protocol (``kalm_protocol``), which
each result records and which is part of the task's revision, so stored scores of another protocol are never
read back as this one's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import DatasetDict
from mteb.abstasks import (
    AbsTaskClassification,
    AbsTaskClustering,
    AbsTaskPairClassification,
    AbsTaskRetrieval,
    AbsTaskSTS,
)
from mteb.abstasks.abstask import AbsTask
from mteb.abstasks.task_metadata import TaskMetadata

from kalm.evaluation.counterpart import (
    CounterpartError,
    abstask_of,
    counterpart_class,
    protocol_digest,
    protocol_of,
)
from kalm.evaluation.local_readers import (
    ClassificationReader,
    ClusteringReader,
    LegacyClusteringReader,
    LocalDataMixin,
    PairClassificationReader,
    RerankingReader,
    RetrievalReader,
    STSReader,
)
from kalm.evaluation.task_spec import LocalTaskSpec, TaskSpecError, select_task_specs
from kalm.hashing import hash_directory

_CATEGORY = {"Classification": "t2c", "Clustering": "t2c"}  # every other local type is text-to-text


class LocalSTSTask(STSReader, AbsTaskSTS):
    """STS with mteb's defaults; min/max_score from task.json."""


class LocalPairClassificationTask(PairClassificationReader, AbsTaskPairClassification):
    """PairClassification with mteb's defaults."""

    label_column_name = "label"


class LocalClassificationTask(ClassificationReader, AbsTaskClassification):
    """Classification with mteb's defaults (logistic regression, 8 samples per label, 10 experiments)."""


class LocalClusteringTask(ClusteringReader, AbsTaskClustering):
    """Clustering without a counterpart: the whole `{split}.jsonl` set is embedded (no mteb down-sampling),
    then mteb's bootstrap, sampling as many documents as the set holds (mteb caps at 16,384)."""

    input_column_name = "text"
    label_column_name = "label"
    max_fraction_of_documents_to_embed = None
    max_document_to_embed = None

    def _read_split(self, spec: LocalTaskSpec) -> DatasetDict:
        data = super()._read_split(spec)
        self.max_documents_per_cluster = min(
            len(data[spec.split]), AbsTaskClustering.max_documents_per_cluster
        )
        return data


class LocalRetrievalTask(RetrievalReader, AbsTaskRetrieval):
    """Retrieval with mteb's defaults."""


class LocalRerankingTask(RerankingReader, AbsTaskRetrieval):
    """Reranking with mteb's retrieval defaults."""


_TASK_CLASSES: dict[str, type[LocalDataMixin]] = {
    "STS": LocalSTSTask,
    "Retrieval": LocalRetrievalTask,
    "Classification": LocalClassificationTask,
    "Clustering": LocalClusteringTask,
    "PairClassification": LocalPairClassificationTask,
    "Reranking": LocalRerankingTask,
}

# The reader of a local task built on a counterpart's class, by the counterpart's abstract task (retrieval
# counterparts by the local type: a reranking task's rows are candidate lists).
_READERS: dict[str, type[LocalDataMixin]] = {
    "AbsTaskSTS": STSReader,
    "AbsTaskPairClassification": PairClassificationReader,
    "AbsTaskClassification": ClassificationReader,
    "AbsTaskClustering": ClusteringReader,
    "AbsTaskClusteringLegacy": LegacyClusteringReader,
}


def build_metadata(spec: LocalTaskSpec) -> TaskMetadata:
    """mteb metadata for a local task; the dataset revision is :func:`task_revision` (content + protocol)."""
    description = spec.raw.get("notes") or f"Local {spec.type} task {spec.name} read from {spec.task_dir}."
    return TaskMetadata(
        name=spec.name,
        description=str(description),
        dataset={"path": str(spec.task_dir), "revision": task_revision(spec)},
        type=spec.type,  # type: ignore[arg-type]
        category=_CATEGORY.get(spec.type, "t2t"),  # type: ignore[arg-type]
        modalities=["text"],
        eval_splits=[spec.split],
        eval_langs=spec.eval_langs,
        main_score=spec.mteb_main_score,
        prompt=spec.instruction,
    )


def _bases(spec: LocalTaskSpec) -> tuple[type, ...]:
    """The local type's class, or (reader, the counterpart's mteb class) for a task with a counterpart."""
    if not spec.counterpart:
        return (_TASK_CLASSES[spec.type],)
    where = f"local task {spec.name!r} ({spec.task_dir}): task.json field 'mteb_counterpart'"
    try:
        counterpart = counterpart_class(spec.counterpart)
    except CounterpartError as error:
        raise TaskSpecError(f"{where}: {error}") from error
    meta = counterpart.metadata
    if str(meta.type) != spec.type or meta.main_score != spec.mteb_main_score:
        raise TaskSpecError(
            f"{where}: {spec.counterpart!r} is a {meta.type} task scored by {meta.main_score}, this task is a "
            f"{spec.type} task scored by {spec.mteb_main_score}"
        )
    abstask = abstask_of(counterpart).__name__
    if spec.type in ("Retrieval", "Reranking"):
        reader = RetrievalReader if spec.type == "Retrieval" else RerankingReader
    elif abstask in _READERS:
        reader = _READERS[abstask]
    else:
        raise TaskSpecError(f"{where}: no reader of local rows for {spec.counterpart!r}'s {abstask}")
    return (reader, counterpart)


@functools.cache
def _task_class(spec: LocalTaskSpec) -> type[AbsTask]:
    bases = _bases(spec)
    attrs: dict[str, Any] = {"spec": spec, "__module__": __name__}
    if spec.type == "STS" and not spec.counterpart:
        attrs["min_score"], attrs["max_score"] = spec.min_score, spec.max_score
    cls = type(f"Local_{spec.type}_{spec.name}", bases, attrs)
    cls.kalm_protocol = protocol_of(cls, spec.counterpart)  # type: ignore[attr-defined]
    return cls  # type: ignore[return-value]


def task_class(spec: LocalTaskSpec) -> type[AbsTask]:
    """The mteb task class of one validated spec, its metadata set (a fresh class: mteb keeps metadata on it).

    With an ``mteb_counterpart`` it derives from the counterpart's class, whose class attributes and methods
    (the protocol) it keeps; the counterpart must be a task of the same type and main score.
    """
    base = _task_class(spec)
    return type(base.__name__, (base,), {"metadata": build_metadata(spec), "__module__": __name__})


def task_protocol(spec: LocalTaskSpec) -> dict[str, Any]:
    """How this local task is scored (:func:`kalm.evaluation.counterpart.protocol_of`); loads no data."""
    return _task_class(spec).kalm_protocol  # type: ignore[attr-defined,no-any-return]


def task_revision(spec: LocalTaskSpec) -> str:
    """What a stored score of this task is keyed on: the task directory's content hash and the protocol's
    digest (a score of the same rows under another protocol is another result)."""
    return f"{hash_directory(spec.task_dir)}+{protocol_digest(task_protocol(spec))}"


def make_task(spec: LocalTaskSpec) -> AbsTask:
    """Instantiate the mteb task for one validated spec."""
    return task_class(spec)()  # type: ignore[no-any-return]


def is_local_task(task: object) -> bool:
    """Whether `task` reads a local task directory (as opposed to an official mteb task on the hub)."""
    return isinstance(task, LocalDataMixin)


def load_local_tasks(tasks_dir: Path, names: Sequence[str] | None = None) -> list[AbsTask]:
    """One mteb task per sub-directory of `tasks_dir` holding a task.json, sorted by task name.

    `names` selects tasks by their task.json `name`; an unknown name is an error rather than silently
    evaluating fewer tasks than asked for.
    """
    return [make_task(spec) for spec in select_task_specs(tasks_dir, names)]
