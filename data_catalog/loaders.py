"""Readers that stream raw records out of each input format, one record (or one parse error) at a time.

A loader never drops anything silently: a line that does not parse comes out as a :class:`RawRecord` with an
``error`` and its raw text, so the collector can quarantine and count it. Problems that concern the whole
source (missing file, missing column in a header) raise :class:`SourceError` naming the source.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_catalog.catalog import Source
from data_catalog.specs import (
    PACKAGED_BUILDERS,
    CsvLoader,
    FileLoader,
    HuggingFaceDiskLoader,
    HuggingFaceLoader,
    JsonlLoader,
    JsonLoader,
    ParquetLoader,
    as_list,
)

LOADER_VERSION = "2"


class SourceError(RuntimeError):
    """A source that cannot be read at all; the message names the source."""


try:  # orjson (a prefect dependency) parses ~3x faster; json stays the reference for anything it rejects
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover
    _fast_loads = json.loads

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class RawRecord:
    """One input record, or the error that kept it from parsing; ``raw`` (bytes for JSONL, decoded only if
    the record ends up in quarantine) is what the quarantine stores."""

    row_number: int
    record: dict[str, Any] | None
    error: str | None = None
    raw: str | bytes = ""


def _open_text(path: Path) -> io.TextIOBase:
    # surrogateescape keeps undecodable bytes as lone surrogates so one bad row is quarantined, not the file.
    binary = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _slow_jsonl(number: int, line: bytes) -> RawRecord:
    """The reference parse for a line the fast parser refused: bad UTF-8 (kept as lone surrogates so the
    text check quarantines it), NaN, huge ints, or really malformed JSON."""
    text = line.decode("utf-8", "surrogateescape")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return RawRecord(number, None, f"malformed_json: {error.msg}", text)
    if not isinstance(value, dict):
        return RawRecord(number, None, "not_an_object", text)
    return RawRecord(number, value, raw=text)


def _iter_jsonl(path: Path) -> Iterator[RawRecord]:
    # Binary lines: JSON lines end at "\n" only, and the common case needs no str decode at all.
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        for number, line in enumerate(handle):
            line = (line.removeprefix(_BOM) if number == 0 else line).rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                value = _fast_loads(line)
            except ValueError:
                yield _slow_jsonl(number, line)
                continue
            if not isinstance(value, dict):
                yield RawRecord(number, None, "not_an_object", line)
                continue
            yield RawRecord(number, value, raw=line)


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


def _strip_boms(row: list[str]) -> list[str]:
    # Some exports (ATEC) carry a BOM before every field of the first line, not only at the file start.
    return [field.lstrip("\ufeff") for field in row]


def _iter_csv(path: Path, spec: CsvLoader, source: Source, columns: list[str]) -> Iterator[RawRecord]:
    quoting = csv.QUOTE_NONE if spec.quoting == "none" else csv.QUOTE_MINIMAL
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=spec.delimiter, quoting=quoting)
        first = next(reader, None)
        if first is None:
            return
        first = _strip_boms(first)
        if spec.header:
            names = first
            rows: Iterator[list[str]] = reader
        else:
            names = spec.column_names or []
            rows = itertools.chain([first], reader)
        if not names:
            raise SourceError(f"source {source.name!r}: CSV without header needs loader.column_names")
        _require_columns(source, names, columns)
        for number, row in enumerate(rows, start=1 if spec.header else 0):
            raw = spec.delimiter.join(row)
            if len(row) != len(names):
                yield RawRecord(
                    number, None, f"malformed_csv_row: {len(row)} fields, expected {len(names)}", raw
                )
                continue
            yield RawRecord(number, dict(zip(names, row, strict=True)), raw=raw)


def _iter_parquet(path: Path, source: Source, columns: list[str]) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    number = 0
    for file in files:
        parquet = pq.ParquetFile(file)
        _require_columns(source, parquet.schema_arrow.names, columns)
        for batch in parquet.iter_batches(batch_size=10_000):
            for record in batch.to_pylist():
                yield RawRecord(number, record, raw=json.dumps(record, ensure_ascii=False, default=str))
                number += 1


def _iter_datasets(dataset: Any, source: Source, columns: list[str]) -> Iterator[RawRecord]:
    names = getattr(dataset, "column_names", None)
    if names:
        _require_columns(source, names, columns)
    for number, record in enumerate(dataset):
        yield RawRecord(number, dict(record), raw=json.dumps(record, ensure_ascii=False, default=str))


def iter_huggingface(
    spec: HuggingFaceLoader, root: Path, source: Source, columns: list[str]
) -> Iterator[RawRecord]:
    """``datasets.load_dataset`` on a packaged builder (``parquet``/``json``/``csv`` with local ``data_files``
    relative to the catalog root), a local dataset folder, or a hub repo id (``data_files`` inside the repo)."""
    import datasets

    local = root / spec.path
    path = str(local) if local.exists() else spec.path
    data_files = spec.data_files
    if data_files and spec.path in PACKAGED_BUILDERS:
        data_files = [str(root / f) for f in data_files]
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
    yield from _iter_datasets(dataset, source, columns)


def _iter_huggingface_disk(spec: HuggingFaceDiskLoader, path: Path, source: Source) -> Iterator[RawRecord]:
    import datasets

    dataset = datasets.load_from_disk(str(path))
    if isinstance(dataset, datasets.DatasetDict):
        if spec.split is None:
            raise SourceError(
                f"source {source.name!r}: {path} holds splits {list(dataset)}; set loader.split"
            )
        dataset = dataset[spec.split]
    yield from _iter_datasets(dataset, source, record_columns(source))


def record_columns(source: Source) -> list[str]:
    """Top-level columns every record of the source must have (checked against CSV/Parquet headers).

    Explode's ``fields.positive`` lives inside the nested objects and BEIR's inside the corpus, so those are
    not required of the loader's records.
    """
    fields = source.fields
    names: list[str | list[str] | None] = [fields.query, fields.label, fields.text]
    if source.transform not in ("explode", "beir"):
        names += [fields.positive, fields.negatives]
    names += [f.target for f in source.where]
    if source.group is not None:
        names += [source.group.by, source.group.positive.target]
        names += [source.group.negative.target] if source.group.negative else []
    if source.explode is not None:
        names.append(source.explode.column)
    columns: list[str] = []
    for value in names:
        for column in [value] if isinstance(value, str) else value or []:
            if column not in columns:
                columns.append(column)
    return columns


def _require_columns(source: Source, available: list[str], columns: list[str]) -> None:
    for column in columns:
        if column not in available:
            raise SourceError(
                f"source {source.name!r}: mapped column {column!r} is missing (columns: {', '.join(available)})"
            )


def iter_files(
    spec: FileLoader, paths: list[Path], source: Source, columns: list[str]
) -> Iterator[RawRecord]:
    """Stream records of one or more files in order; row numbers continue across files."""
    offset = 0
    for path in paths:
        if not path.exists():
            raise SourceError(f"source {source.name!r}: input not found: {path}")
        match spec:
            case JsonlLoader():
                records = _iter_jsonl(path)
            case JsonLoader():
                records = _iter_json(path, spec.records_key, source)
            case CsvLoader():
                records = _iter_csv(path, spec, source, columns)
            case ParquetLoader():
                records = _iter_parquet(path, source, columns)
        last = -1
        for item in records:
            last = item.row_number
            yield RawRecord(item.row_number + offset, item.record, item.error, item.raw) if offset else item
        offset += last + 1


def iter_records(source: Source, path: Path, root: Path) -> Iterator[RawRecord]:
    """Stream a source's raw records in file order (``path``: the loader's first path, resolved)."""
    spec = source.loader
    match spec:
        case HuggingFaceLoader():
            return iter_huggingface(spec, root, source, record_columns(source))
        case HuggingFaceDiskLoader():
            if not path.exists():
                raise SourceError(f"source {source.name!r}: input not found: {path}")
            return _iter_huggingface_disk(spec, path, source)
    paths = [(root / p).resolve() for p in as_list(spec.path)] if len(as_list(spec.path)) > 1 else [path]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise SourceError(f"source {source.name!r}: input not found: {missing[0]}")
    return iter_files(spec, paths, source, record_columns(source))
