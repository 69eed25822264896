"""Exact + MinHash-LSH near-duplicate removal and evaluation decontamination over canonical-schema Parquet."""

from kalm.dedup.config import CategoryDedupStats, DedupConfig, DedupStats
from kalm.dedup.decontaminate import DecontaminationConfig, DecontaminationStats, decontaminate_dataset
from kalm.dedup.pipeline import dedup_dataset

__all__ = [
    "CategoryDedupStats",
    "DecontaminationConfig",
    "DecontaminationStats",
    "DedupConfig",
    "DedupStats",
    "decontaminate_dataset",
    "dedup_dataset",
]
