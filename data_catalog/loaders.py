"""Readers that stream raw records out of each input format, one record (or one parse error) at a time.

A loader never drops anything silently: a line that does not parse comes out as a :class:`RawRecord` with an
``error`` and its raw text, so the collector can quarantine and count it. Problems that concern the whole
source (missing file, missing column in a header) raise :class:`SourceError` naming the source.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_catalog.catalog import (
    CsvLoader,
    HuggingFaceDiskLoader,
    HuggingFaceLoader,
    JsonlLoader,
    JsonLoader,
    ParquetLoader,
    Source,
)

LOADER_VERSION = "1"


class SourceError(RuntimeError):
    """A source that cannot be read at all; the message names the source."""


@dataclass(frozen=True)
class RawRecord:
    row_number: int
    record: dict[str, Any] | None
    error: str | None = None
    raw: str = ""


def _open_text(path: Path) -> io.TextIOBase:
    # surrogateescape keeps undecodable bytes as lone surrogates so one bad row is quarantined, not the file.
    binary = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _iter_jsonl(path: Path) -> Iterator[RawRecord]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                yield RawRecord(number, None, f"malformed_json: {error.msg}", line.rstrip("\n"))
                continue
            if not isinstance(value, dict):
                yield RawRecord(number, None, "not_an_object", line.rstrip("\n"))
                continue
            yield RawRecord(number, value, raw=line.rstrip("\n"))


def _iter_json(path: Path, records_key: str | None, source: Source) -> Iterator[RawRecord]:
    with _open_text(path) as handle:
        try:
            value = json.load(handle)
        except json.JSONDecodeError as error:
            raise SourceError(f"source {source.name!r}: {path} is not valid JSON ({error.msg})") from None
    if records_key is not None:
        value = value.get(records_key) if isinstance(value, dict) else None
    if not isinstance(value, list):
        raise SourceError(f"source {source.name!r}: {path} does not hold a JSON array of records")
    for number, item in enumerate(value):
        raw = json.dumps(item, ensure_ascii=False)
        if isinstance(item, dict):
            yield RawRecord(number, item, raw=raw)
        else:
            yield RawRecord(number, None, "not_an_object", raw)


def _iter_csv(path: Path, spec: CsvLoader, source: Source) -> Iterator[RawRecord]:
    quoting = csv.QUOTE_NONE if spec.quoting == "none" else csv.QUOTE_MINIMAL
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=spec.delimiter, quoting=quoting)
        if spec.header:
            names = next(reader, None)
            if names is None:
                return
        else:
            names = spec.column_names
        if not names:
            raise SourceError(f"source {source.name!r}: CSV without header needs loader.column_names")
        _require_columns(source, names)
        for number, row in enumerate(reader, start=1 if spec.header else 0):
            raw = spec.delimiter.join(row)
            if len(row) != len(names):
                yield RawRecord(
                    number, None, f"malformed_csv_row: {len(row)} fields, expected {len(names)}", raw
                )
                continue
            yield RawRecord(number, dict(zip(names, row, strict=True)), raw=raw)


def _iter_parquet(path: Path, source: Source) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    number = 0
    for file in files:
        parquet = pq.ParquetFile(file)
        _require_columns(source, parquet.schema_arrow.names)
        for batch in parquet.iter_batches(batch_size=10_000):
            for record in batch.to_pylist():
                yield RawRecord(number, record, raw=json.dumps(record, ensure_ascii=False, default=str))
                number += 1


def _iter_datasets(dataset: Any, source: Source) -> Iterator[RawRecord]:
    names = getattr(dataset, "column_names", None)
    if names:
        _require_columns(source, names)
    for number, record in enumerate(dataset):
        yield RawRecord(number, dict(record), raw=json.dumps(record, ensure_ascii=False, default=str))


def _iter_huggingface(spec: HuggingFaceLoader, root: Path, source: Source) -> Iterator[RawRecord]:
    import datasets

    local = root / spec.path
    path = str(local) if local.exists() else spec.path
    data_files = [str(root / f) for f in spec.data_files] if spec.data_files else None
    try:
        dataset = datasets.load_dataset(
            path,
            name=spec.config,
            split=spec.split,
            revision=spec.revision,
            data_files=data_files,
            streaming=spec.streaming,
        )
    except Exception as error:  # datasets raises many types; all mean "this source cannot be opened"
        raise SourceError(f"source {source.name!r}: cannot load dataset {spec.path!r}: {error}") from error
    yield from _iter_datasets(dataset, source)


def _iter_huggingface_disk(spec: HuggingFaceDiskLoader, path: Path, source: Source) -> Iterator[RawRecord]:
    import datasets

    dataset = datasets.load_from_disk(str(path))
    if isinstance(dataset, datasets.DatasetDict):
        if spec.split is None:
            raise SourceError(
                f"source {source.name!r}: {path} holds splits {list(dataset)}; set loader.split"
            )
        dataset = dataset[spec.split]
    yield from _iter_datasets(dataset, source)


def mapped_columns(source: Source) -> list[str]:
    columns: list[str] = []
    for value in source.fields.model_dump().values():
        if isinstance(value, str):
            columns.append(value)
        elif isinstance(value, list):
            columns.extend(value)
    return columns


def _require_columns(source: Source, available: list[str]) -> None:
    for column in mapped_columns(source):
        if column not in available:
            raise SourceError(
                f"source {source.name!r}: mapped column {column!r} is missing (columns: {', '.join(available)})"
            )


def iter_records(source: Source, path: Path, root: Path) -> Iterator[RawRecord]:
    """Stream a source's raw records in file order."""
    spec = source.loader
    if not isinstance(spec, HuggingFaceLoader) and not path.exists():
        raise SourceError(f"source {source.name!r}: input not found: {path}")
    match spec:
        case JsonlLoader():
            return _iter_jsonl(path)
        case JsonLoader():
            return _iter_json(path, spec.records_key, source)
        case CsvLoader():
            return _iter_csv(path, spec, source)
        case ParquetLoader():
            return _iter_parquet(path, source)
        case HuggingFaceLoader():
            return _iter_huggingface(spec, root, source)
        case HuggingFaceDiskLoader():
            return _iter_huggingface_disk(spec, path, source)
    raise SourceError(f"source {source.name!r}: unknown loader {spec!r}")
