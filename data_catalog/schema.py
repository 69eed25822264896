"""The canonical row schema every pipeline step reads and writes.

One row is one training example in the retrieval format the KaLM recipe casts everything into:
``(instruction, query, positive, negatives[])``, plus provenance (``source``, ``category``, ``stage``) and the
``label`` that classification/clustering rows keep so training can mask same-label in-batch negatives.
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

SCHEMA_VERSION = 1


class Stage(StrEnum):
    PRETRAIN = "pretrain"
    FINETUNE = "finetune"


class TaskType(StrEnum):
    RETRIEVAL = "retrieval"
    RERANKING = "reranking"
    STS = "sts"
    PAIR_CLASSIFICATION = "pair_classification"
    CLASSIFICATION = "classification"
    CLUSTERING = "clustering"
    BITEXT = "bitext"
    SUMMARIZATION = "summarization"


CANONICAL_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("task_type", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("instruction", pa.string(), nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("positive", pa.string(), nullable=False),
        pa.field("negatives", pa.list_(pa.string()), nullable=False),
        pa.field("label", pa.string(), nullable=True),
    ],
    metadata={"kalm_schema_version": str(SCHEMA_VERSION)},
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("row_number", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)

KALM_QUERY_TEMPLATE = "Instruct: {instruction} \n Query: "


def format_query(instruction: str, query: str) -> str:
    """Prefix a query with the KaLM instruction template; an empty instruction leaves it bare."""
    if not instruction:
        return query
    return KALM_QUERY_TEMPLATE.format(instruction=instruction) + query


def row_query(row: dict, use_instructions: bool = True) -> str:
    """A canonical row's query as the model sees it: with its instruction, or bare for backbones never
    trained with instructions (training and mining must agree on this, or mined negatives are off-target)."""
    return format_query(row["instruction"] if use_instructions else "", row["query"])
