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

The names load lazily (PEP 562 ``__getattr__``): importing the package, or a light module of it such as
`kalm.evaluation.task_spec` (which decontamination reads tasks with), does not import mteb or torch.

Importing the package puts Hugging Face in offline mode unless the caller already chose or
``KALM_HF_OFFLINE=false``: local tasks never need a hub, and official tasks then load from the local cache or
fail with `TaskDataUnavailable` at once.
"""

from __future__ import annotations

import importlib
from typing import Any

from kalm import runtime

runtime.configure()

_EXPORTS = {
    "CorpusEmbeddingCache": "kalm.evaluation.corpus_cache",
    "KalmMtebEncoder": "kalm.evaluation.encoder",
    "RaySharding": "kalm.evaluation.sharding",
    "SentenceTransformerEmbedder": "kalm.evaluation.embedders",
    "TASK_TYPES": "kalm.evaluation.task_spec",
    "TaskDataUnavailable": "kalm.evaluation.official",
    "TaskScore": "kalm.evaluation.protocol",
    "TaskRequest": "kalm.evaluation.selection",
    "TaskSelection": "kalm.evaluation.selection",
    "TaskSelectionError": "kalm.evaluation.official",
    "TaskSpecError": "kalm.evaluation.task_spec",
    "TextEmbedder": "kalm.evaluation.protocol",
    "default_corpus_cache_dir": "kalm.evaluation.corpus_cache",
    "encode_on_ray": "kalm.evaluation.sharding",
    "evaluate_embedder": "kalm.evaluation.run",
    "evaluate_tasks": "kalm.evaluation.run",
    "format_query": "kalm.evaluation.encoder",
    "is_local_task": "kalm.evaluation.local_tasks",
    "load_local_tasks": "kalm.evaluation.local_tasks",
    "load_official_data": "kalm.evaluation.official",
    "official_revision": "kalm.evaluation.official",
    "open_corpus_cache": "kalm.evaluation.corpus_cache",
    "resolve_official_tasks": "kalm.evaluation.official",
    "select_tasks": "kalm.evaluation.selection",
    "summarize_scores": "kalm.evaluation.run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
