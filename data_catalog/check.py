"""Offline catalog check: everything about a catalog that can be judged without the hub.

``load_catalog`` stops at the first error, which is right for a run but slow for fixing a 166-source inventory;
this check reads the raw YAML too, so it lists every duplicate name and every missing instruction at once, counts
categories per stage (over enabled sources, the ones a run trains on) and applies a catalog's requirements, e.g.
the paper's >= 20 pre-training / >= 100 fine-tuning categories and a ``checked:`` mark on every source.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from data_catalog.catalog import INSTRUCTED_STAGES, CatalogError, load_catalog
from data_catalog.specs import Strict

NONE_FOUND = "none found"


class Requirements(Strict):
    """What a catalog must provide beyond a valid schema; the defaults ask for nothing."""

    min_pretrain_categories: int = Field(
        default=0, ge=0, description="Enabled pre-training categories needed"
    )
    min_finetune_categories: int = Field(default=0, ge=0, description="Enabled fine-tuning categories needed")
    require_checked: bool = Field(
        default=False,
        description="Every source must say which public page it was verified against (`checked:`)",
    )


KALM_V2_REQUIREMENTS = Requirements(
    min_pretrain_categories=20, min_finetune_categories=100, require_checked=True
)
"""The paper's inventory size (KaLM-Embedding-V2 §5), and no unverified entry in data_catalog/kalm_v2.yaml."""


class StageCounts(BaseModel):
    """Sizes of one stage of the catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: int = Field(description="Sources declared for the stage, disabled ones included")
    enabled: int = Field(description="Sources a run reads (enabled: true)")
    categories: int = Field(description="Distinct categories among the enabled sources")


class CatalogReport(BaseModel):
    """The offline verdict on one catalog file: ``ok`` when ``problems`` is empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="The catalog file checked")
    schema_error: str | None = Field(
        description="load_catalog's one-line error, None when the schema validates"
    )
    duplicate_names: list[str] = Field(description="Source names declared more than once")
    missing_instructions: list[str] = Field(description="Sources of an instructed stage with no instruction")
    unchecked: list[str] = Field(description="Sources without a `checked:` mark")
    unverifiable: list[str] = Field(description="Sources marked `checked: none found`")
    disabled: list[str] = Field(description="Sources with enabled: false (skipped by a run)")
    stages: dict[str, StageCounts] = Field(description="Counts per stage name")
    problems: list[str] = Field(description="One line per failed verdict; empty means the catalog passes")

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> list[str]:
        """Lines for a terminal: the counts, then each problem."""
        total = sum(counts.sources for counts in self.stages.values())
        verified = total - len(self.unchecked) - len(self.unverifiable)
        lines = [
            f"{self.path}: {total} sources ({len(self.disabled)} disabled); "
            f"checked against a page {verified}, none found {len(self.unverifiable)}, unchecked {len(self.unchecked)}"
        ]
        lines += [
            f"  {stage}: {c.sources} sources, {c.enabled} enabled, {c.categories} categories"
            for stage, c in self.stages.items()
        ]
        lines += [f"  problem: {problem}" for problem in self.problems]
        lines.append("ok" if self.ok else f"{len(self.problems)} problem(s)")
        return lines


def check_catalog(path: Path | str, requirements: Requirements | None = None) -> CatalogReport:
    """Validate the catalog at ``path`` and judge it against ``requirements`` (none by default), offline."""
    path = Path(path)
    raw_sources, read_error = _raw_sources(path)
    schema_error = read_error or _schema_error(path)
    names = Counter(str(source.get("name")) for source in raw_sources)
    duplicates = sorted(name for name, count in names.items() if count > 1)
    missing = [
        _name(s) for s in raw_sources if s.get("stage") in INSTRUCTED_STAGES and not _text(s, "instruction")
    ]
    unchecked = [_name(s) for s in raw_sources if not _text(s, "checked")]
    unverifiable = [_name(s) for s in raw_sources if _text(s, "checked") == NONE_FOUND]
    disabled = [_name(s) for s in raw_sources if s.get("enabled") is False]
    stages = _stage_counts(raw_sources)

    problems = [f"schema: {schema_error}"] if schema_error else []
    problems += [f"duplicate source name {name!r} ({names[name]} times)" for name in duplicates]
    problems += [f"source {name!r}: its stage needs an instruction" for name in missing]
    problems += _requirement_problems(requirements or Requirements(), stages, unchecked)
    return CatalogReport(
        path=str(path),
        schema_error=schema_error,
        duplicate_names=duplicates,
        missing_instructions=missing,
        unchecked=unchecked,
        unverifiable=unverifiable,
        disabled=disabled,
        stages=stages,
        problems=problems,
    )


def _raw_sources(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The YAML's source mappings as written, so one bad entry does not hide the others."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        return [], f"{path}: cannot read the catalog: {str(error).splitlines()[0]}"
    sources = raw.get("sources") if isinstance(raw, dict) else None
    return [s for s in sources or [] if isinstance(s, dict)], None


def _schema_error(path: Path) -> str | None:
    try:
        load_catalog(path, include_disabled=True)
    except CatalogError as error:
        return str(error)
    return None


def _name(source: dict[str, Any]) -> str:
    return str(source.get("name", "?"))


def _text(source: dict[str, Any], key: str) -> str:
    value = source.get(key)
    return value.strip() if isinstance(value, str) else ""


def _stage_counts(sources: list[dict[str, Any]]) -> dict[str, StageCounts]:
    stages = sorted({str(s.get("stage")) for s in sources})
    counts = {}
    for stage in stages:
        declared = [s for s in sources if str(s.get("stage")) == stage]
        enabled = [s for s in declared if s.get("enabled", True) is not False]
        categories = {str(s.get("category")) for s in enabled}
        counts[stage] = StageCounts(sources=len(declared), enabled=len(enabled), categories=len(categories))
    return counts


def _requirement_problems(
    requirements: Requirements, stages: dict[str, StageCounts], unchecked: list[str]
) -> list[str]:
    problems = []
    for stage, needed in (
        ("pretrain", requirements.min_pretrain_categories),
        ("finetune", requirements.min_finetune_categories),
    ):
        have = stages[stage].categories if stage in stages else 0
        if have < needed:
            problems.append(f"{stage}: {have} categories among enabled sources, need at least {needed}")
    if requirements.require_checked:
        problems += [
            f"source {name!r}: no checked: mark (a page URL or {NONE_FOUND!r})" for name in unchecked
        ]
    return problems
