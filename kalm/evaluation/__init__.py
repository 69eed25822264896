"""Evaluation of embedding models with mteb on local task directories, with KaLM-V2 prompts.

Public API:

* `TextEmbedder` / `SentenceTransformerEmbedder`: what gets evaluated;
* `load_local_tasks`: task directories -> mteb task objects;
* `KalmMtebEncoder`: the mteb encoder applying the query-side instructions;
* `evaluate_embedder` / `summarize_scores`: run mteb and summarise (MTK / MTY).

Importing the package forces Hugging Face offline mode (unless the caller already chose): evaluation reads
local files only and must never reach for a hub.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from kalm.evaluation.embedders import SentenceTransformerEmbedder
from kalm.evaluation.encoder import KalmMtebEncoder, format_query
from kalm.evaluation.local_tasks import load_local_tasks
from kalm.evaluation.protocol import TaskScore, TextEmbedder
from kalm.evaluation.run import evaluate_embedder, summarize_scores
from kalm.evaluation.task_spec import TASK_TYPES, TaskSpecError
from kalm.hashing import hash_directory

__all__ = [
    "TASK_TYPES",
    "KalmMtebEncoder",
    "SentenceTransformerEmbedder",
    "TaskScore",
    "TaskSpecError",
    "TextEmbedder",
    "evaluate_embedder",
    "format_query",
    "hash_directory",
    "load_local_tasks",
    "summarize_scores",
]
