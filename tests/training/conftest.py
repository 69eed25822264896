"""Shared fixtures for the training tests: tiny random Qwen2 backbones and a BPE tokenizer, all offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch

from training.config import TinyBackbone

torch.set_num_threads(1)

TINY = TinyBackbone(
    vocab_size=320,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)

TEXTS = [
    "which observatory is known for comet and galaxy?",
    "Kalora is a kitchen famous for its garlic and butter.",
    "send money to a friend please",
    "short",
    "the guitar melody and the drum rhythm of the band were the best part of the concert " * 3,
    "Instruct: Given a question, retrieve the passage that answers it \n Query: where is the stadium?",
]


@pytest.fixture(scope="session")
def tokenizer():
    from training.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(TEXTS * 4, TINY.vocab_size)


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory):
    """The demo sources collected to canonical Parquet (both stages), shared by the training tests."""
    from pathlib import Path

    from data_catalog.catalog import load_catalog
    from data_catalog.collect import collect_catalog
    from data_catalog.demo_data import write_demo_sources

    repo = Path(__file__).resolve().parents[2]
    root = tmp_path_factory.mktemp("demo-train")
    write_demo_sources(root / "raw")
    collect_catalog(load_catalog(repo / "data_catalog" / "demo.yaml", base_dir=root / "raw"), root / "data")
    return root / "data"
