"""Model soup: parameter averaging of checkpoints that share one architecture (Wortsman et al. 2022).

KaLM-V2 (paper v1) averages several fine-tuned checkpoints, in the spirit of LM-Cocktail. Ingredients must
have identical parameter names and shapes; anything else is an error that names the first mismatch. The
soup folder is a copy of the first ingredient (configs, tokenizer, pooling) with averaged weights, plus
``soup.json`` recording the ingredients and weights. `greedy_soup` picks the ingredients by dev score.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
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
    # training/ imports nothing from kalm/, so not kalm.hashing.hash_file: the stdlib's streaming digest.
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def soup_ingredients(path: Path) -> list[Path] | None:
    """The ingredient folders a soup records in its ``soup.json`` (None: ``path`` is not a soup)."""
    record_file = Path(path) / "soup.json"
    if not record_file.is_file():
        return None
    return [Path(i["path"]) for i in json.loads(record_file.read_text())["ingredients"]]


def check_compatible(paths: Sequence[Path]) -> None:
    """Fail early, naming the first differing parameter, if the checkpoints cannot be averaged.

    Reads only the safetensors headers, so a greedy soup over large checkpoints does not discover a stray
    architecture after several trial soups.
    """
    from safetensors import safe_open

    def shapes(path: Path) -> dict[str, tuple[int, ...]]:
        file = path / WEIGHTS_FILE
        if not file.exists():
            raise SoupError(f"{path}: no {WEIGHTS_FILE}")
        with safe_open(str(file), framework="pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118

    if not paths:
        raise SoupError("need at least one ingredient")
    reference = shapes(paths[0])
    for path in paths[1:]:
        other = shapes(path)
        if other.keys() != reference.keys():
            name = sorted(set(reference) ^ set(other))[0]
            raise SoupError(f"{path} differs from {paths[0]} in parameter names (first: {name!r})")
        for name, shape in other.items():
            if shape != reference[name]:
                raise SoupError(
                    f"{path}: {name!r} has shape {shape}, expected {reference[name]} ({paths[0]})"
                )


def greedy_soup(
    candidates: Sequence[Path],
    dev_score: Callable[[Path], float],
    output_dir: Path,
    *,
    candidate_scores: Mapping[Path, float] | None = None,
) -> tuple[Path, list[Path]]:
    """Greedy soup (Wortsman et al. 2022, Algorithm 1): returns the soup folder and the chosen ingredients.

    Candidates are ranked by their own dev score (``candidate_scores`` where given, e.g. read from the results
    store, else ``dev_score``); the best one starts the soup and each next one is kept only if the uniform
    soup with it scores strictly higher on dev than without it. Greedy rather than uniform because a
    candidate from a different basin drags a uniform soup below its best ingredient; greedy never ends below
    it. ``soup.json`` records the ranking, every trial's score and the chosen ingredients.
    """
    candidates = [Path(p) for p in candidates]
    check_compatible(candidates)
    given = {Path(p): float(s) for p, s in (candidate_scores or {}).items()}
    own = {p: given[p] if p in given else float(dev_score(p)) for p in candidates}
    ranked = sorted(candidates, key=lambda p: -own[p])  # stable: ties keep the given order
    chosen, best = [ranked[0]], own[ranked[0]]
    trials = [{"added": str(ranked[0]), "dev_score": best, "accepted": True}]
    trial_dir = output_dir.with_name(output_dir.name + ".trial")
    for candidate in ranked[1:]:
        score = float(dev_score(make_soup([*chosen, candidate], trial_dir)))
        accepted = score > best
        trials.append({"added": str(candidate), "dev_score": score, "accepted": accepted})
        if accepted:
            chosen.append(candidate)
            best = score
    shutil.rmtree(trial_dir, ignore_errors=True)
    make_soup(chosen, output_dir)
    record = json.loads((output_dir / "soup.json").read_text())
    record.update(
        method="greedy",
        dev_score=best,
        candidates=[{"path": str(p), "dev_score": own[p]} for p in ranked],
        trials=trials,
    )
    (output_dir / "soup.json").write_text(json.dumps(record, indent=2) + "\n")
    return output_dir, chosen
