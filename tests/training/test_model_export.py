"""The saved folder is a sentence-transformers model that encodes exactly like EmbeddingModel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.training.conftest import TEXTS, TINY
from training.backbone import build_tiny_backbone, tiny_qwen2_config
from training.config import ModelConfig
from training.model import EmbeddingModel

MAX_LENGTH = 24  # the long text in TEXTS is truncated


def _model(tokenizer, pooling: str, impl: str = "eager") -> EmbeddingModel:
    torch.manual_seed(0)
    config = ModelConfig(pooling=pooling, max_length=MAX_LENGTH, attn_implementation=impl, tiny=TINY)
    backbone = build_tiny_backbone(
        tiny_qwen2_config(TINY, len(tokenizer), MAX_LENGTH, tokenizer.pad_token_id), config
    )
    return EmbeddingModel(backbone, tokenizer, config)


def test_encode_is_batch_invariant_and_normalised(tokenizer):
    model = _model(tokenizer, "mean")
    together = model.encode(TEXTS, batch_size=len(TEXTS))
    alone = np.stack([model.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-6)
    assert model.training  # encode restores the mode it found
    assert len(tokenizer(TEXTS[4])["input_ids"]) > MAX_LENGTH  # the truncation path is exercised


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_sentence_transformers_reproduces_encode(tokenizer, tmp_path, pooling, impl):
    from sentence_transformers import SentenceTransformer

    model = _model(tokenizer, pooling, impl)
    expected = model.encode(TEXTS, batch_size=4)
    model.save(tmp_path / "export", prompts={"query": "Instruct: {instruction} \n Query: "})

    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["is_causal"] is False
    modules = json.loads((tmp_path / "export" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]

    st = SentenceTransformer(str(tmp_path / "export"), device="cpu")
    assert st.max_seq_length == MAX_LENGTH
    actual = st.encode(TEXTS, batch_size=3, convert_to_numpy=True)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    # Sanity: the embeddings are not degenerate (different texts, different vectors).
    assert np.abs(expected[0] - expected[1]).max() > 1e-3


def test_load_round_trips(tokenizer, tmp_path):
    model = _model(tokenizer, "last", "sdpa")
    expected = model.encode(TEXTS)
    model.save(tmp_path / "export")
    loaded = EmbeddingModel.load(tmp_path / "export")
    assert loaded.config == model.config
    assert loaded.backbone.config.is_causal is False
    assert loaded.backbone.config._attn_implementation == "sdpa"
    assert loaded.tokenizer.padding_side == "right"
    assert loaded.tokenizer.pad_token_id == tokenizer.pad_token_id
    np.testing.assert_allclose(loaded.encode(TEXTS), expected, rtol=0, atol=1e-6)
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[name], value), name
