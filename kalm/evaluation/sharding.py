"""Ray-sharded encoding of big text lists during evaluation, through the mining stage's sharded encoder.

Why: on a multi-GPU node (or a Ray cluster) one process encodes a large retrieval corpus on one device while
the others sit idle. Above a configured size an encode call is split into contiguous shards, each encoded by a
Ray task that loads the checkpoint from its folder (`kalm.mining.sharded.encode_sharded`), and the parts are
concatenated in input order. Off by default: starting Ray and loading the model once per shard only pays for
itself on corpora of tens of thousands of texts.

The shards encode with the training code's pooling (`kalm.mining.encode.TextEncoder`), which gives the same
vectors as the sentence-transformers embedder on CPU (checked to 1e-5 in the tests); on GPU workers they run in
half precision, which is why the corpus cache keys the encode path. Workers read the model from its path, so
on a multi-node cluster that path must be visible to every node. mteb encodes retrieval corpora in chunks of
50,000 documents, so a threshold above that never triggers for retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kalm.evaluation.protocol import TextEmbedder, l2_normalise


class RaySharding(BaseModel):
    """When and how to shard: encode calls of more than `threshold` texts go to `num_shards` Ray tasks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: int = Field(gt=0, description="texts per encode call above which Ray sharding is used")
    num_shards: int = Field(2, ge=1, description="Ray tasks per sharded encode call (one GPU each on GPU)")
    ray_address: str | None = Field(None, description="`auto`, `ray://host:port`; None = local Ray")
    cpus_per_shard: float = Field(0.5, gt=0, description="CPUs each CPU-only shard asks Ray for")

    def applies(self, n_texts: int) -> bool:
        return n_texts > self.threshold


def encode_on_ray(embedder: TextEmbedder, texts: Sequence[str], sharding: RaySharding) -> np.ndarray:
    """Embeddings of `texts` (input order, unit rows, float32) computed by `sharding.num_shards` Ray tasks."""
    from kalm.mining.encode import EncodeConfig
    from kalm.mining.sharded import encode_sharded

    model_path = getattr(embedder, "path", None)
    if model_path is None:
        raise ValueError(
            f"Ray-sharded encoding needs an embedder backed by a model folder; {embedder!r} has none"
        )
    config = EncodeConfig(max_length=getattr(embedder, "max_length", None))
    vectors = encode_sharded(
        list(texts),
        model_path,
        sharding.num_shards,
        config,
        cpus_per_shard=sharding.cpus_per_shard,
        ray_address=sharding.ray_address,
    )
    if vectors.shape[0] != len(texts):
        raise RuntimeError(f"Ray-sharded encoding returned {vectors.shape[0]} vectors for {len(texts)} texts")
    return l2_normalise(vectors)
