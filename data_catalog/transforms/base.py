"""What every transform shares: the row types, text extraction, quarantine checks and ``where`` filters.

Three outcomes per input record: it becomes (part of) a :class:`Row`; it is bad data and becomes a
:class:`Rejected` (quarantined with its reason); or it is fine but not wanted (filtered out, a neutral NLI
hypothesis, a question without a correct answer), which is only counted in the ``dropped`` tally by reason so
the manifest can account for every record without filling the quarantine with good data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from data_catalog.loaders import RawRecord
from data_catalog.specs import Filter


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
    raw: str | bytes


Tally = Counter[str]


class RecordProblem(ValueError):
    """A record that cannot be used; ``args[0]`` is the quarantine reason."""


def text_of(record: dict[str, Any], columns: str | list[str] | None) -> str | None:
    """The text of one column, or several joined by a blank line (title + body); KeyError when missing.

    A list-valued column (FlagEmbedding-style ``pos: [...]``) gives its first non-blank element.
    """
    if columns is None:
        return None
    if isinstance(columns, str):
        value = record.get(columns)
        if type(value) is str:  # the common case, kept cheap: this runs twice per row
            return value
    names = [columns] if isinstance(columns, str) else columns
    parts = []
    for name in names:
        value = record.get(name)
        if isinstance(value, list):
            value = next((v for v in value if v is not None and str(v).strip()), None)
        if value is None:
            raise KeyError(name)
        parts.append(str(value))
    return "\n\n".join(part for part in parts if part.strip())


def record_texts(item: RawRecord, *columns: str | list[str] | None) -> tuple[str, ...]:
    """The texts of ``columns`` in a readable record; :class:`RecordProblem` with the quarantine reason
    (the loader's parse error, or ``missing_field:<column>``) otherwise."""
    if item.record is None:
        raise RecordProblem(item.error or "unreadable")
    try:
        return tuple(text_of(item.record, column) or "" for column in columns)
    except KeyError as missing:
        raise RecordProblem(f"missing_field:{missing.args[0]}") from None


def list_of(record: dict[str, Any], columns: str | list[str] | None) -> list[str]:
    """Negatives from one or more columns, each a string or a list of strings; blanks are skipped."""
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


# Loaders decode with surrogateescape, so undecodable input bytes show up as lone surrogates U+DC80..U+DCFF.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def check_text(name: str, text: str, max_chars: int) -> str | None:
    """The quarantine reason for one text field, or None when it is usable (C-speed checks: hot path)."""
    if not text or text.isspace():
        return f"empty_text:{name}"
    if len(text) > max_chars:
        return f"text_too_long:{name}"
    if _UNDECODABLE.search(text):
        return f"undecodable_bytes:{name}"
    return None


def validate(row: Row, max_chars: int) -> str | None:
    for name, text in (("query", row.query), ("positive", row.positive)):
        reason = check_text(name, text, max_chars)
        if reason:
            return reason
    for text in row.negatives:
        reason = check_text("negatives", text, max_chars)
        if reason:
            return reason
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def matches(rule: Filter, record: dict[str, Any]) -> bool:
    """Whether ``record`` passes ``rule``; raises :class:`RecordProblem` when it cannot be decided."""
    if rule.nonempty is not None:
        value = record.get(rule.nonempty)
        return value is not None and bool(_as_text(value).strip())
    column = rule.column or ""
    if column not in record:
        raise RecordProblem(f"missing_field:{column}")
    value = record[column]
    if value is None:
        return rule.not_in is not None
    if "equals" in rule.model_fields_set:
        return _as_text(value) == _as_text(rule.equals)
    if rule.in_ is not None:
        return _as_text(value) in {_as_text(v) for v in rule.in_}
    if rule.not_in is not None:
        return _as_text(value) not in {_as_text(v) for v in rule.not_in}
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordProblem(f"not_a_number:{column}") from None
    if rule.at_least is not None:
        return number >= rule.at_least
    return rule.at_most is not None and number <= rule.at_most


def apply_where(rules: list[Filter], records: Iterable[RawRecord], dropped: Tally) -> Iterator[RawRecord]:
    """Keep records that pass every rule; count the others by the first rule they fail.

    A record the rule cannot judge (missing column, non-numeric score) is passed on as an error record so the
    transform quarantines it like any unreadable row. Streaming: nothing is held back.
    """
    if not rules:
        yield from records
        return
    for item in records:
        if item.record is None:
            yield item
            continue
        try:
            failed = next((rule for rule in rules if not matches(rule, item.record)), None)
        except RecordProblem as problem:
            yield RawRecord(item.row_number, None, str(problem), item.raw)
            continue
        if failed is None:
            yield item
        else:
            dropped[failed.describe()] += 1
