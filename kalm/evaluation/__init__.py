"""Evaluation of embedding models with mteb on local task directories and official mteb tasks, with KaLM-V2
prompts.

Public API:

* `TextEmbedder` / `SentenceTransformerEmbedder`: what gets evaluated;
* `load_local_tasks`: task directories -> mteb task objects;
* `resolve_official_tasks` / `select_tasks`: mteb benchmark and task names -> mteb task objects (metadata
  only), and the split of ``--task`` names into local and official tasks;
* `KalmMtebEncoder`: the mteb encoder applying the query-side instructions;
* `CorpusEmbeddingCache` / `RaySharding`: document embeddings cached on disk, big corpora encoded over Ray;
* `evaluate_tasks` / `evaluate_embedder` / `summarize_scores`: run mteb and summarise (MTK / MTY).

Importing the package puts Hugging Face in offline mode unless the caller already chose or
``KALM_HF_OFFLINE=false``: local tasks never need a hub, and official tasks then load from the local cache or
fail with `TaskDataUnavailable` at once.
"""

import os

from kalm import runtime

os.environ.setdefault("HF_HUB_OFFLINE", runtime.hf_offline_value())
os.environ.setdefault("HF_DATASETS_OFFLINE", runtime.hf_offline_value())

from kalm.evaluation.corpus_cache import CorpusEmbeddingCache, default_corpus_cache_dir, open_corpus_cache
from kalm.evaluation.embedders import SentenceTransformerEmbedder
from kalm.evaluation.encoder import KalmMtebEncoder, format_query
from kalm.evaluation.local_tasks import is_local_task, load_local_tasks
from kalm.evaluation.official import (
    TaskDataUnavailable,
    TaskSelectionError,
    load_official_data,
    official_revision,
    resolve_official_tasks,
)
from kalm.evaluation.protocol import TaskScore, TextEmbedder
from kalm.evaluation.run import evaluate_embedder, evaluate_tasks, summarize_scores
from kalm.evaluation.selection import TaskSelection, select_tasks
from kalm.evaluation.sharding import RaySharding, encode_on_ray
from kalm.evaluation.task_spec import TASK_TYPES, TaskSpecError
from kalm.hashing import hash_directory

__all__ = [
    "TASK_TYPES",
    "CorpusEmbeddingCache",
    "KalmMtebEncoder",
    "RaySharding",
    "SentenceTransformerEmbedder",
    "TaskDataUnavailable",
    "TaskScore",
    "TaskSelection",
    "TaskSelectionError",
    "TaskSpecError",
    "TextEmbedder",
    "default_corpus_cache_dir",
    "encode_on_ray",
    "evaluate_embedder",
    "evaluate_tasks",
    "format_query",
    "hash_directory",
    "is_local_task",
    "load_local_tasks",
    "load_official_data",
    "official_revision",
    "open_corpus_cache",
    "resolve_official_tasks",
    "select_tasks",
    "summarize_scores",
]
