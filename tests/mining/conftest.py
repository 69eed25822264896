"""Fixtures for the mining tests: a tiny random KaLM checkpoint (saved like training saves one) and a small
canonical dataset in the ``data/balanced`` layout, all offline and built in about a second."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from data_catalog.schema import CANONICAL_SCHEMA

TOPICS = ["comet", "galaxy", "garlic", "butter", "guitar", "drum", "river", "mountain", "stadium", "banking"]
WORDS = ["the", "a", "of", "new", "old", "big", "small", "red", "blue", "fast", "slow", "near", "far"]


def doc(i: int) -> str:
    a, b = TOPICS[i % len(TOPICS)], TOPICS[(i * 7 + 3) % len(TOPICS)]
    return f"{WORDS[i % len(WORDS)]} {a} and {WORDS[(i * 5) % len(WORDS)]} {b} number {i}"


def canonical_rows(n_queries: int = 12, n_docs: int = 40) -> list[dict]:
    """Retrieval rows (two sources, one query with two positives), classification exemplar rows, and one
    pre-training row that mining must not write."""
    rows = []
    for q in range(n_queries):
        source = "alpha" if q % 2 == 0 else "beta"
        rows.append(
            _row(f"{source}-{q:03d}", source, "retrieval", f"what about {doc(q)}?", doc(q), [doc(q + 1)])
        )
    rows.append(_row("alpha-999", "alpha", "retrieval", "what about " + doc(0) + "?", doc(n_docs - 1), []))
    for d in range(n_queries, n_docs):  # documents that only ever appear as negatives: the rest of the pool
        rows[d % n_queries]["negatives"].append(doc(d))
    rows.append(_row("cls-000", "cls", "classification", "send money", "transfer cash", ["rain today"], "t"))
    rows.append(_row("cls-001", "cls", "classification", "rain today", "storm tomorrow", ["send money"], "w"))
    pre = _row("pre-000", "pre", "retrieval", "pre query", "pre doc", [])
    rows.append(pre | {"stage": "pretrain"})
    return rows


def _row(rid, source, task, query, positive, negatives, label=None) -> dict:
    return {
        "id": rid,
        "source": source,
        "category": source,
        "stage": "finetune",
        "task_type": task,
        "language": "eng",
        "instruction": "Given a question, retrieve the passage" if task == "retrieval" else "Classify",
        "query": query,
        "positive": positive,
        "negatives": list(negatives),
        "label": label,
    }


def write_balanced(root: Path, rows: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    half = len(rows) // 2
    for i, chunk in enumerate((rows[:half], rows[half:])):
        pq.write_table(pa.Table.from_pylist(chunk, schema=CANONICAL_SCHEMA), root / f"part-{i:05d}.parquet")
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from training.backbone import build_tiny_backbone, tiny_qwen2_config
    from training.config import ModelConfig, TinyBackbone
    from training.model import EmbeddingModel
    from training.tokenizer import train_bpe_tokenizer

    torch.manual_seed(0)
    texts = [doc(i) for i in range(60)] + [r["query"] for r in canonical_rows()]
    tokenizer = train_bpe_tokenizer(texts * 2, 300)
    tiny = TinyBackbone(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    config = ModelConfig(pooling="mean", max_length=32, attn_implementation="eager", tiny=tiny)
    backbone = build_tiny_backbone(
        tiny_qwen2_config(tiny, len(tokenizer), 32, tokenizer.pad_token_id), config
    )
    path = tmp_path_factory.mktemp("miner") / "pretrain"
    EmbeddingModel(backbone, tokenizer, config).save(path)
    return path


@pytest.fixture
def balanced(tmp_path) -> Path:
    return write_balanced(tmp_path / "balanced", canonical_rows())
