"""Online catalog check: judge each source against its repo's hub metadata, with the hub call kept thin.

The verdict logic (:func:`verify_source`) is pure: it takes *recorded* metadata (:class:`HubMetadata`), so tests
replay metadata copied from public dataset pages and never touch the hub. :func:`fetch_metadata` is the only
network code: one ``dataset_info`` call (card, files, commit) plus, when the card lists no configs, one
dataset-viewer ``/info`` call; no data is downloaded. An unreachable hub raises :class:`HubUnreachable` at once,
so ``kalm catalog check --online`` can print one line instead of retrying for minutes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from data_catalog.catalog import Source, load_catalog
from data_catalog.loaders import record_columns
from data_catalog.specs import PACKAGED_BUILDERS, HuggingFaceLoader, Strict
from data_catalog.transforms.beir import QRELS_COLUMNS


class HubUnreachable(ConnectionError):
    """The hub cannot be asked (offline mode, no route, timeout, server error); the message is one line."""


class ConfigInfo(Strict):
    """What the hub says about one config of a dataset repo."""

    splits: list[str] = Field(description="Split names the config offers")
    columns: list[str] | None = Field(
        default=None, description="Top-level feature names; None when not listed"
    )


class HubMetadata(Strict):
    """A dataset repo as the hub describes it, live or recorded from its public page."""

    repo_id: str = Field(description="owner/name on the hub")
    exists: bool = Field(description="False when the hub answers that no such dataset repo exists")
    configs: dict[str, ConfigInfo] | None = Field(
        default=None,
        description="Config name -> splits and columns; None when neither card nor viewer lists any",
    )
    files: list[str] | None = Field(default=None, description="Repo file paths, to match data_files globs")
    license: str | None = Field(default=None, description="The card's licence; None when the card has none")
    sha: str | None = Field(
        default=None, description="Commit the metadata was resolved at (what a pin writes)"
    )


class Problem(StrEnum):
    MISSING_REPO = "missing repo"
    UNKNOWN_CONFIG = "unknown config"
    UNKNOWN_SPLIT = "unknown split"
    MISSING_COLUMN = "missing declared column"
    MISSING_FILES = "no file matches data_files"
    NO_LICENSE = "no licence"


WARNINGS = frozenset({Problem.NO_LICENSE})
"""Problems that do not stop collection: the catalog's own ``license:`` documents the terms."""


class SourceVerdict(Strict):
    """The online verdict on one source; ``reason`` is one line that names the source."""

    source: str = Field(description="Source name")
    problems: list[Problem] = Field(description="What is wrong, in the order found; empty when all matches")
    reason: str = Field(description="One line naming the source and each problem's detail")

    @property
    def status(self) -> Literal["ok", "warn", "fail"]:
        if not self.problems:
            return "ok"
        return "warn" if set(self.problems) <= WARNINGS else "fail"


def verify_source(source: Source, hub: Mapping[str, HubMetadata]) -> SourceVerdict:
    """Compare the source's hub loaders (main, and BEIR corpus/qrels) with ``hub`` (repo id -> metadata)."""
    loaders = _hub_loaders(source)
    if not loaders:
        return SourceVerdict(
            source=source.name, problems=[], reason=f"source {source.name!r}: not a hub dataset"
        )
    found: list[tuple[Problem, str]] = []
    for loader, columns in loaders:
        if loader.path not in hub:
            raise KeyError(f"source {source.name!r}: no hub metadata for {loader.path!r}")
        found += _loader_problems(loader, columns, hub[loader.path])
    main = hub[loaders[0][0].path]
    if main.exists and not main.license:
        found.append((Problem.NO_LICENSE, f"{main.repo_id} declares no licence"))
    details = "; ".join(detail for _, detail in found) or "matches the hub"
    problems = list(dict.fromkeys(problem for problem, _ in found))
    return SourceVerdict(source=source.name, problems=problems, reason=f"source {source.name!r}: {details}")


def _hub_loaders(source: Source) -> list[tuple[HuggingFaceLoader, list[str]]]:
    """Each hub loader of the source with the columns its records must carry."""
    pairs: list[tuple[Any, list[str]]] = [(source.loader, record_columns(source))]
    if source.beir is not None:
        positive = source.fields.positive
        pairs[0] = (source.loader, ["_id", *pairs[0][1]])
        corpus_columns = ["_id", *([positive] if isinstance(positive, str) else positive or [])]
        pairs += [(source.beir.corpus, corpus_columns), (source.beir.qrels, list(QRELS_COLUMNS))]
    return [
        (loader, columns)
        for loader, columns in pairs
        if isinstance(loader, HuggingFaceLoader) and loader.path not in PACKAGED_BUILDERS
    ]


