"""mteb task objects backed by local task directories instead of the Hugging Face hub.

Each task type subclasses mteb's own abstract task, so scoring is exactly mteb's; only `load_data` is replaced
to read the local files into the structure that abstask expects. A fresh subclass is created per task because
mteb keeps `metadata` on the class (it drops instance-level metadata when it unloads data after a run).
"""

from __future__ import annotations

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

from kalm.evaluation.local_readers import (
    ClassificationReader,
    ClusteringReader,
    LocalDataMixin,
    PairClassificationReader,
    RerankingReader,
    RetrievalReader,
    STSReader,
)
from kalm.evaluation.task_spec import LocalTaskSpec, select_task_specs
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


def build_metadata(spec: LocalTaskSpec) -> TaskMetadata:
    """mteb metadata for a local task; the dataset revision is a content hash of the task directory."""
    description = spec.raw.get("notes") or f"Local {spec.type} task {spec.name} read from {spec.task_dir}."
    return TaskMetadata(
        name=spec.name,
        description=str(description),
        dataset={"path": str(spec.task_dir), "revision": hash_directory(spec.task_dir)},
        type=spec.type,  # type: ignore[arg-type]
        category=_CATEGORY.get(spec.type, "t2t"),  # type: ignore[arg-type]
        modalities=["text"],
        eval_splits=[spec.split],
        eval_langs=spec.eval_langs,
        main_score=spec.mteb_main_score,
        prompt=spec.instruction,
    )


def make_task(spec: LocalTaskSpec) -> AbsTask:
    """Instantiate the mteb task for one validated spec."""
    base = _TASK_CLASSES[spec.type]
    attrs: dict[str, Any] = {"metadata": build_metadata(spec), "spec": spec, "__module__": __name__}
    if spec.type == "STS":
        attrs["min_score"], attrs["max_score"] = spec.min_score, spec.max_score
    cls = type(f"Local_{spec.type}_{spec.name}", (base,), attrs)
    return cls()  # type: ignore[no-any-return]


def is_local_task(task: object) -> bool:
    """Whether `task` reads a local task directory (as opposed to an official mteb task on the hub)."""
    return isinstance(task, LocalDataMixin)


def load_local_tasks(tasks_dir: Path, names: Sequence[str] | None = None) -> list[AbsTask]:
    """One mteb task per sub-directory of `tasks_dir` holding a task.json, sorted by task name.

    `names` selects tasks by their task.json `name`; an unknown name is an error rather than silently
    evaluating fewer tasks than asked for.
    """
    return [make_task(spec) for spec in select_task_specs(tasks_dir, names)]
