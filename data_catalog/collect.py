"""Collect catalog sources into zstd Parquet shards in the canonical schema, with a manifest per source.

Per source the output directory holds ``part-NNNNN.parquet`` shards, ``quarantine/part-00000.parquet`` with
every rejected row and its reason, and ``manifest.json``. The manifest doubles as a completion marker: a
source whose manifest matches the current source config and input checksum is skipped on re-run, so a crash
or a failed source costs only that source. One failing source does not stop the others; the failures are
raised together at the end as :class:`CollectError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from data_catalog.catalog import BOOKKEEPING_FIELDS, HuggingFaceLoader, ResolvedCatalog, Source
from data_catalog.loaders import LOADER_VERSION, RawRecord, SourceError, iter_records
from data_catalog.schema import CANONICAL_SCHEMA, QUARANTINE_SCHEMA, SCHEMA_VERSION
from data_catalog.shards import ShardInfo, ShardWriter
from data_catalog.transforms import Rejected, run_transform
from kalm.hashing import hash_file
from kalm.progress import ProgressLog

logger = logging.getLogger(__name__)


class CollectError(RuntimeError):
    """One or more sources failed; the message names each with its reason."""


class SourceManifest(BaseModel):
    source: str
    stage: str
    category: str
    task_type: str
    schema_version: int = SCHEMA_VERSION
    loader_version: str = LOADER_VERSION
    config_hash: str
    input_fingerprint: str
    rows_read: int
    rows_written: int
    rows_quarantined: int
    quarantine_reasons: dict[str, int]
    rows_dropped: int = 0
    dropped_reasons: dict[str, int] = Field(default_factory=dict)
    shards: list[ShardInfo]
    quarantine_shards: list[ShardInfo] = Field(
        default_factory=list, description="the quarantine's shards, paths relative to the source folder"
    )
    wall_time_s: float

    def is_complete_in(self, folder: Path) -> bool:
        """Whether ``folder`` holds exactly the shards listed here, byte for byte (sha256), and nothing else."""
        listed = {shard.file: shard for shard in [*self.shards, *self.quarantine_shards]}
        present = {p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")}
        if present != set(listed):
            return False
        return all(
            (folder / name).stat().st_size == shard.bytes and hash_file(folder / name) == shard.sha256
            for name, shard in listed.items()
        )


class CatalogManifest(BaseModel):
    config_hash: str
    sources: dict[str, SourceManifest]
    fingerprint: str

    def rows_by(self, key: str) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for manifest in self.sources.values():
            counts[getattr(manifest, key)] += manifest.rows_written
        return dict(sorted(counts.items()))


def input_fingerprint(resolved: ResolvedCatalog, source: Source) -> str:
    """Checksums of the input files, or the pinned hub revision for a remote dataset."""
    path = resolved.path_of(source)
    if isinstance(source.loader, HuggingFaceLoader) and not path.exists():
        return f"hub:{source.loader.path}@{source.loader.revision or 'unpinned'}"
    digest = hashlib.sha256()
    for path in resolved.paths_of(source):
        if not path.exists():
            raise SourceError(f"source {source.name!r}: input not found: {path}")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(path.parent)).encode())
            digest.update(hash_file(file).encode())
    return digest.hexdigest()


def source_config_hash(source: Source, max_chars: int) -> str:
    """What decides the source's rows; a note or a checked mark changes no row, so it does not re-collect."""
    rows_spec = source.model_dump(mode="json", exclude=set(BOOKKEEPING_FIELDS))
    payload = json.dumps({"source": rows_spec, "max_chars": max_chars}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class _Counted:
    """Counts the records a loader yields, so rows_read means input records whatever the transform does."""

    def __init__(self, records: Iterable[RawRecord]) -> None:
        self.records, self.count = records, 0

    def __iter__(self) -> Iterator[RawRecord]:
        for record in self.records:
            self.count += 1
            yield record


def _printable(raw: str | bytes) -> str:
    """Quarantined raw text as valid UTF-8: undecodable bytes become ``\\xNN`` escapes."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "backslashreplace")
    return raw.encode("utf-8", "backslashreplace").decode("utf-8")


def _reason_key(reason: str) -> str:
    return reason.split(":")[0] if reason.startswith("malformed") else reason


def collect_source(resolved: ResolvedCatalog, source: Source, out_dir: Path) -> SourceManifest:
    """Collect one source into ``out_dir`` (replaced), or return its manifest when already complete."""
    limits = resolved.catalog.limits
    config_hash = source_config_hash(source, limits.max_text_chars)
    fingerprint = input_fingerprint(resolved, source)
    previous = _read_manifest(out_dir / "manifest.json")
    if (
        previous is not None
        and (previous.config_hash, previous.input_fingerprint) == (config_hash, fingerprint)
        and previous.is_complete_in(out_dir)
    ):
        return previous
    started = time.perf_counter()
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    rows = ShardWriter(staging, CANONICAL_SCHEMA, limits.shard_rows, limits.batch_rows, _constants(source))
    quarantine = ShardWriter(
        staging / "quarantine",
        QUARANTINE_SCHEMA,
        limits.shard_rows,
        limits.batch_rows,
        {"source": source.name},
    )
    reasons: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    records = _Counted(iter_records(source, resolved.path_of(source), resolved.root))
    written = 0
    progress = ProgressLog(logger, f"collect {source.name}", unit="rows")
    for item in run_transform(source, records, limits.max_text_chars, dropped, resolved.root):
        progress.update(records.count)
        if isinstance(item, Rejected):
            reasons[_reason_key(item.reason)] += 1
            raw = _printable(item.raw)
            quarantine.add(row_number=item.row_number, reason=item.reason, raw=raw)
            continue
        if source.max_rows is not None and written >= source.max_rows:
            break
        rows.add(
            id=f"{source.name}:{written:09d}",
            query=item.query,
            positive=item.positive,
            negatives=item.negatives,
            label=item.label,
        )
        written += 1
    rows.close()
    quarantine.close()
    progress.finish(records.count, written=written)
    manifest = SourceManifest(
        source=source.name,
        stage=source.stage.value,
        category=source.category,
        task_type=source.task_type.value,
        config_hash=config_hash,
        input_fingerprint=fingerprint,
        rows_read=records.count,
        rows_written=sum(s.rows for s in rows.shards),
        rows_quarantined=sum(reasons.values()),
        quarantine_reasons=dict(sorted(reasons.items())),
        rows_dropped=sum(dropped.values()),
        dropped_reasons=dict(sorted(dropped.items())),
        shards=rows.shards,
        quarantine_shards=[s.model_copy(update={"file": f"quarantine/{s.file}"}) for s in quarantine.shards],
        wall_time_s=round(time.perf_counter() - started, 3),
    )
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return manifest


def _read_manifest(path: Path) -> SourceManifest | None:
    """A finished collection's manifest, or None (absent, truncated or from an incompatible version)."""
    try:
        return SourceManifest.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def _constants(source: Source) -> dict[str, str]:
    """Canonical columns that are the same for every row of a source."""
    return {
        "source": source.name,
        "category": source.category,
        "stage": source.stage.value,
        "task_type": source.task_type.value,
        "language": source.languages[0],
        "instruction": source.instruction,
    }


def collect_catalog(
    resolved: ResolvedCatalog, out_dir: Path, only: list[str] | None = None, ray_address: str | None = None
) -> CatalogManifest:
    """Collect every source (or ``only`` those named); raise :class:`CollectError` naming failed sources.

    With ``ray_address`` ("local" for a local Ray) each source is a Ray task, so sources collect in
    parallel across the cluster; otherwise they run one after the other in this process.
    """
    sources = [resolved.catalog.source(name) for name in only] if only else resolved.catalog.sources
    outcomes = (
        _collect_with_ray(resolved, sources, out_dir, ray_address)
        if ray_address
        else [_try_collect(resolved, source, out_dir / source.name) for source in sources]
    )
    return summarize(resolved, raise_failures(dict(zip([s.name for s in sources], outcomes, strict=True))))


def _try_collect(resolved: ResolvedCatalog, source: Source, out_dir: Path) -> SourceManifest | str:
    try:
        return collect_source(resolved, source, out_dir)
    except Exception as error:  # returned, then raised together so one bad source does not stop the others
        return str(error)


def raise_failures(outcomes: dict[str, SourceManifest | str]) -> dict[str, SourceManifest]:
    """The manifests, or one :class:`CollectError` naming every source that failed and why."""
    failures = [f"{name}: {outcome}" for name, outcome in outcomes.items() if isinstance(outcome, str)]
    if failures:
        raise CollectError(f"{len(failures)} source(s) failed: " + " | ".join(failures))
    return {name: outcome for name, outcome in outcomes.items() if isinstance(outcome, SourceManifest)}


def _collect_with_ray(
    resolved: ResolvedCatalog, sources: list[Source], out_dir: Path, address: str
) -> list[SourceManifest | str]:
    import ray

    if not ray.is_initialized():
        local = {"_node_ip_address": "127.0.0.1", "include_dashboard": False} if address == "local" else {}
        ray.init(address=address, log_to_driver=False, **local)
    remote = ray.remote(num_cpus=0.5)(_try_collect)
    return ray.get([remote.remote(resolved, source, out_dir / source.name) for source in sources])


def summarize(resolved: ResolvedCatalog, manifests: dict[str, SourceManifest]) -> CatalogManifest:
    digest = hashlib.sha256()
    for name in sorted(manifests):
        for shard in manifests[name].shards:
            digest.update(f"{name}/{shard.file}:{shard.sha256}".encode())
    return CatalogManifest(
        config_hash=resolved.config_hash(),
        sources=dict(sorted(manifests.items())),
        fingerprint=digest.hexdigest(),
    )
