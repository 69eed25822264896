"""The embedding model: a (bidirectional) backbone, pooling and L2 normalisation, saved for sentence-transformers.

Checkpoints are sentence-transformers folders (:mod:`training.st_folder`; the backbone's ``config.json`` has
``is_causal: false``), so ``SentenceTransformer(path)`` loads them offline and encodes exactly as training did.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from training.backbone import BIDIRECTIONAL_DECODERS, UnsupportedArchitecture, load_backbone
from training.config import ModelConfig
from training.packing import FLEX_BLOCK, embed_in_rows, unpad
from training.pooling import pool
from training.st_folder import MODEL_CONFIG_FILE, write_st_files


class EmbeddingModel(nn.Module):
    def __init__(
        self, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: ModelConfig
    ) -> None:
        super().__init__()
        if config.packed and backbone.config.model_type not in BIDIRECTIONAL_DECODERS:
            raise UnsupportedArchitecture(
                f"packed training needs a decoder that takes a prepared mask ({', '.join(sorted(BIDIRECTIONAL_DECODERS))}), "
                f"not {backbone.config.model_type!r}; set model.packed: false"
            )
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.config = config

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.config.max_length,
            return_tensors="pt",
            return_token_type_ids=False,
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled, L2-normalised embeddings of a padded batch; with ``config.packed`` the padding is stripped
        and the sequences run packed (:mod:`training.packing`: same embeddings, no FLOPs spent on padding)."""
        if self.config.packed:
            pad = FLEX_BLOCK if self.config.attn_implementation == "flex_attention" else 1
            sequences = unpad(input_ids, attention_mask)
            embeddings, _ = embed_in_rows(
                self.backbone,
                sequences,
                self.config.packed_row_tokens,
                self.config.pooling,
                pad,
                input_ids.device,
            )
            return embeddings
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool(hidden, attention_mask, self.config.pooling)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenize(texts)
        device = next(self.parameters()).device
        return self(batch["input_ids"].to(device), batch["attention_mask"].to(device))

    @torch.no_grad()
    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        was_training = self.training
        self.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.backbone.config.hidden_size), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self.embed([texts[i] for i in chunk]).cpu().numpy()
        self.train(was_training)
        return out

    def save(self, path: Path, prompts: dict[str, str] | None = None) -> None:
        """Write a sentence-transformers folder."""
        path.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        write_st_files(
            path,
            self.backbone.config.hidden_size,
            self.config.pooling,
            self.config.max_length,
            self.config.model_dump(mode="json"),
            prompts or {},
        )

    @classmethod
    def load(cls, path: Path, config: ModelConfig | None = None) -> EmbeddingModel:
        if config is None:
            config = ModelConfig.model_validate_json((path / MODEL_CONFIG_FILE).read_text())
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(load_backbone(str(path), config), tokenizer, config)
