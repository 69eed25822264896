"""The sentence-transformers folder format: the one module that writes its config files and reads them back.

A checkpoint is a sentence-transformers folder (``modules.json``, ``1_Pooling``, ``2_Normalize``,
``sentence_bert_config.json``, ``config_sentence_transformers.json``) next to the backbone's own files, plus
``kalm_model.json`` (this project's :class:`~training.config.ModelConfig`), so ``SentenceTransformer(path)``
loads it offline and encodes as training did. :func:`read_pooling` reads any such folder without loading a
model: the project's checkpoints through ``kalm_model.json``, reference models (MiniLM) through
``1_Pooling``. Light on purpose (json and paths only): mining and the CLI read folders without importing torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL_CONFIG_FILE = "kalm_model.json"
ST_POOLING_MODES = {"mean": "mean", "last": "lasttoken", "cls": "cls"}
_FROM_ST_MODE = {mode: pooling for pooling, mode in ST_POOLING_MODES.items()}
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def is_model_folder(path: Path) -> bool:
    """A folder sentence-transformers can load (it has ``modules.json``)."""
    return (Path(path) / "modules.json").is_file()


def write_st_files(
    path: Path, dim: int, pooling: str, max_length: int, model_config: dict[str, Any], prompts: dict[str, str]
) -> None:
    """Every file of the format but the backbone's and the tokenizer's own (``save_pretrained`` writes those)."""
    _write_json(path / "modules.json", MODULES)
    _write_json(path / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    _write_json(
        path / "1_Pooling" / "config.json",
        {"word_embedding_dimension": dim, "pooling_mode": ST_POOLING_MODES[pooling], "include_prompt": True},
    )
    (path / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        path / "config_sentence_transformers.json",
        {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )
    _write_json(path / MODEL_CONFIG_FILE, model_config)


def read_pooling(model_path: Path) -> tuple[str, int]:
    """(pooling, max_length) of a checkpoint folder, from its own config files (no model load)."""
    model_path = Path(model_path)
    kalm = model_path / MODEL_CONFIG_FILE
    if kalm.exists():
        spec = json.loads(kalm.read_text())
        return spec.get("pooling", "mean"), int(spec.get("max_length", 512))
    pooling, max_length = "mean", 512
    pool_cfg = model_path / "1_Pooling" / "config.json"
    if pool_cfg.exists():
        spec = json.loads(pool_cfg.read_text())
        if "pooling_mode" in spec:
            pooling = _FROM_ST_MODE.get(spec["pooling_mode"], spec["pooling_mode"])
        elif spec.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif spec.get("pooling_mode_lasttoken"):
            pooling = "last"
    st_cfg = model_path / "sentence_bert_config.json"
    if st_cfg.exists():
        max_length = int(json.loads(st_cfg.read_text()).get("max_seq_length") or max_length)
    if pooling not in ST_POOLING_MODES:
        raise ValueError(f"{model_path}: unsupported pooling {pooling!r}")
    return pooling, max_length


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
