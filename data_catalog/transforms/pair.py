"""``pair``: one record → one row by column mapping. Streaming, so a source larger than memory works."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from data_catalog.catalog import Source
from data_catalog.loaders import RawRecord
from data_catalog.transforms.base import RecordProblem, Rejected, Row, list_of, record_texts, validate


def pair_rows(source: Source, records: Iterable[RawRecord], max_chars: int) -> Iterator[Row | Rejected]:
    fields = source.fields
    for item in records:
        try:
            query, positive = record_texts(item, fields.query, fields.positive)
        except RecordProblem as problem:
            yield Rejected(item.row_number, str(problem), item.raw)
            continue
        assert item.record is not None  # record_texts raised otherwise
        label = item.record.get(fields.label) if fields.label else None
        row = Row(
            query, positive, list_of(item.record, fields.negatives), None if label is None else str(label)
        )
        reason = validate(row, max_chars)
        yield Rejected(item.row_number, reason, item.raw) if reason else row
