"""Readers of local task directories: each fills an mteb task's ``dataset`` from the task's files.

A reader is a mixin: combined with mteb's abstract task of its type (``kalm.evaluation.local_tasks``'s
``Local*Task`` classes, mteb's defaults) or with the class of the task's MTEB counterpart (its protocol), it
replaces only ``load_data``; columns are named as the class it is combined with expects them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from datasets import Dataset, DatasetDict

from kalm.evaluation.task_spec import LocalTaskSpec, read_jsonl, read_qrels


class LocalDataMixin:
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


class STSReader(LocalDataMixin):
    """STS: `{split}.jsonl` rows of sentence1, sentence2, score (scaled by mteb with min/max_score)."""

    column_names: Any

    def _read_split(self, spec: LocalTaskSpec) -> DatasetDict:
        rows = read_jsonl(spec, f"{spec.split}.jsonl", ("sentence1", "sentence2", "score"))
        first, second = self.column_names
        data = {first: [r["sentence1"] for r in rows], second: [r["sentence2"] for r in rows]}
        return DatasetDict({spec.split: Dataset.from_dict(data | {"score": [r["score"] for r in rows]})})


class PairClassificationReader(LocalDataMixin):
    """PairClassification: `{split}.jsonl` rows of sentence1, sentence2, label (0/1)."""

    input1_column_name: Any
    input2_column_name: Any
    label_column_name: str

    def _read_split(self, spec: LocalTaskSpec) -> DatasetDict:
        rows = read_jsonl(spec, f"{spec.split}.jsonl", ("sentence1", "sentence2", "label"))
        data = {
            self.input1_column_name: [r["sentence1"] for r in rows],
            self.input2_column_name: [r["sentence2"] for r in rows],
            self.label_column_name: [r["label"] for r in rows],
        }
        return DatasetDict({spec.split: Dataset.from_dict(data)})


class ClassificationReader(LocalDataMixin):
    """Classification: the classifier trains on `train.jsonl` embeddings and is scored on `{split}.jsonl`."""

    input_column_name: Any
    label_column_name: str
    train_split: str

    def _read_split(self, spec: LocalTaskSpec) -> DatasetDict:
        train = read_jsonl(spec, "train.jsonl", ("text", "label"))
        test = read_jsonl(spec, f"{spec.split}.jsonl", ("text", "label"))
        # integer ids over one shared, sorted label set: binary metrics (average precision) need numbers
        label_ids = {name: i for i, name in enumerate(sorted({str(r["label"]) for r in train + test}))}
        text, label = self.input_column_name, self.label_column_name
        return DatasetDict(
            {
                self.train_split: Dataset.from_dict(
                    {text: [r["text"] for r in train], label: [label_ids[str(r["label"])] for r in train]}
                ),
                spec.split: Dataset.from_dict(
                    {text: [r["text"] for r in test], label: [label_ids[str(r["label"])] for r in test]}
                ),
            }
        )


class ClusteringReader(LocalDataMixin):
    """Clustering (mteb's v2 clustering): one row per text of `{split}.jsonl`."""

    input_column_name: Any
    label_column_name: str

    def _read_split(self, spec: LocalTaskSpec) -> DatasetDict:
        rows = read_jsonl(spec, f"{spec.split}.jsonl", ("text", "label"))
        data = {
            self.input_column_name: [r["text"] for r in rows],
            self.label_column_name: [str(r["label"]) for r in rows],
        }
        return DatasetDict({spec.split: Dataset.from_dict(data)})


class LegacyClusteringReader(LocalDataMixin):
    """Clustering as mteb's legacy clustering reads it: `{split}.jsonl` as one set of texts and labels
    (mteb's k-means runs once per set; a local task holds one)."""

    input_column_name: str
    label_column_name: str

    def _read_split(self, spec: LocalTaskSpec) -> DatasetDict:
        rows = read_jsonl(spec, f"{spec.split}.jsonl", ("text", "label"))
        data = {
            self.input_column_name: [[r["text"] for r in rows]],
            self.label_column_name: [[str(r["label"]) for r in rows]],
        }
        return DatasetDict({spec.split: Dataset.from_dict(data)})


class RetrievalReader(LocalDataMixin):
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


class RerankingReader(LocalDataMixin):
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
