"""The mteb encoder that puts a `TextEmbedder` behind KaLM-Embedding-V2's prompting scheme.

KaLM-V2 is trained with an instruction on the query side only, so evaluation must reproduce that exactly or the
scores measure a different model:

* retrieval / reranking queries: ``"Instruct: {instruction} \\n Query: " + text``;
* retrieval / reranking documents: the bare text (mteb has already joined title and body);
* symmetric tasks (STS, PairClassification): the instruction on both sides;
* Classification and Clustering: every text is treated as a query and gets the instruction.

mteb tells the encoder which side it is encoding through `prompt_type`: `document` for corpora, `query` for
queries and `None` for everything symmetric or single-sided. So the rule is simply "document -> no
instruction, anything else -> instruction", with the instruction taken from the task metadata's `prompt`
(filled from task.json's `instruction` by `load_local_tasks`; official mteb tasks carry their own). An
official task without a prompt for that side gets mteb's own default for its task type (e.g. "Retrieve
semantically similar text." for STS), the instruction mteb itself gives instruction-tuned models.

Document embeddings can be served from a `CorpusEmbeddingCache`, and big text lists can be encoded over Ray
(`RaySharding`); both are optional and change no vector beyond float rounding.

`use_instructions=False` turns all instructions off; that is for baselines that were never trained with them
(e.g. all-MiniLM-L6-v2, whose published scores are instruction-free and drop noticeably with the prefix).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

from data_catalog.schema import format_query
from kalm.evaluation.protocol import TextEmbedder, l2_normalise
from kalm.evaluation.sharding import RaySharding, encode_on_ray
from kalm.progress import ProgressLog

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mteb.abstasks.task_metadata import TaskMetadata
    from torch.utils.data import DataLoader

    from kalm.evaluation.corpus_cache import CorpusEmbeddingCache


def task_instruction(task_metadata: TaskMetadata, prompt_type: PromptType | None) -> str:
    """The instruction for one side of a task: none for documents, the task prompt otherwise.

    A task without a prompt for that side (official mteb tasks only: a local task.json must have one) falls
    back to mteb's default prompt for its task type.
    """
    if prompt_type == PromptType.document:
        return ""
    prompt = task_metadata.prompt
    if isinstance(prompt, dict):
        prompt = prompt.get((prompt_type or PromptType.query).value)
    if prompt:
        return str(prompt)
    from mteb.abstasks.abstask import get_abstask_prompt

    return get_abstask_prompt(task_metadata.name) or ""


def encode_length_sorted(embedder: TextEmbedder, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """Encode longest-first so each batch holds texts of similar length, then restore the input order.

    Padding is per batch, so sorting cuts wasted compute substantially on mixed-length data (corpora next to
    one-line queries). The stable sort keeps ties in input order, making the batching deterministic.
    """
    if len(texts) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    sorted_vectors = np.asarray(embedder.encode([texts[i] for i in order], batch_size=batch_size))
    if sorted_vectors.shape[0] != len(texts):
        raise ValueError(
            f"embedder {embedder.name!r} returned {sorted_vectors.shape[0]} vectors for {len(texts)} texts"
        )
    vectors = np.empty_like(sorted_vectors)
    vectors[np.asarray(order)] = sorted_vectors
    return l2_normalise(vectors)


def build_model_meta(embedder: TextEmbedder, *, use_instructions: bool = True) -> ModelMeta:
    """mteb metadata for the embedder; mteb skips models that lack it, and keys result files on name+revision."""
    name = embedder.name if "/" in embedder.name else f"local/{embedder.name}"
    return ModelMeta.create_empty(
        overwrites={
            "name": name,
            "revision": embedder.revision,
            "similarity_fn_name": ScoringFunction.COSINE,
            "use_instructions": use_instructions,
            "open_weights": True,
        }
    )


class KalmMtebEncoder(AbsEncoder):
    """mteb `EncoderProtocol` implementation over any `TextEmbedder`, with KaLM-V2 prompts.

    `corpus_cache` serves document-side encode calls seen before (same model, task, instruction and texts);
    `sharding` sends encode calls above its threshold to Ray tasks. `encoded_texts` counts the texts actually
    run through a model, which is what the cache saves; `track` turns that count into a line a minute while a
    big corpus is encoded (mteb hands corpora over in chunks of 50,000 texts).
    """

    def __init__(
        self,
        embedder: TextEmbedder,
        *,
        batch_size: int = 32,
        use_instructions: bool = True,
        corpus_cache: CorpusEmbeddingCache | None = None,
        sharding: RaySharding | None = None,
    ) -> None:
        self.embedder = embedder
        self.batch_size = batch_size
        self.use_instructions = use_instructions
        self.corpus_cache = corpus_cache
        self.sharding = sharding
        self.encoded_texts = 0
        self.progress: ProgressLog | None = None
        self._tracked_from = 0
        self.mteb_model_meta = build_model_meta(embedder, use_instructions=use_instructions)

    def encode(
        self,
        inputs: DataLoader[Any],
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embed every text of the mteb dataloader, with the instruction mteb's `prompt_type` calls for."""
        texts = [text for batch in inputs for text in batch["text"]]
        instruction = task_instruction(task_metadata, prompt_type) if self.use_instructions else ""
        texts = [format_query(instruction, text) for text in texts]
        batch_size = int(kwargs.get("batch_size") or self.batch_size)
        sharded = self.sharding is not None and self.sharding.applies(len(texts))
        if self.corpus_cache is None or prompt_type != PromptType.document or not texts:
            return self._encode(texts, batch_size, sharded)
        key = self.corpus_cache.key(
            self.embedder, task_metadata, instruction, texts, "ray-sharded" if sharded else "in-process"
        )
        cached = self.corpus_cache.load(key)
        if cached is not None:
            return cached
        vectors = self._encode(texts, batch_size, sharded)
        self.corpus_cache.save(key, vectors)
        return vectors

    def _encode(self, texts: list[str], batch_size: int, sharded: bool) -> np.ndarray:
        if sharded and self.sharding is not None:
            vectors = encode_on_ray(self.embedder, texts, self.sharding)
        else:
            vectors = encode_length_sorted(self.embedder, texts, batch_size)
        self.encoded_texts += len(texts)
        if self.progress is not None:
            self.progress.update(self.encoded_texts - self._tracked_from)
        return vectors

    def track(self, progress: ProgressLog | None) -> None:
        """Count the texts encoded from now on into ``progress`` (the caller gives one per task)."""
        self.progress, self._tracked_from = progress, self.encoded_texts

    def __repr__(self) -> str:
        return f"KalmMtebEncoder({self.embedder!r})"
