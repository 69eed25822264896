"""KalmMtebEncoder: length-sorted batching must not change which vector belongs to which text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mteb._create_dataloaders import _create_dataloader_from_texts
from mteb.models import EncoderProtocol
from mteb.types import PromptType

from kalm.evaluation import KalmMtebEncoder, load_local_tasks
from kalm.evaluation.encoder import encode_length_sorted

from .conftest import RecordingEmbedder

TEXTS = [
    "short",
    "a considerably longer sentence about banking and cards",
    "mid length text",
    "x",
    "another fairly long sentence, with punctuation; and more words",
    "mid length text",  # duplicate on purpose
    "",
]


def test_length_sorted_batches_and_order_restored(recorder: RecordingEmbedder) -> None:
    vectors = encode_length_sorted(recorder, TEXTS, batch_size=2)
    (call,) = recorder.calls
    assert [len(t) for t in call] == sorted((len(t) for t in TEXTS), reverse=True)
    expected = np.stack([recorder.vector(t) for t in TEXTS])
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    assert vectors.dtype == np.float32


def test_encoder_through_mteb_dataloader(recorder: RecordingEmbedder, small_tasks_dir: Path) -> None:
    (task,) = load_local_tasks(small_tasks_dir, ["STSBenchmark"])
    encoder = KalmMtebEncoder(recorder, batch_size=3)
    assert isinstance(encoder, EncoderProtocol)
    assert encoder.mteb_model_meta.revision == recorder.revision
    loader = _create_dataloader_from_texts(TEXTS, batch_size=3)
    out = encoder.encode(loader, task_metadata=task.metadata, hf_split="test", hf_subset="default")
    prefix = "Instruct: Retrieve semantically similar text \n Query: "
    np.testing.assert_allclose(out, np.stack([recorder.vector(prefix + t) for t in TEXTS]), rtol=1e-6)

    docs = encoder.encode(
        _create_dataloader_from_texts(TEXTS, batch_size=3),
        task_metadata=task.metadata,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.document,
    )
    np.testing.assert_allclose(docs, np.stack([recorder.vector(t) for t in TEXTS]), rtol=1e-6)


def test_real_model_sorted_equals_one_by_one(minilm: Any) -> None:
    texts = [t for t in TEXTS if t][:5]
    batched = encode_length_sorted(minilm, texts, batch_size=4)
    single = np.concatenate([minilm.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
