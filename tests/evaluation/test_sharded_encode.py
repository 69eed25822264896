"""Ray-sharded encoding during evaluation: only above the threshold, and the same vectors as in-process."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from mteb._create_dataloaders import _create_dataloader_from_texts
from mteb.types import PromptType

import kalm.evaluation.encoder as encoder_module
from kalm.evaluation import KalmMtebEncoder, RaySharding, SentenceTransformerEmbedder, load_local_tasks
from kalm.evaluation.encoder import encode_length_sorted
from tests.mining.conftest import doc, tiny_checkpoint  # noqa: F401  (the tiny KaLM checkpoint fixture)

from .conftest import RecordingEmbedder

TEXTS = [doc(i) * (1 + i % 3) for i in range(37)]


def _encode(encoder: KalmMtebEncoder, task, texts: Sequence[str]) -> np.ndarray:
    return encoder.encode(
        _create_dataloader_from_texts(list(texts), batch_size=8),
        task_metadata=task.metadata,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.document,
    )


def test_only_calls_above_the_threshold_are_sharded(
    recorder: RecordingEmbedder, small_tasks_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sharded: list[int] = []

    def fake_ray(embedder, texts, sharding):
        sharded.append(len(texts))
        return encode_length_sorted(embedder, texts, 8)

    monkeypatch.setattr(encoder_module, "encode_on_ray", fake_ray)
    (task,) = load_local_tasks(small_tasks_dir, ["SciFact"])
    encoder = KalmMtebEncoder(recorder, sharding=RaySharding(threshold=10, num_shards=3))
    _encode(encoder, task, TEXTS[:10])
    _encode(encoder, task, TEXTS[:11])
    assert sharded == [11]


@pytest.mark.slow
def test_ray_sharded_equals_in_process(tiny_checkpoint: Path, small_tasks_dir: Path) -> None:  # noqa: F811
    (task,) = load_local_tasks(small_tasks_dir, ["SciFact"])
    embedder = SentenceTransformerEmbedder(tiny_checkpoint)
    expected = _encode(KalmMtebEncoder(embedder, batch_size=8), task, TEXTS)
    sharding = RaySharding(threshold=len(TEXTS) - 1, num_shards=2)
    actual = _encode(KalmMtebEncoder(embedder, batch_size=8, sharding=sharding), task, TEXTS)
    assert actual.shape == expected.shape == (len(TEXTS), 32) and actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
