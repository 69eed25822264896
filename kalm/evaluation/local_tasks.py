"""mteb task objects backed by local task directories instead of the Hugging Face hub.

Each task type subclasses mteb's own abstract task, so scoring is exactly mteb's; only `load_data` is replaced
to read the local files into the structure that abstask expects. A fresh subclass is created per task because
mteb keeps `metadata` on the class (it drops instance-level metadata when it unloads data after a run).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from datasets import Dataset, DatasetDict
from mteb.abstasks import (
    AbsTaskClassification,
    AbsTaskClustering,
    AbsTaskPairClassification,
    AbsTaskRetrieval,
    AbsTaskSTS,
)
from mteb.abstasks.abstask import AbsTask
from mteb.abstasks.task_metadata import TaskMetadata

from kalm.evaluation.task_spec import LocalTaskSpec, read_jsonl, read_qrels, select_task_specs
from kalm.hashing import hash_directory

_CATEGORY = {"Classification": "t2c", "Clustering": "t2c"}  # every other local type is text-to-text


class _LocalDataMixin:
    """Replaces mteb's hub loading with a reader for the task's local files."""

    spec: ClassVar[LocalTaskSpec]
    dataset: Any
    data_loaded: bool

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read the local files once; mteb calls this lazily and again after `unload_data`."""
        if self.data_loaded:
            return
        self.dataset = {"default": self._read_split(self.spec)}
        self.data_loaded = True

    def _read_split(self, spec: LocalTaskSpec) -> Any:
        raise NotImplementedError


class LocalSTSTask(_LocalDataMixin, AbsTaskSTS):
    """STS: `{split}.jsonl` rows of sentence1, sentence2, score (scaled by mteb with min/max_score)."""

    def _read_split(self, spec: LocalTaskSpec) -> DatasetDict:
        rows = read_jsonl(spec, f"{spec.split}.jsonl", ("sentence1", "sentence2", "score"))
        return DatasetDict({spec.split: _columns(rows, ("sentence1", "sentence2", "score"))})


class LocalPairClassificationTask(_LocalDataMixin, AbsTaskPairClassification):
    """PairClassification: `{split}.jsonl` rows of sentence1, sentence2, label (0/1)."""

    label_column_name = "label"

    def _read_split(self, spec: LocalTaskSpec) -> DatasetDict:
        rows = read_jsonl(spec, f"{spec.split}.jsonl", ("sentence1", "sentence2", "label"))
        return DatasetDict({spec.split: _columns(rows, ("sentence1", "sentence2", "label"))})


class LocalClassificationTask(_LocalDataMixin, AbsTaskClassification):
    """Classification: logistic regression on `train.jsonl` embeddings, scored on `{split}.jsonl` (mteb defaults)."""

    def _read_split(self, spec: LocalTaskSpec) -> DatasetDict:
        train = read_jsonl(spec, "train.jsonl", ("text", "label"))
        test = read_jsonl(spec, f"{spec.split}.jsonl", ("text", "label"))
        # integer ids over one shared, sorted label set: binary metrics (average precision) need numbers
        label_ids = {name: i for i, name in enumerate(sorted({str(r["label"]) for r in train + test}))}
        return DatasetDict(
            {
                "train": Dataset.from_dict(
                    {"text": [r["text"] for r in train], "label": [label_ids[str(r["label"])] for r in train]}
                ),
                spec.split: Dataset.from_dict(
                    {"text": [r["text"] for r in test], "label": [label_ids[str(r["label"])] for r in test]}
                ),
            }
        )


class LocalClusteringTask(_LocalDataMixin, AbsTaskClustering):
    """Clustering: the whole `{split}.jsonl` set is embedded (no mteb down-sampling), then mteb's bootstrap."""

    input_column_name = "text"
    label_column_name = "label"
    max_fraction_of_documents_to_embed = None
    max_document_to_embed = None

    def _read_split(self, spec: LocalTaskSpec) -> DatasetDict:
        rows = read_jsonl(spec, f"{spec.split}.jsonl", ("text", "label"))
        # bootstrap samples as many documents as the set holds (mteb caps at 16,384)
        self.max_documents_per_cluster = min(len(rows), AbsTaskClustering.max_documents_per_cluster)
        return DatasetDict({spec.split: _columns(rows, ("text", "label"), as_str=("label",))})