def _loader_problems(
    loader: HuggingFaceLoader, columns: list[str], meta: HubMetadata
) -> list[tuple[Problem, str]]:
    repo = loader.path
    if not meta.exists:
        return [(Problem.MISSING_REPO, f"dataset repo {repo} does not exist")]
    problems: list[tuple[Problem, str]] = []
    if loader.data_files:
        problems += _data_files_problems(loader, meta)
        info = (meta.configs or {}).get(loader.config or "default")
    else:
        config, problem = _resolve_config(loader, meta)
        if problem:
            return [problem]
        info = (meta.configs or {}).get(config) if config else None
        if info is not None and loader.split not in info.splits:
            detail = f"{repo} config {config!r} has no split {loader.split!r} ({', '.join(info.splits)})"
            problems.append((Problem.UNKNOWN_SPLIT, detail))
    if info is not None and info.columns is not None:
        missing = [column for column in columns if column not in info.columns]
        if missing:
            problems.append((Problem.MISSING_COLUMN, f"{repo}: no column {', '.join(map(repr, missing))}"))
    return problems


def _data_files_problems(loader: HuggingFaceLoader, meta: HubMetadata) -> list[tuple[Problem, str]]:
    """``load_dataset(repo, data_files=[...])`` reads the matching files as one ``train`` split."""
    problems = [
        (Problem.MISSING_FILES, f"{loader.path}: no file matches data_files {pattern!r}")
        for pattern in loader.data_files or []
        if meta.files is not None and not fnmatch.filter(meta.files, pattern)
    ]
    if loader.split != "train":
        detail = f"{loader.path}: data_files are read as split 'train', not {loader.split!r}"
        problems.append((Problem.UNKNOWN_SPLIT, detail))
    return problems


def _resolve_config(
    loader: HuggingFaceLoader, meta: HubMetadata
) -> tuple[str | None, tuple[Problem, str] | None]:
    """The config ``load_dataset`` would read: the named one, else the only one, else ``default``."""
    if meta.configs is None:
        return loader.config, None
    names = sorted(meta.configs)
    if loader.config is None:
        if len(names) == 1 or "default" in names:
            return (names[0] if len(names) == 1 else "default"), None
        detail = f"{loader.path} needs a config name, one of {', '.join(names)}"
        return None, (Problem.UNKNOWN_CONFIG, detail)
    if loader.config not in meta.configs:
        detail = f"{loader.path} has no config {loader.config!r} ({', '.join(names)})"
        return None, (Problem.UNKNOWN_CONFIG, detail)
    return loader.config, None


class OnlineReport(Strict):
    """Every source's verdict, and the commit each source's repo resolved to (input for ``pin_catalog``)."""

    verdicts: list[SourceVerdict] = Field(description="One verdict per source, in catalog order")
    resolved: dict[str, str] = Field(description="Source name -> commit sha of its main repo, where known")

    @property
    def ok(self) -> bool:
        return all(verdict.status != "fail" for verdict in self.verdicts)

    def summary(self) -> list[str]:
        """Lines for a terminal: each verdict that is not ok, then the counts."""
        lines = [f"{verdict.status}: {verdict.reason}" for verdict in self.verdicts if verdict.status != "ok"]
        counts = {status: sum(v.status == status for v in self.verdicts) for status in ("ok", "warn", "fail")}
        lines.append(", ".join(f"{count} {status}" for status, count in counts.items()))
        return lines


def verify_catalog(
    path: Path | str, fetch: Callable[[str], HubMetadata], include_disabled: bool = False
) -> OnlineReport:
    """Fetch each repo once with ``fetch`` (the hub: :func:`data_catalog.hub_fetch.fetch_metadata`), judge every
    source. :class:`HubUnreachable` from ``fetch`` propagates on the first repo: nothing is retried.
    """
    sources = load_catalog(path, include_disabled=include_disabled).catalog.sources
    hub: dict[str, HubMetadata] = {}
    for source in sources:
        for loader, _ in _hub_loaders(source):
            if loader.path not in hub:
                hub[loader.path] = fetch(loader.path)
    verdicts = [verify_source(source, hub) for source in sources]
    resolved = {}
    for source in sources:
        meta = hub.get(source.loader.path) if isinstance(source.loader, HuggingFaceLoader) else None
        if meta is not None and meta.exists and meta.sha:
            resolved[source.name] = meta.sha
    return OnlineReport(verdicts=verdicts, resolved=resolved)
