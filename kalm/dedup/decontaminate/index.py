"""The evaluation index: every evaluation text of a tasks folder, normalised, keyed for exact and near matching.

Which texts a task contributes is the evaluation layout's business (:func:`kalm.evaluation.task_spec.eval_texts`);
here they are normalised, given their exact-match key, deduplicated across tasks (remembering every task a key
belongs to) and, for near matching, shingled, MinHashed and banded the same way training texts are
(:func:`shingled_band_keys`), so both sides of a comparison are hashed by one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kalm.dedup.decontaminate.config import DecontaminationConfig
from kalm.dedup.lsh import band_keys
from kalm.dedup.minhash import MinHasher, fold32, shingle_hashes
from kalm.dedup.normalize import normalize_array
from kalm.evaluation.task_spec import eval_texts, select_task_specs

_NOT_ALNUM_RE2 = r"[^\p{L}\p{N}\p{M}]+"


def match_key(norm: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Exact-match key of :func:`normalize_array` output: only letters, digits and marks remain."""
    return pc.replace_substring_regex(norm, _NOT_ALNUM_RE2, "")


def shingled_band_keys(
    norm: pa.Array, cfg: DecontaminationConfig, hasher: MinHasher
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(LSH band keys per text, shingle hashes, their per-text offsets) of normalised texts."""
    hashes, offsets = shingle_hashes(norm, **cfg.shingling())
    return band_keys(hasher.signatures(fold32(hashes), offsets), cfg.bands, cfg.rows), hashes, offsets


@dataclass
class EvalIndex:
    """Distinct normalised evaluation texts with their tasks, signatures' band keys and shingle sets."""

    tasks: list[str]
    keys: pa.Array  # distinct non-empty match keys (value set for exact lookup)
    norms: pa.Array  # per key, the first normalised text with that key (what near matching shingles)
    occurrences: list[list[tuple[int, str]]]  # per key: (task index, first original text in that task)
    per_task_texts: list[int]
    band_sorted: list[tuple[np.ndarray, np.ndarray]]  # per band: (sorted keys, eval index per key)
    shingle_sets: list[np.ndarray]


def local_task_texts(tasks_dir: Path, include_corpus: bool = False) -> list[tuple[str, list[str]]]:
    """(task folder name, its evaluation texts) of every task of a local tasks folder, in folder order."""
    specs = sorted(select_task_specs(Path(tasks_dir)), key=lambda spec: spec.task_dir)
    if not specs:
        raise FileNotFoundError(f"no */task.json under {tasks_dir}")
    return [(spec.task_dir.name, eval_texts(spec, include_corpus)) for spec in specs]


def build_eval_index(task_texts: list[tuple[str, list[str]]], cfg: DecontaminationConfig) -> EvalIndex:
    """The index of ``(task name, evaluation texts)`` pairs: local tasks (:func:`local_task_texts`) and
    official ones (read through mteb, :mod:`kalm.evaluation.task_texts`) alike."""
    tasks = [name for name, _ in task_texts]
    slot: dict[str, int] = {}
    first_norm: list[str] = []
    occurrences: list[list[tuple[int, str]]] = []
    per_task = []
    for t, (_, originals) in enumerate(task_texts):
        norms = normalize_array(pa.array(originals, pa.string()))
        seen: set[str] = set()
        for orig, norm, key in zip(originals, norms.to_pylist(), match_key(norms).to_pylist(), strict=True):
            if not key or key in seen:
                continue
            seen.add(key)
            k = slot.setdefault(key, len(slot))
            if k == len(occurrences):
                occurrences.append([])
                first_norm.append(norm)
            occurrences[k].append((t, orig))
        per_task.append(len(seen))
    norm_arr = pa.array(first_norm, pa.string())
    band_sorted, sets = [], []
    if cfg.near and len(norm_arr):
        keys, hashes, offsets = shingled_band_keys(norm_arr, cfg, MinHasher(cfg.num_perm, cfg.seed))
        docs = np.flatnonzero(np.diff(offsets) > 0)
        for b in range(cfg.bands):
            order = np.argsort(keys[docs, b], kind="stable")
            band_sorted.append((keys[docs, b][order], docs[order]))
        sets = [np.unique(hashes[offsets[k] : offsets[k + 1]]) for k in range(len(norm_arr))]
    return EvalIndex(
        tasks, pa.array(list(slot), pa.string()), norm_arr, occurrences, per_task, band_sorted, sets
    )
