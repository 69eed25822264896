"""Configuration and statistics models for dedup (the JSON in ``stats.json`` is ``DedupStats``)."""

from __future__ import annotations

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

REMOVED_SCHEMA = pa.schema(
    [
        pa.field(name, pa.string(), nullable=False)
        for name in ("id", "source", "category", "reason", "kept_id")
    ]
)


class MinHashSettings(BaseModel):
    """Shingling, MinHash and LSH banding shared by dedup and decontamination (so both match texts alike).

    ``bands x rows = 16 x 8`` (not the "optimal" 9 x 13) because candidates are verified by exact Jaccard:
    recall is bought with extra candidates, and precision is restored by the check (``dedup_anchors.md``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_perm: int = Field(128, ge=1)
    ngram: int = Field(5, ge=1, description="word n-gram size for near-dup shingles")
    char_ngram: int = Field(5, ge=1, description="character n-gram size for short or CJK texts")
    short_text_words: int = Field(8, ge=0, description="texts with fewer words use character n-grams")
    bands: int = Field(16, ge=1)
    rows: int = Field(8, ge=1)
    threshold: float = Field(0.8, ge=0.0, le=1.0, description="verification Jaccard of shingle sets")
    seed: int = 1

    def shingling(self) -> dict[str, int]:
        return {"ngram": self.ngram, "char_ngram": self.char_ngram, "short_text_words": self.short_text_words}

    @model_validator(mode="after")
    def _bands_fit(self) -> MinHashSettings:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows={self.bands * self.rows} exceeds num_perm={self.num_perm}")
        return self


class ClusterSettings(BaseModel):
    """Where and how dedup or decontamination runs on Ray; none of it changes the output, so none of it is
    part of a step's cache key or config hash (:data:`CLUSTER_FIELDS`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    use_ray: bool = Field(
        False, description="run on a Ray cluster: no process holds the corpus; the output is the same"
    )
    ray_address: str | None = Field(
        None, description="Ray cluster address; None: the profile's (KALM_RAY_ADDRESS), else a local Ray"
    )
    ray_num_cpus: float = Field(1.0, gt=0.0, description="CPUs reserved per Ray task")
    ray_unit_rows: int = Field(
        100_000, ge=1, description="rows per map task (consecutive row groups of one input file)"
    )
    ray_partition_rows: int = Field(
        500_000, ge=1, description="rows per shuffle partition (id ranges, hash and band-key partitions)"
    )
    ray_max_retries: int = Field(3, ge=0, description="reruns of a task whose worker or node died")
    scratch_dir: str | None = Field(
        None,
        description="intermediate files of a Ray run (deleted at the end); must be visible to every node; "
        "None: beside the output folder",
    )


CLUSTER_FIELDS = frozenset(ClusterSettings.model_fields)


class DedupConfig(MinHashSettings, ClusterSettings):
    """Exact + MinHash-LSH near dedup settings (the MinHash fields are :class:`MinHashSettings`)."""

    exact: bool = True
    near: bool = True
    rows_per_part: int = Field(1_000_000, ge=1)
    row_group_size: int = Field(100_000, ge=1)
    batch_size: int = Field(4096, ge=1, description="documents per signature batch")
    bucket_window: int = Field(16, ge=1, description="neighbours paired per member inside an LSH bucket")
    max_examples: int = Field(5, ge=0)


class CategoryDedupStats(BaseModel):
    rows_in: int = 0
    exact: int = 0
    near: int = 0
    out: int = 0


class DedupStats(BaseModel):
    rows_in: int
    exact_duplicates: int
    near_duplicates: int
    rows_out: int
    per_category: dict[str, CategoryDedupStats]
    cluster_size_histogram: dict[int, int] = Field(description="cluster size -> number of clusters")
    example_clusters: list[list[str]] = Field(description="texts of the largest clusters, keeper first")
