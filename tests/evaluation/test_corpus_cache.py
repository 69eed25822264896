"""The corpus-embedding cache: document-side encode calls are served from disk, everything else is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mteb._create_dataloaders import _create_dataloader_from_texts
from mteb.types import PromptType

from kalm.evaluation import CorpusEmbeddingCache, KalmMtebEncoder, evaluate_tasks, load_local_tasks

from .conftest import RecordingEmbedder

DOCS = ["a first document about banking", "second", "a third, longer document about card payments"]


def _encode(encoder: KalmMtebEncoder, task, texts: list[str], prompt_type: PromptType | None) -> np.ndarray:
    return encoder.encode(
        _create_dataloader_from_texts(texts, batch_size=2),
        task_metadata=task.metadata,
        hf_split="test",
        hf_subset="default",
        prompt_type=prompt_type,
    )


def test_documents_are_encoded_once_per_key(
    recorder: RecordingEmbedder, small_tasks_dir: Path, tmp_path: Path
) -> None:
    scifact, trecqa = load_local_tasks(small_tasks_dir, ["SciFact", "TrecQA"])
    cache = CorpusEmbeddingCache(tmp_path / "cache")
    encoder = KalmMtebEncoder(recorder, corpus_cache=cache)
    first = _encode(encoder, scifact, DOCS, PromptType.document)
    again = _encode(KalmMtebEncoder(recorder, corpus_cache=cache), scifact, DOCS, PromptType.document)
    assert sorted(recorder.texts) == sorted(DOCS) and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(again, first)
    assert again.dtype == np.float32 and again.flags.writeable

    _encode(encoder, scifact, DOCS, PromptType.query)  # queries: never cached
    _encode(encoder, scifact, DOCS, PromptType.query)
    _encode(encoder, trecqa, DOCS, PromptType.document)  # another task: another key
    _encode(encoder, scifact, DOCS[:2], PromptType.document)  # another text list: another key
    assert len(recorder.calls) == 5
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3
    assert encoder.encoded_texts == len(DOCS) * 4 + 2


def test_forced_reevaluation_reads_the_corpus_back(
    recorder: RecordingEmbedder, small_tasks_dir: Path, tmp_path: Path
) -> None:
    cache = CorpusEmbeddingCache(tmp_path / "cache")
    (task,) = load_local_tasks(small_tasks_dir, ["SciFact"])
    first = evaluate_tasks(recorder, [task], tmp_path / "one", corpus_cache=cache)
    n_first = len(recorder.texts)
    second = evaluate_tasks(recorder, [task], tmp_path / "two", corpus_cache=cache)
    n_queries = len((small_tasks_dir / "SciFact" / "queries.jsonl").read_text().splitlines())
    assert len(recorder.texts) - n_first == n_queries  # only the queries were encoded again
    assert n_first > n_queries and cache.hits >= 1
    assert second == first
