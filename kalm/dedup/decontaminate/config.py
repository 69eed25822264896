"""Decontamination settings and the statistics written to ``stats.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from kalm.dedup.config import ClusterSettings, MinHashSettings


class DecontaminationConfig(MinHashSettings, ClusterSettings):
    """Which evaluation texts to index and how training texts are matched against them.

    The MinHash fields are :class:`kalm.dedup.config.MinHashSettings`, with the same defaults as dedup; the Ray
    ones (``use_ray``: match on a cluster, the index broadcast to the workers) are
    :class:`kalm.dedup.config.ClusterSettings`.
    """

    enabled: bool = True
    tasks_dir: Path | None = Field(None, description="evaluation tasks folder (eval layout)")
    include_corpus: bool = Field(False, description="also index Retrieval corpus texts and titles")
    allow_unchecked_benchmarks: bool = Field(
        False,
        description="train even when an official benchmark's texts cannot be read (no hub): the stats name "
        "each unchecked task; off, the step stops instead",
    )
    fields: tuple[Literal["query", "positive"], ...] = ("query", "positive")
    exact: bool = True
    near: bool = True
    batch_size: int = Field(65_536, ge=1, description="training rows read per batch")
    max_bucket_candidates: int = Field(64, ge=1, description="eval texts checked per shared LSH bucket")
    max_examples: int = Field(5, ge=0)
    rows_per_part: int = Field(1_000_000, ge=1)
    row_group_size: int = Field(100_000, ge=1)


class ContaminationExample(BaseModel):
    id: str
    field: str
    text: str
    eval_text: str
    match: str
    jaccard: float


class TaskContamination(BaseModel):
    eval_texts: int = Field(0, description="distinct match keys indexed for this task")
    rows_dropped: int = 0
    exact: int = 0
    near: int = 0
    examples: list[ContaminationExample] = Field(default_factory=list)


class CategoryContamination(BaseModel):
    rows_in: int = 0
    contaminated: int = 0
    out: int = 0


class DecontaminationStats(BaseModel):
    """``rows_dropped`` counts distinct rows; a row matching several tasks counts once per task there."""

    rows_in: int
    rows_dropped: int
    rows_out: int
    eval_texts: int = Field(description="distinct evaluation match keys indexed (all tasks)")
    per_task: dict[str, TaskContamination]
    per_category: dict[str, CategoryContamination]
    unchecked: list[str] = Field(
        default_factory=list, description="official tasks whose texts could not be read (allowed by config)"
    )
