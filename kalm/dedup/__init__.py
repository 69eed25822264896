"""Exact + MinHash-LSH near-duplicate removal over canonical-schema Parquet."""

from kalm.dedup.config import CategoryDedupStats, DedupConfig, DedupStats
from kalm.dedup.pipeline import dedup_dataset

__all__ = ["CategoryDedupStats", "DedupConfig", "DedupStats", "dedup_dataset"]
