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
import shutil
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from data_catalog.catalog import HuggingFaceLoader, ResolvedCatalog, Source
from data_catalog.loaders import LOADER_VERSION, SourceError, iter_records
from data_catalog.schema import CANONICAL_SCHEMA, QUARANTINE_SCHEMA, SCHEMA_VERSION
from data_catalog.transforms import Rejected, Row, exemplar_rows, pair_rows


class CollectError(RuntimeError):
    """One or more sources failed; the message names each with its reason."""


class ShardInfo(BaseModel):
    file: str
    rows: int
    bytes: int
    sha256: str


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
    shards: list[ShardInfo]
    wall_time_s: float


class CatalogManifest(BaseModel):
    config_hash: str
    sources: dict[str, SourceManifest]
    fingerprint: str

    def rows_by(self, key: str) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for manifest in self.sources.values():
            counts[getattr(manifest, key)] += manifest.rows_written
        return dict(sorted(counts.items()))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_fingerprint(resolved: ResolvedCatalog, source: Source) -> str:
    """Checksums of the input files, or the pinned hub revision for a remote dataset."""
    path = resolved.path_of(source)
    if isinstance(source.loader, HuggingFaceLoader) and not path.exists():
        return f"hub:{source.loader.path}@{source.loader.revision or 'unpinned'}"
    if not path.exists():
        raise SourceError(f"source {source.name!r}: input not found: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path.parent)).encode())
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()


def source_config_hash(source: Source, max_chars: int) -> str:
    payload = json.dumps({"source": source.model_dump(mode="json"), "max_chars": max_chars}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class _ShardWriter:
    def __init__(self, out_dir: Path, schema: pa.Schema, shard_rows: int) -> None:
        self.out_dir, self.schema, self.shard_rows = out_dir, schema, shard_rows
        self.buffer: list[dict] = []
        self.shards: list[ShardInfo] = []

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.shard_rows:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"part-{len(self.shards):05d}.parquet"
        pq.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema), path, compression="zstd")
        self.shards.append(
            ShardInfo(
                file=path.name, rows=len(self.buffer), bytes=path.stat().st_size, sha256=file_sha256(path)
            )
        )
        self.buffer = []


def collect_source(resolved: ResolvedCatalog, source: Source, out_dir: Path) -> SourceManifest:
    """Collect one source into ``out_dir`` (replaced), or return its manifest when already complete."""
    limits = resolved.catalog.limits
    config_hash = source_config_hash(source, limits.max_text_chars)
    fingerprint = input_fingerprint(resolved, source)
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists():
        previous = SourceManifest.model_validate_json(manifest_path.read_text())
        if previous.config_hash == config_hash and previous.input_fingerprint == fingerprint:
            return previous
    started = time.perf_counter()
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    rows = _ShardWriter(staging, CANONICAL_SCHEMA, limits.shard_rows)
    quarantine = _ShardWriter(staging / "quarantine", QUARANTINE_SCHEMA, limits.shard_rows)
    reasons: Counter[str] = Counter()
    records = iter_records(source, resolved.path_of(source), resolved.root)
    transform = exemplar_rows if source.transform == "exemplar" else pair_rows
    rows_read = written = 0
    for item in transform(source, records, limits.max_text_chars):
        rows_read += 1
        if isinstance(item, Rejected):
            reasons[item.reason.split(":")[0] if item.reason.startswith("malformed") else item.reason] += 1
            quarantine.add(
                {
                    "source": source.name,
                    "row_number": item.row_number,
                    "reason": item.reason,
                    "raw": item.raw.encode("utf-8", "backslashreplace").decode("utf-8"),
                }
            )
            continue
        if source.max_rows is not None and written >= source.max_rows:
            break
        rows.add(_canonical(source, written, item))
        written += 1
    rows.flush()
    quarantine.flush()
    manifest = SourceManifest(
        source=source.name,
        stage=source.stage.value,
        category=source.category,
        task_type=source.task_type.value,
        config_hash=config_hash,
        input_fingerprint=fingerprint,
        rows_read=rows_read,
        rows_written=sum(s.rows for s in rows.shards),
        rows_quarantined=sum(reasons.values()),
        quarantine_reasons=dict(sorted(reasons.items())),
        shards=rows.shards,
        wall_time_s=round(time.perf_counter() - started, 3),
    )
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return manifest


def _canonical(source: Source, ordinal: int, row: Row) -> dict:
    return {
        "id": f"{source.name}:{ordinal:09d}",
        "source": source.name,
        "category": source.category,
        "stage": source.stage.value,
        "task_type": source.task_type.value,
        "language": source.languages[0],
        "instruction": source.instruction,
        "query": row.query,
        "positive": row.positive,
        "negatives": row.negatives,
        "label": row.label,
    }


def collect_catalog(
    resolved: ResolvedCatalog, out_dir: Path, only: list[str] | None = None
) -> CatalogManifest:
    """Collect every source (or ``only`` those named); raise :class:`CollectError` naming failed sources."""
    sources = [resolved.catalog.source(name) for name in only] if only else resolved.catalog.sources
    manifests: dict[str, SourceManifest] = {}
    failures: list[str] = []
    for source in sources:
        try:
            manifests[source.name] = collect_source(resolved, source, out_dir / source.name)
        except Exception as error:  # collected and re-raised below so other sources still run
            failures.append(f"{source.name}: {error}")
    if failures:
        raise CollectError(f"{len(failures)} source(s) failed: " + " | ".join(failures))
    return summarize(resolved, manifests)


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