class LocalRetrievalTask(_LocalDataMixin, AbsTaskRetrieval):
    """Retrieval: BEIR layout (corpus.jsonl, queries.jsonl, qrels/{split}.tsv), full-corpus search."""

    def _read_split(self, spec: LocalTaskSpec) -> dict[str, Any]:
        corpus = read_jsonl(spec, "corpus.jsonl", ("_id", "text"))
        queries = read_jsonl(spec, "queries.jsonl", ("_id", "text"))
        return {
            spec.split: {
                "corpus": Dataset.from_dict(
                    {
                        "id": [str(r["_id"]) for r in corpus],
                        "title": [r.get("title") or "" for r in corpus],
                        "text": [r["text"] for r in corpus],
                    }
                ),
                "queries": Dataset.from_dict(
                    {"id": [str(r["_id"]) for r in queries], "text": [r["text"] for r in queries]}
                ),
                "relevant_docs": read_qrels(spec, f"qrels/{spec.split}.tsv"),
                "top_ranked": None,
            }
        }


class LocalRerankingTask(_LocalDataMixin, AbsTaskRetrieval):
    """Reranking: each query's positives + negatives are its candidate list, scored with mteb's retrieval metrics."""

    def _read_split(self, spec: LocalTaskSpec) -> dict[str, Any]:
        rows = read_jsonl(spec, f"{spec.split}.jsonl", ("query", "positive", "negative"))
        doc_ids: list[str] = []
        doc_texts: list[str] = []
        query_ids: list[str] = []
        query_texts: list[str] = []
        relevant: dict[str, dict[str, int]] = {}
        top_ranked: dict[str, list[str]] = {}
        for q_idx, row in enumerate(rows):
            qid = f"q{q_idx}"
            query_ids.append(qid)
            query_texts.append(row["query"])
            relevant[qid] = {}
            top_ranked[qid] = []
            candidates = [(text, 1) for text in row["positive"]] + [(text, 0) for text in row["negative"]]
            for d_idx, (text, label) in enumerate(candidates):
                did = f"{qid}_d{d_idx}"
                doc_ids.append(did)
                doc_texts.append(text)
                relevant[qid][did] = label
                top_ranked[qid].append(did)
        return {
            spec.split: {
                "corpus": Dataset.from_dict({"id": doc_ids, "title": [""] * len(doc_ids), "text": doc_texts}),
                "queries": Dataset.from_dict({"id": query_ids, "text": query_texts}),
                "relevant_docs": relevant,
                "top_ranked": top_ranked,
            }
        }


_TASK_CLASSES: dict[str, type[_LocalDataMixin]] = {
    "STS": LocalSTSTask,
    "Retrieval": LocalRetrievalTask,
    "Classification": LocalClassificationTask,
    "Clustering": LocalClusteringTask,
    "PairClassification": LocalPairClassificationTask,
    "Reranking": LocalRerankingTask,
}


def _columns(rows: list[dict[str, Any]], keys: Sequence[str], as_str: Sequence[str] = ()) -> Dataset:
    return Dataset.from_dict({k: [str(r[k]) if k in as_str else r[k] for r in rows] for k in keys})


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
    return isinstance(task, _LocalDataMixin)


def load_local_tasks(tasks_dir: Path, names: Sequence[str] | None = None) -> list[AbsTask]:
    """One mteb task per sub-directory of `tasks_dir` holding a task.json, sorted by task name.

    `names` selects tasks by their task.json `name`; an unknown name is an error rather than silently
    evaluating fewer tasks than asked for.
    """
    return [make_task(spec) for spec in select_task_specs(tasks_dir, names)]
