"""The declarative pieces of a source: where its records come from, which rows to keep, how to group them.

Kept apart from :mod:`data_catalog.catalog` so the catalog module stays a short description of a source, and
so every YAML option is one small pydantic model whose validation error names the field that is wrong.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a catalog must fail validation, not silently do nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Paths = str | list[str]


def as_list(value: Paths) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class JsonlLoader(Strict):
    """JSON lines, plain or .gz; a list of paths is read in order as one source (e.g. dev + test)."""

    kind: Literal["jsonl"]
    path: Paths


class JsonLoader(Strict):
    """A JSON file holding one array of objects (or ``records_key`` → array)."""

    kind: Literal["json"]
    path: Paths
    records_key: str | None = None


class CsvLoader(Strict):
    """CSV/TSV; ``quoting: none`` for files whose quote characters are literal text (MSRP, SNLI)."""

    kind: Literal["csv"]
    path: Paths
    delimiter: str = ","
    header: bool = True
    column_names: list[str] | None = None
    quoting: Literal["minimal", "none"] = "minimal"


class ParquetLoader(Strict):
    kind: Literal["parquet"]
    path: Paths


PACKAGED_BUILDERS = frozenset({"parquet", "json", "csv", "text", "arrow"})


class HuggingFaceLoader(Strict):
    """``datasets.load_dataset`` — a hub repo id, or a local folder/builder name with ``data_files``."""

    kind: Literal["huggingface"]
    path: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    data_files: list[str] | None = None
    streaming: bool = True


class HuggingFaceDiskLoader(Strict):
    """A dataset written with ``Dataset.save_to_disk``."""

    kind: Literal["huggingface_disk"]
    path: str
    split: str | None = None


FileLoader = JsonlLoader | JsonLoader | CsvLoader | ParquetLoader
Loader = Annotated[
    JsonlLoader | JsonLoader | CsvLoader | ParquetLoader | HuggingFaceLoader | HuggingFaceDiskLoader,
    Field(discriminator="kind"),
]
SideLoader = Annotated[
    JsonlLoader | JsonLoader | CsvLoader | ParquetLoader | HuggingFaceLoader, Field(discriminator="kind")
]

Scalar = str | int | float | bool


class Filter(Strict):
    """One row condition. Values compare as text, so ``equals: 1`` matches CSV ``"1"`` and JSON ``1`` alike.

    Exactly one operator: ``equals``, ``in``, ``not_in``, ``at_least``/``at_most`` (numeric, e.g. STS scores)
    on ``column``; or ``nonempty: <column>`` (present, not null, not whitespace).
    """

    column: str | None = None
    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    at_least: float | None = None
    at_most: float | None = None
    nonempty: str | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Filter:
        ops = [
            name
            for name in ("equals", "in_", "not_in", "at_least", "at_most", "nonempty")
            if name in self.model_fields_set
        ]
        if len(ops) != 1:
            raise ValueError("a filter needs exactly one of equals, in, not_in, at_least, at_most, nonempty")
        if ops[0] == "nonempty" and self.column is not None:
            raise ValueError("'nonempty' names its column itself; drop 'column'")
        if ops[0] != "nonempty" and self.column is None:
            raise ValueError(f"filter '{ops[0].rstrip('_')}' needs 'column'")
        return self

    @property
    def target(self) -> str:
        return self.nonempty if self.nonempty is not None else self.column  # type: ignore[return-value]

    def describe(self) -> str:
        return f"where:{self.target}"


def one_or_many(value: Any) -> Any:
    """``where: {...}`` and ``where: [{...}, ...]`` both mean a list of filters (all must hold)."""
    return [value] if isinstance(value, dict) else value


class Candidates(Strict):
    """How a group's candidate records become rows: which are positives, which negatives, how many rows.

    ``per_group`` writes one row per group (the first positive in file order, e.g. one per TrecQA question);
    ``per_positive`` writes one row per positive, each with the group's negatives (e.g. every ATEC label-1 pair).
    Negatives are the group's ``negative`` candidates, deduplicated, minus the anchor and the positive;
    ``max_negatives`` keeps a seeded sample so the output is the same on every run.
    """

    positive: Filter
    negative: Filter | None = None
    rows: Literal["per_group", "per_positive"] = "per_group"
    max_negatives: int | None = Field(default=None, ge=0)


class GroupSpec(Candidates):
    """Group records by ``by`` (e.g. an NLI premise); ``fields.query`` is the anchor, ``fields.positive`` the
    candidate text of each record."""

    by: list[str] = Field(min_length=1)

    @field_validator("by", mode="before")
    @classmethod
    def _one_column(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ExplodeSpec(Candidates):
    """One record holds a nested list (``column``) of candidate objects; ``fields.positive`` names the text
    field inside each object (e.g. CLIMATE-FEVER ``evidences[].evidence``)."""

    column: str


class BeirSpec(Strict):
    """BEIR layout: the loader reads ``queries`` (``_id``, ``fields.query``), ``qrels`` (``query-id``,
    ``corpus-id``, ``score``) names relevant documents in ``corpus`` (``_id``; ``fields.positive`` columns).

    A qrel with score >= ``min_score`` is a positive; a judged one below it (e.g. graded 0) is a negative.
    """

    corpus: SideLoader
    qrels: SideLoader
    min_score: int = 1
    rows: Literal["per_group", "per_positive"] = "per_group"
    max_negatives: int | None = Field(default=None, ge=0)
