"""Field mappings that turn raw records into canonical rows, with a quarantine reason for each bad one.

``pair`` maps columns onto (query, positive, negatives). ``exemplar`` implements KaLM-V2's example-based
labels for classification and clustering: the positive is another text of the same class and negatives are
texts of other classes; the label is kept so training can mask same-label in-batch negatives.
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from data_catalog.catalog import Source
from data_catalog.loaders import RawRecord


@dataclass(frozen=True)
class Row:
    query: str
    positive: str
    negatives: list[str]
    label: str | None


@dataclass(frozen=True)
class Rejected:
    row_number: int
    reason: str
    raw: str


def _text(record: dict[str, Any], columns: str | list[str] | None) -> str | None:
    if columns is None:
        return None
    names = [columns] if isinstance(columns, str) else columns
    parts = []
    for name in names:
        if name not in record or record[name] is None:
            raise KeyError(name)
        parts.append(str(record[name]))
    return "\n\n".join(part for part in parts if part.strip())


def _negatives(record: dict[str, Any], columns: str | list[str] | None) -> list[str]:
    if columns is None:
        return []
    names = [columns] if isinstance(columns, str) else columns
    values: list[str] = []
    for name in names:
        value = record.get(name)
        if isinstance(value, list):
            values.extend(str(v) for v in value if v is not None and str(v).strip())
        elif value is not None and str(value).strip():
            values.append(str(value))
    return values


def check_text(name: str, text: str, max_chars: int) -> str | None:
    """The quarantine reason for one text field, or None when it is usable."""
    if not text.strip():
        return f"empty_text:{name}"
    if len(text) > max_chars:
        return f"text_too_long:{name}"
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        return f"undecodable_bytes:{name}"
    return None


def _validate(row: Row, max_chars: int) -> str | None:
    for name, text in (("query", row.query), ("positive", row.positive)):
        reason = check_text(name, text, max_chars)
        if reason:
            return reason
    for text in row.negatives:
        reason = check_text("negatives", text, max_chars)
        if reason:
            return reason
    return None


def pair_rows(source: Source, records: Iterable[RawRecord], max_chars: int) -> Iterator[Row | Rejected]:
    fields = source.fields
    for item in records:
        if item.record is None:
            yield Rejected(item.row_number, item.error or "unreadable", item.raw)
            continue
        try:
            query = _text(item.record, fields.query) or ""
            positive = _text(item.record, fields.positive) or ""
        except KeyError as missing:
            yield Rejected(item.row_number, f"missing_field:{missing.args[0]}", item.raw)
            continue
        label = item.record.get(fields.label) if fields.label else None
        row = Row(
            query, positive, _negatives(item.record, fields.negatives), None if label is None else str(label)
        )
        reason = _validate(row, max_chars)
        yield Rejected(item.row_number, reason, item.raw) if reason else row


def exemplar_rows(
    source: Source, records: Iterable[RawRecord], max_chars: int, seed: int = 0
) -> Iterator[Row | Rejected]:
    """Classification/clustering rows as (text, same-class exemplar, other-class exemplars)."""
    fields = source.fields
    kept: list[tuple[int, str, str, str]] = []
    for item in records:
        if item.record is None:
            yield Rejected(item.row_number, item.error or "unreadable", item.raw)
            continue
        try:
            text = _text(item.record, fields.text) or ""
            label = _text(item.record, fields.label) or ""
        except KeyError as missing:
            yield Rejected(item.row_number, f"missing_field:{missing.args[0]}", item.raw)
            continue
        reason = check_text("text", text, max_chars) or check_text("label", label, max_chars)
        if reason:
            yield Rejected(item.row_number, reason, item.raw)
            continue
        kept.append((item.row_number, text, label, item.raw))

    by_label: dict[str, list[int]] = defaultdict(list)
    for index, (_, _, label, _) in enumerate(kept):
        by_label[label].append(index)
    labels = sorted(by_label)
    rng = random.Random(f"{source.name}:{seed}")
    for index, (row_number, text, label, raw) in enumerate(kept):
        peers = by_label[label]
        if len(peers) < 2:
            yield Rejected(row_number, "singleton_label", raw)
            continue
        pick = rng.randrange(len(peers) - 1)
        position = bisect.bisect_left(peers, index)  # peers is sorted: indices were appended in order
        positive = kept[peers[pick + (pick >= position)]][1]
        others = [other for other in labels if other != label]
        negatives = [
            kept[rng.choice(by_label[other])][1]
            for other in rng.sample(others, min(source.exemplar_negatives, len(others)))
        ]
        yield Row(text, positive, negatives, label)
