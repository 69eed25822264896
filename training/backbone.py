"""Backbone loading: decoder LMs made bidirectional, encoders passed through.

KaLM-V2 removes the causal mask of Qwen2 so every token attends to every other token of its sequence. In
transformers 5.x the mask is built from ``config.is_causal``: with ``False`` the mask helpers produce a
padding-only (bidirectional) mask for eager and sdpa alike, and the attention modules stop passing
``is_causal=True`` to the kernel. Patching attention modules alone is not enough (the eager/padded sdpa
paths keep a triangular mask), so the flag is set on the config *before* the model is built, and it is
saved in ``config.json`` so a reloaded checkpoint stays bidirectional.

Only architectures whose mask construction honours ``is_causal`` are allowed; any other decoder fails
loudly instead of silently training a causal model.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel, Qwen2Config

from training.config import ModelConfig, TinyBackbone

BIDIRECTIONAL_DECODERS = frozenset({"qwen2", "qwen3", "llama", "mistral", "gemma", "gemma2", "gemma3_text"})
ENCODERS = frozenset({"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "deberta-v2", "modernbert"})


class UnsupportedArchitecture(ValueError):
    pass


def make_bidirectional(config: PretrainedConfig) -> PretrainedConfig:
    """Return ``config`` with causal masking switched off, or raise for an unknown architecture."""
    if config.model_type in ENCODERS:
        return config
    if config.model_type not in BIDIRECTIONAL_DECODERS:
        raise UnsupportedArchitecture(
            f"model_type {config.model_type!r} is not in the bidirectional allow-list "
            f"({', '.join(sorted(BIDIRECTIONAL_DECODERS))}) nor a known encoder"
        )
    config.is_causal = False
    return config


def tiny_qwen2_config(spec: TinyBackbone, vocab_size: int, max_length: int, pad_token_id: int) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=max(max_length, 64),
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
    )


def load_backbone(path: str, model: ModelConfig) -> PreTrainedModel:
    """Load a pretrained backbone from a local path; decoders get bidirectional attention unless disabled."""
    config = AutoConfig.from_pretrained(path)
    if model.bidirectional:
        config = make_bidirectional(config)
    backbone = AutoModel.from_pretrained(path, config=config, attn_implementation=model.attn_implementation)
    pooler = getattr(backbone, "pooler", None)
    if isinstance(pooler, torch.nn.Module):
        # Embeddings pool token states; BERT's [CLS] pooler never gets a gradient, which DDP rejects.
        # Frozen, it is still saved, so checkpoints keep the base model's exact key set (soups, reloads).
        pooler.requires_grad_(False)
    return backbone


def build_tiny_backbone(config: Qwen2Config, model: ModelConfig) -> PreTrainedModel:
    if model.bidirectional:
        config = make_bidirectional(config)
    config._attn_implementation = model.attn_implementation
    return AutoModel.from_config(config, attn_implementation=model.attn_implementation)
