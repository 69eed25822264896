"""The catalog: a YAML list of sources, validated by pydantic with errors that name the source and field.

A source says where rows come from (``loader``), how raw fields map onto the canonical schema (``fields`` and
``transform``) and what the rows are for (stage, category, task type, instruction). Relative paths resolve
against the catalog's ``base_dir``, itself relative to the YAML file unless given at load time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from data_catalog.schema import Stage, TaskType


class CatalogError(ValueError):
    """A catalog that cannot be used; the message names the source and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JsonlLoader(_Strict):
    kind: Literal["jsonl"]
    path: str


class JsonLoader(_Strict):
    """A JSON file holding one array of objects (or ``records_key`` → array)."""

    kind: Literal["json"]
    path: str
    records_key: str | None = None


class CsvLoader(_Strict):
    kind: Literal["csv"]
    path: str
    delimiter: str = ","
    header: bool = True
    column_names: list[str] | None = None
    quoting: Literal["minimal", "none"] = "minimal"


class ParquetLoader(_Strict):
    kind: Literal["parquet"]
    path: str


class HuggingFaceLoader(_Strict):
    """``datasets.load_dataset`` — a hub repo id, or a local folder/builder name with ``data_files``."""

    kind: Literal["huggingface"]
    path: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    data_files: list[str] | None = None
    streaming: bool = True


class HuggingFaceDiskLoader(_Strict):
    """A dataset written with ``Dataset.save_to_disk``."""

    kind: Literal["huggingface_disk"]
    path: str
    split: str | None = None


Loader = Annotated[
    JsonlLoader | JsonLoader | CsvLoader | ParquetLoader | HuggingFaceLoader | HuggingFaceDiskLoader,
    Field(discriminator="kind"),
]


class FieldMap(_Strict):
    """Raw column names for each canonical field; a list of columns is joined with a blank line."""

    query: str | list[str] | None = None
    positive: str | list[str] | None = None
    negatives: str | list[str] | None = None
    label: str | None = None
    text: str | None = None


class Source(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    stage: Stage
    category: str
    task_type: TaskType
    languages: list[str] = Field(min_length=1)
    loader: Loader
    fields: FieldMap
    transform: Literal["pair", "exemplar"] = "pair"
    instruction: str = ""
    license: str = "unknown"
    max_rows: int | None = Field(default=None, gt=0)
    weight: float = Field(default=1.0, gt=0)
    exemplar_negatives: int = Field(default=3, ge=0)

    @model_validator(mode="after")
    def _fields_fit_transform(self) -> Source:
        if self.transform == "pair" and (self.fields.query is None or self.fields.positive is None):
            raise ValueError("transform 'pair' needs fields.query and fields.positive")
        if self.transform == "exemplar" and (self.fields.text is None or self.fields.label is None):
            raise ValueError("transform 'exemplar' needs fields.text and fields.label")
        if self.stage == Stage.FINETUNE and not self.instruction:
            raise ValueError("fine-tuning sources need an instruction (KaLM uses task-specific instructions)")
        return self


class CollectLimits(_Strict):
    max_text_chars: int = Field(default=8192, gt=0)
    shard_rows: int = Field(default=100_000, gt=0)
    batch_rows: int = Field(default=10_000, gt=0)


class Catalog(_Strict):
    version: Literal[1] = 1
    base_dir: str = "."
    limits: CollectLimits = CollectLimits()
    sources: list[Source] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"duplicate source name {source.name!r}")
            seen.add(source.name)
        return self

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise CatalogError(f"no source named {name!r} in the catalog")


class ResolvedCatalog(BaseModel):
    """A validated catalog plus the absolute directory its relative paths resolve against."""

    catalog: Catalog
    root: Path

    def path_of(self, source: Source) -> Path:
        return (self.root / source.loader.path).resolve()

    def config_hash(self) -> str:
        payload = json.dumps(self.catalog.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def _describe(error: ValidationError, raw: dict) -> str:
    first = error.errors()[0]
    loc = list(first["loc"])
    where = "catalog"
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        sources = raw.get("sources") or []
        name = sources[loc[1]].get("name", f"#{loc[1]}") if loc[1] < len(sources) else f"#{loc[1]}"
        where = f"source {name!r}"
        loc = loc[2:]
    field = ".".join(str(part) for part in loc) or "(source)"
    return f"{where}: field {field!r}: {first['msg']}"


def load_catalog(path: Path | str, base_dir: Path | str | None = None) -> ResolvedCatalog:
    """Read and validate a catalog YAML; raise :class:`CatalogError` with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog file not found: {path}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: the catalog must be a mapping with a 'sources' list")
    try:
        catalog = Catalog.model_validate(raw)
    except ValidationError as error:
        raise CatalogError(f"{path}: {_describe(error, raw)}") from None
    root = Path(base_dir) if base_dir is not None else path.parent / catalog.base_dir
    return ResolvedCatalog(catalog=catalog, root=root.resolve())
