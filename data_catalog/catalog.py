"""The catalog: a YAML list of sources, validated by pydantic with errors that name the source and field.

A source says where rows come from (``loader``), how raw fields map onto the canonical schema (``fields`` and
``transform``) and what the rows are for (stage, category, task type, instruction). Relative paths resolve
against the catalog's ``base_dir``, itself relative to the YAML file unless given at load time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from data_catalog.schema import Stage, TaskType
from data_catalog.specs import (
    PACKAGED_BUILDERS,
    BeirSpec,
    CsvLoader,
    ExplodeSpec,
    Filter,
    GroupSpec,
    HuggingFaceDiskLoader,
    HuggingFaceLoader,
    JsonlLoader,
    JsonLoader,
    Loader,
    ParquetLoader,
    Strict,
    as_list,
    one_or_many,
)

__all__ = [
    "BOOKKEEPING_FIELDS",
    "INSTRUCTED_STAGES",
    "Catalog",
    "CatalogError",
    "CsvLoader",
    "FieldMap",
    "HuggingFaceDiskLoader",
    "HuggingFaceLoader",
    "JsonLoader",
    "JsonlLoader",
    "ParquetLoader",
    "ResolvedCatalog",
    "Source",
    "load_catalog",
]


class CatalogError(ValueError):
    """A catalog that cannot be used; the message names the source and the field."""


class FieldMap(Strict):
    """Raw column names for each canonical field; a list of columns is joined with a blank line."""

    query: str | list[str] | None = None
    positive: str | list[str] | None = None
    negatives: str | list[str] | None = None
    label: str | None = None
    text: str | list[str] | None = None


INSTRUCTED_STAGES = frozenset({Stage.FINETUNE})
"""Stages whose sources need an ``instruction``: fine-tuning queries carry a task instruction, pre-training none."""

Transform = Literal["pair", "exemplar", "group", "explode", "beir"]
_OPTION_BLOCKS = {"group": "group", "explode": "explode", "beir": "beir"}


class Source(Strict):
    """One input. ``where`` filters records before mapping; ``transform`` says how records become rows:

    ``pair`` (streaming, one row per record), ``exemplar`` (classification/clustering, same-label positives),
    ``group`` (records grouped by key, e.g. NLI premise), ``explode`` (a nested candidate list per record),
    ``beir`` (queries joined with qrels and corpus). The last four hold one source in memory.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    stage: Stage
    category: str
    task_type: TaskType
    languages: list[str] = Field(min_length=1)
    loader: Loader
    fields: FieldMap
    where: list[Filter] = Field(default_factory=list)
    transform: Transform = "pair"
    group: GroupSpec | None = None
    explode: ExplodeSpec | None = None
    beir: BeirSpec | None = None
    instruction: str = ""
    license: str = "unknown"
    max_rows: int | None = Field(default=None, gt=0)
    weight: float = Field(default=1.0, gt=0)
    exemplar_negatives: int = Field(default=3, ge=0)
    enabled: bool = Field(
        default=True,
        description="False keeps a declared source out of collection unless asked for (it reads an evaluation "
        "split, or its hub layout does not fit any transform); `note` must say why",
    )
    note: str = Field(
        default="", description="Why the source is set up the way it is, e.g. why it is disabled"
    )
    rows_hint: int | None = Field(
        default=None,
        ge=0,
        description="about how many rows the source yields once collected: what `kalm plan` uses before a "
        "collection has counted them",
    )
    checked: str | None = Field(
        default=None,
        pattern=r"^(https?://\S+|none found)$",
        description="The public page the repo id, config, split and columns were verified against, or "
        "'none found' when no page was available; absent means never checked",
    )

    _where_list = field_validator("where", mode="before")(one_or_many)

    @model_validator(mode="after")
    def _fields_fit_transform(self) -> Source:
        fields = self.fields
        if self.transform == "exemplar":
            if fields.text is None or fields.label is None:
                raise ValueError("transform 'exemplar' needs fields.text and fields.label")
        elif fields.query is None or fields.positive is None:
            raise ValueError(f"transform {self.transform!r} needs fields.query and fields.positive")
        for transform, block in _OPTION_BLOCKS.items():
            given = getattr(self, block) is not None
            if given and self.transform != transform:
                raise ValueError(f"{block!r} options are only used with transform {transform!r}")
            if not given and self.transform == transform:
                raise ValueError(f"transform {transform!r} needs a {block!r} block")
        if self.stage in INSTRUCTED_STAGES and not self.instruction:
            raise ValueError("fine-tuning sources need an instruction (KaLM uses task-specific instructions)")
        if not self.enabled and not self.note.strip():
            raise ValueError("a disabled source needs a 'note' saying why it is off")
        return self

    def input_paths(self) -> list[str]:
        """Every file this source reads (relative), side tables included, for fingerprints and checks."""
        loader = self.loader
        local_files = isinstance(loader, HuggingFaceLoader) and loader.path in PACKAGED_BUILDERS
        paths = list(loader.data_files or []) if local_files else as_list(loader.path)  # type: ignore[union-attr]
        if self.beir is not None:
            paths += as_list(self.beir.corpus.path) + as_list(self.beir.qrels.path)
        return paths


BOOKKEEPING_FIELDS = frozenset({"enabled", "note", "checked", "rows_hint"})
"""Source fields that describe the catalog entry rather than the rows, so config hashes leave them out."""


class CollectLimits(Strict):
    max_text_chars: int = Field(default=8192, gt=0)
    shard_rows: int = Field(default=100_000, gt=0)
    batch_rows: int = Field(default=10_000, gt=0)


class Catalog(Strict):
    version: Literal[1] = 1
    base_dir: str = "."
    limits: CollectLimits = CollectLimits()
    expected_rows: dict[str, int] = Field(
        default_factory=dict,
        description="rows per stage the whole inventory is known to hold (e.g. the paper's reported sizes), for "
        "plans where sources carry no rows_hint",
    )
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
        """The loader's (first) input path."""
        return (self.root / as_list(source.loader.path)[0]).resolve()

    def paths_of(self, source: Source) -> list[Path]:
        """Every input file of the source, resolved, in declaration order."""
        return [(self.root / path).resolve() for path in source.input_paths()]

    def config_hash(self) -> str:
        dumped = self.catalog.model_dump(
            mode="json", exclude={"expected_rows": True, "sources": {"__all__": set(BOOKKEEPING_FIELDS)}}
        )
        payload = json.dumps(dumped, sort_keys=True)
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


def load_catalog(
    path: Path | str, base_dir: Path | str | None = None, include_disabled: bool = False
) -> ResolvedCatalog:
    """Read and validate a catalog YAML; raise :class:`CatalogError` with a one-line reason.

    Sources marked ``enabled: false`` are validated (so a switched-off entry cannot rot) but dropped from the
    result unless ``include_disabled``: a run never reads them by accident, e.g. evaluation qrels.
    """
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
    if not include_disabled:
        enabled = [source for source in catalog.sources if source.enabled]
        if not enabled:
            raise CatalogError(f"{path}: every source is disabled (enabled: false); nothing to collect")
        catalog = catalog.model_copy(update={"sources": enabled})
    root = Path(base_dir) if base_dir is not None else path.parent / catalog.base_dir
    return ResolvedCatalog(catalog=catalog, root=root.resolve())
