"""Bidirectional attention of the decoder backbone (no causal leakage, no padding leakage) and its guards."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel, BertConfig, GPT2Config, Qwen2Config

from tests.training.conftest import TINY
from training.backbone import (
    UnsupportedArchitecture,
    build_tiny_backbone,
    load_backbone,
    make_bidirectional,
    tiny_qwen2_config,
)
from training.config import ModelConfig
from training.pooling import pool

VOCAB, PAD, MAX_LEN = 97, 0, 32
IMPLS = ["eager", "sdpa"]


def _config() -> Qwen2Config:
    return tiny_qwen2_config(TINY, VOCAB, MAX_LEN, PAD)


def _backbone(impl: str, origin: str, tmp_path) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_tiny_backbone(_config(), ModelConfig(attn_implementation=impl, tiny=TINY))
    if origin == "reloaded":
        model.save_pretrained(tmp_path / "ckpt")
        model = load_backbone(str(tmp_path / "ckpt"), ModelConfig(attn_implementation=impl, tiny=TINY))
    return model.eval()


def _hidden(model, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    mask = torch.ones_like(ids) if mask is None else mask
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state


def _first_state_shift(model) -> float:
    """Max change of position 0's state when only the last token changes."""
    ids = torch.tensor([[5, 17, 23, 42, 11, 8, 61]])
    other = ids.clone()
    other[0, -1] = 70
    return (_hidden(model, ids)[0, 0] - _hidden(model, other)[0, 0]).abs().max().item()


@pytest.mark.parametrize("origin", ["built", "reloaded"])
@pytest.mark.parametrize("impl", IMPLS)
def test_last_token_reaches_first_position(impl, origin, tmp_path):
    model = _backbone(impl, origin, tmp_path)
    assert model.config.is_causal is False
    assert model.config._attn_implementation == impl
    assert _first_state_shift(model) > 1e-3
    # Every earlier position sees the change as well, not only the first.
    ids = torch.tensor([[5, 17, 23, 42, 11, 8, 61]])
    other = ids.clone()
    other[0, -1] = 70
    per_position = (_hidden(model, ids) - _hidden(model, other))[0, :-1].abs().amax(dim=-1)
    assert bool((per_position > 1e-4).all()), per_position


@pytest.mark.parametrize("impl", IMPLS)
def test_causal_control_does_not_see_the_future(impl):
    """The probe above can fail: the same weights with a causal mask leave position 0 untouched."""
    torch.manual_seed(0)
    bidirectional = build_tiny_backbone(_config(), ModelConfig(attn_implementation=impl, tiny=TINY)).eval()
    causal = AutoModel.from_config(_config(), attn_implementation=impl).eval()
    assert getattr(causal.config, "is_causal", True) is not False
    causal.load_state_dict(bidirectional.state_dict())
    assert _first_state_shift(causal) < 1e-6
    assert _first_state_shift(bidirectional) > 1e-3


@pytest.mark.parametrize("impl", IMPLS)
def test_pretrained_causal_checkpoint_is_loaded_bidirectional(impl, tmp_path):
    """A stock (causal) Qwen2 checkpoint without ``is_causal`` in its config becomes bidirectional."""
    torch.manual_seed(0)
    AutoModel.from_config(_config()).save_pretrained(tmp_path / "stock")
    raw = json.loads((tmp_path / "stock" / "config.json").read_text())
    assert raw.get("is_causal") is not False
    model = load_backbone(str(tmp_path / "stock"), ModelConfig(attn_implementation=impl, tiny=TINY)).eval()
    assert _first_state_shift(model) > 1e-3


@pytest.mark.parametrize("origin", ["built", "reloaded"])
@pytest.mark.parametrize("impl", IMPLS)
def test_right_padding_does_not_leak(impl, origin, tmp_path):
    model = _backbone(impl, origin, tmp_path)
    generator = torch.Generator().manual_seed(3)
    lengths = [9, 4, 1, 6]
    rows = [torch.randint(1, VOCAB, (n,), generator=generator) for n in lengths]
    width = max(lengths)
    ids = torch.full((len(rows), width), PAD)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    batched = _hidden(model, ids, mask)
    for i, row in enumerate(rows):
        alone = _hidden(model, row[None])
        torch.testing.assert_close(batched[i, : len(row)], alone[0], rtol=0, atol=1e-5)
        for method in ("mean", "last"):
            torch.testing.assert_close(
                pool(batched[i : i + 1], mask[i : i + 1], method),
                pool(alone, torch.ones_like(row)[None], method),
                rtol=0,
                atol=1e-5,
            )
    # Pad token ids never matter: other ids in the padded slots give the same non-pad states.
    noisy = ids.clone()
    noisy[mask == 0] = 50
    torch.testing.assert_close(
        _hidden(model, noisy, mask)[mask.bool()], batched[mask.bool()], rtol=0, atol=1e-5
    )


def test_make_bidirectional_rejects_unknown_decoder():
    with pytest.raises(UnsupportedArchitecture, match="gpt2"):
        make_bidirectional(GPT2Config(n_layer=1, n_embd=32, n_head=2))
    with pytest.raises(UnsupportedArchitecture):
        build_tiny_backbone(GPT2Config(n_layer=1, n_embd=32, n_head=2), ModelConfig(tiny=TINY))


def test_make_bidirectional_passes_encoders_through():
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    before = config.to_dict()
    result = make_bidirectional(config)
    assert result is config
    assert result.to_dict() == before


def test_make_bidirectional_switches_allow_listed_decoder():
    config = _config()
    assert make_bidirectional(config) is config
    assert config.is_causal is False


@pytest.mark.parametrize("impl", IMPLS)
def test_saved_config_is_not_causal(impl, tmp_path):
    model = _backbone(impl, "built", tmp_path)
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["is_causal"] is False
