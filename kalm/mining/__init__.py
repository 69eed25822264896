"""Hard-negative mining with the previous stage's checkpoint: encode (cached, optionally Ray-sharded), exact
blocked top-k search, filtered sampling from a rank window, and a Parquet step output with provenance."""

from kalm.mining.cache import EmbeddingCache, encode_cached
from kalm.mining.encode import EncodeConfig, TextEncoder
from kalm.mining.pipeline import mine_dataset
from kalm.mining.search import blocked_topk, full_topk
from kalm.mining.select import MiningConfig, SearchConfig, select_negatives
from kalm.mining.stats import MiningStats

__all__ = [
    "EmbeddingCache",
    "EncodeConfig",
    "MiningConfig",
    "MiningStats",
    "SearchConfig",
    "TextEncoder",
    "blocked_topk",
    "encode_cached",
    "full_topk",
    "mine_dataset",
    "select_negatives",
]
