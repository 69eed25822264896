"""Model soup: parameter averaging of checkpoints that share one architecture (Wortsman et al. 2022).

KaLM-V2 (paper v1) averages several fine-tuned checkpoints, in the spirit of LM-Cocktail. Ingredients must
have identical parameter names and shapes; anything else is an error that names the first mismatch. The
soup folder is a copy of the first ingredient (configs, tokenizer, pooling) with averaged weights, plus
``soup.json`` recording the ingredients and weights.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS_FILE = "model.safetensors"


class SoupError(ValueError):
    pass


def _load(path: Path) -> dict[str, torch.Tensor]:
    file = path / WEIGHTS_FILE
    if not file.exists():
        raise SoupError(f"{path}: no {WEIGHTS_FILE}")
    return load_file(str(file))


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]) -> dict:
    """Weighted average in float32, cast back to each tensor's dtype; weights are normalised to sum 1."""
    if len(states) != len(weights) or not states:
        raise SoupError("need one weight per ingredient and at least one ingredient")
    total = float(sum(weights))
    if total <= 0:
        raise SoupError("soup weights must sum to a positive number")
    reference = states[0]
    for index, state in enumerate(states[1:], start=1):
        if state.keys() != reference.keys():
            missing = sorted(set(reference) ^ set(state))[0]
            raise SoupError(f"ingredient {index} differs in parameter names (first: {missing!r})")
        for name, tensor in state.items():
            if tensor.shape != reference[name].shape:
                raise SoupError(
                    f"ingredient {index}: {name!r} has shape {tuple(tensor.shape)}, "
                    f"expected {tuple(reference[name].shape)}"
                )
    soup = {}
    for name, tensor in reference.items():
        accumulator = torch.zeros_like(tensor, dtype=torch.float32)
        for state, weight in zip(states, weights, strict=True):
            accumulator += state[name].float() * (weight / total)
        soup[name] = accumulator.to(tensor.dtype)
    return soup


def make_soup(ingredients: Sequence[Path], output_dir: Path, weights: Sequence[float] | None = None) -> Path:
    """Average ``ingredients`` (uniformly unless ``weights``) into a new checkpoint folder."""
    weights = list(weights) if weights is not None else [1.0] * len(ingredients)
    soup = average_state_dicts([_load(p) for p in ingredients], weights)
    tmp = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ingredients[0], tmp)
    save_file(soup, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
    record = {
        "method": "uniform" if len(set(weights)) == 1 else "weighted",
        "ingredients": [
            {"path": str(p), "weight": w, "sha256": _sha256(p / WEIGHTS_FILE)}
            for p, w in zip(ingredients, weights, strict=True)
        ],
    }
    (tmp / "soup.json").write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(output_dir, ignore_errors=True)
    tmp.rename(output_dir)
    return output_dir


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
