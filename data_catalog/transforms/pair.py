"""``pair``: one record → one row by column mapping. Streaming, so a source larger than memory works."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from data_catalog.catalog import Source
from data_catalog.loaders import RawRecord
from data_catalog.transforms.base import Rejected, Row, list_of, text_of, validate


def pair_rows(source: Source, records: Iterable[RawRecord], max_chars: int) -> Iterator[Row | Rejected]:
    fields = source.fields
    for item in records:
        if item.record is None:
            yield Rejected(item.row_number, item.error or "unreadable", item.raw)
            continue
        try:
            query = text_of(item.record, fields.query) or ""
            positive = text_of(item.record, fields.positive) or ""
        except KeyError as missing:
            yield Rejected(item.row_number, f"missing_field:{missing.args[0]}", item.raw)
            continue
        label = item.record.get(fields.label) if fields.label else None
        row = Row(
            query, positive, list_of(item.record, fields.negatives), None if label is None else str(label)
        )
        reason = validate(row, max_chars)
        yield Rejected(item.row_number, reason, item.raw) if reason else row
